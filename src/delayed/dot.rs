//! `visualize()`: a lazy graph as Graphviz DOT, rendered to SVG or PNG by
//! Graphviz's `dot` when the file name asks for it.

use std::fmt::Write as _;
use std::path::Path;

use super::graph::Graph;
use crate::client::Error;

/// The DOT text of `graph`: a box per call, labelled with its function's
/// short name, and an edge from each dependency to its user.
pub(crate) fn dot(graph: &Graph) -> String {
    let mut out = String::from("digraph rdask {\n  rankdir=BT;\n  node [shape=box, fontname=\"sans-serif\"];\n");
    for (i, n) in graph.nodes.iter().enumerate() {
        let short = n.function.rsplit("::").next().unwrap_or(n.function);
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "  n{i} [label=\"{short}\", tooltip=\"{}\"];",
            n.key.replace('"', "'")
        );
        for a in &n.args {
            for d in a.nodes() {
                if let Some(j) = graph.index.get(&d.key) {
                    let _ = writeln!(out, "  n{j} -> n{i};");
                }
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Writes the graph to `path`: DOT text, or an image rendered by `dot`
/// for `.svg` / `.png`.
pub(crate) fn write(graph: &Graph, path: &Path) -> Result<(), Error> {
    let text = dot(graph);
    let io = |e: std::io::Error| Error::Refused(format!("cannot write {}: {e}", path.display()));
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => "svg",
        Some("png") => "png",
        _ => return std::fs::write(path, text).map_err(io),
    };
    let dot_file = path.with_extension("dot");
    std::fs::write(&dot_file, &text).map_err(io)?;
    let status = std::process::Command::new("dot")
        .arg(format!("-T{format}"))
        .arg(&dot_file)
        .arg("-o")
        .arg(path)
        .status()
        .map_err(|e| {
            Error::Refused(format!(
                "cannot run Graphviz's `dot` to render {} ({e}); the DOT text is in {}",
                path.display(),
                dot_file.display()
            ))
        })?;
    if !status.success() {
        return Err(Error::Refused(format!(
            "`dot` failed ({status}) rendering {}",
            path.display()
        )));
    }
    Ok(())
}
