//! Bags, the operations added after `tests/bag.rs` filled up: `starmap`,
//! `zip`, `repartition`, `persist` and `visualize` on a bag, and `.bz2` /
//! `.xz` text files, each against a sequential reference on random input
//! (proptest, on the local executor), plus `persist` on real `rdask
//! scheduler` / `rdask worker` processes and interoperation with the `bzip2`
//! and `xz` tools; and the pipeline's one-pass `map(json_loads).pluck(name)`
//! against `serde_json` on random, partly broken, JSON lines.

use proptest::prelude::*;
use rdask::bag::{self, Bag};
use rdask::builtins::{add, inc};
use rdask::delayed::ComputeOptions;
use rdask::Client;

mod common;
use common::*;

#[rdask::task]
fn sub(a: i64, b: i64) -> i64 {
    a.wrapping_sub(b)
}

#[rdask::task]
fn tag(a: i64, s: String) -> String {
    format!("{s}{a}")
}

#[rdask::task]
fn triple(x: i64) -> i64 {
    x.wrapping_mul(3)
}

fn local<T: serde::de::DeserializeOwned>(b: &Bag<T>) -> Result<Vec<T>, TestCaseError> {
    let opts = ComputeOptions {
        fuse: true,
        local_threads: 2,
    };
    b.compute_local_with(&opts)
        .map_err(|e| TestCaseError::fail(e.to_string()))
}

/// Per partition, the elements (each partition computed on its own).
fn partitions<T: serde::de::DeserializeOwned>(b: &Bag<T>) -> Result<Vec<Vec<T>>, TestCaseError> {
    b.to_delayed()
        .iter()
        .map(|d| d.compute_local().map_err(|e| TestCaseError::fail(e.to_string())))
        .collect()
}

/// The lengths of the partitions `repartition(n)` makes of partitions of
/// lengths `lens`: Dask's cuts (`int(i * p / n)` partition boundaries when
/// joining, Python's `split(seq, k)` when splitting), in exact arithmetic.
fn dask_repartition(lens: &[usize], n: usize) -> Vec<usize> {
    let p = lens.len();
    if p == n {
        return lens.to_vec();
    }
    if n < p {
        let bounds: Vec<usize> = (0..=n).map(|i| i * p / n).collect();
        return bounds.windows(2).map(|w| lens[w[0]..w[1]].iter().sum()).collect();
    }
    let (div, rem) = (n / p, n % p);
    let mut out = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        let k = div + if i + 1 == p { rem } else { 0 };
        out.extend((0..k).map(|j| (j + 1) * len / k - j * len / k));
    }
    out
}

/// Random JSON-like lines: objects with and without `name`, nested values,
/// escapes, exponents, and some with a byte changed, inserted or removed.
fn json_line() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        "\"[a-zé\\\\\"\t]{0,4}\"",
        "-?[0-9]{1,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{1,3})?",
        Just("true".to_string()),
        Just("null".to_string()),
    ];
    let value = atom.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{1,2}", inner), 0..3).prop_map(|kv| {
                let m: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                format!("{{{}}}", m.join(","))
            }),
        ]
    });
    let object =
        prop::collection::vec((prop_oneof![Just("name".to_string()), "[a-z]{1,2}"], value), 0..4).prop_map(|kv| {
            let m: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!(" {{{}}}", m.join(", "))
        });
    (object, any::<u8>(), 0usize..64, 0u8..4).prop_map(|(s, byte, at, how)| {
        let mut b = s.into_bytes();
        let at = at % (b.len() + 1);
        match how {
            0 if at < b.len() => b[at] = byte % 0x80,
            1 => b.insert(at, byte % 0x80),
            2 if at < b.len() => {
                b.remove(at);
            }
            _ => {}
        }
        String::from_utf8(b).unwrap_or_default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn json_loads_then_pluck_equals_serde_json_line_by_line(line in json_line()) {
        let want = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("name").cloned());
        let b = bag::from_sequence(vec![line.clone()], 1).unwrap();
        let got = b.map(bag::json_loads).pluck::<serde_json::Value>("name").compute_local();
        match (got, want) {
            (Ok(got), Some(want)) => prop_assert_eq!(got, vec![want], "{}", line),
            (Err(_), None) => {}
            (got, want) => prop_assert!(false, "{line}: bag {got:?}, serde_json {want:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn starmap_and_zip_match_a_sequential_reference(
        xs in prop::collection::vec(-50i64..50, 0..60),
        np in 1usize..6,
    ) {
        let pairs: Vec<(i64, i64)> = xs.iter().map(|&x| (x, x / 3)).collect();
        let b = bag::from_sequence(pairs.clone(), np).unwrap();
        let want: Vec<i64> = pairs.iter().map(|&(a, c)| a.wrapping_sub(c)).collect();
        prop_assert_eq!(local(&b.starmap(sub))?, want.clone());
        // In a chain with other element operations (one pipeline call).
        let chained: Vec<i64> = want.iter().map(|x| x.wrapping_mul(3)).collect();
        prop_assert_eq!(local(&b.starmap(sub).map(triple))?, chained);
        let named = bag::from_sequence(xs.iter().map(|&x| (x, format!("n{}", x % 4))).collect::<Vec<_>>(), np).unwrap();
        let want: Vec<String> = xs.iter().map(|&x| format!("n{}{x}", x % 4)).collect();
        prop_assert_eq!(local(&named.starmap(tag))?, want);

        // zip: same partitioning, so the partitions have equal lengths.
        let a = bag::from_sequence(xs.clone(), np).unwrap();
        let t = a.map(triple);
        let zipped = bag::zip(&a, &t).unwrap();
        prop_assert_eq!(zipped.npartitions(), a.npartitions());
        let want: Vec<(i64, i64)> = xs.iter().map(|&x| (x, x.wrapping_mul(3))).collect();
        prop_assert_eq!(local(&zipped)?, want);
        prop_assert_eq!(local(&zipped.starmap(sub))?, xs.iter().map(|&x| x.wrapping_sub(x.wrapping_mul(3))).collect::<Vec<_>>());
    }

    #[test]
    fn zip_drops_the_longer_partitions_extra_elements_as_dask_does(
        xs in prop::collection::vec(-50i64..50, 0..40),
        ys in prop::collection::vec(-50i64..50, 0..40),
        np in 1usize..5,
    ) {
        let (a, b) = (bag::from_sequence(xs, np).unwrap(), bag::from_sequence(ys, np).unwrap());
        if a.npartitions() != b.npartitions() {
            prop_assert!(bag::zip(&a, &b).is_err());
            return Ok(());
        }
        let (pa, pb) = (partitions(&a)?, partitions(&b)?);
        let want: Vec<(i64, i64)> = pa
            .iter()
            .zip(&pb)
            .flat_map(|(x, y)| x.iter().copied().zip(y.iter().copied()))
            .collect();
        prop_assert_eq!(local(&bag::zip(&a, &b).unwrap())?, want);
    }

    #[test]
    fn repartition_keeps_the_elements_in_order_cut_as_dask_cuts(
        xs in prop::collection::vec(-50i64..50, 0..80),
        np in 1usize..7,
        n in 1usize..12,
    ) {
        let b = bag::from_sequence(xs.clone(), np).unwrap().map(triple);
        let lens: Vec<usize> = partitions(&b)?.iter().map(Vec::len).collect();
        let r = b.repartition(n);
        prop_assert_eq!(r.npartitions(), n);
        let got = partitions(&r)?;
        prop_assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), dask_repartition(&lens, n));
        let want: Vec<i64> = xs.iter().map(|x| x.wrapping_mul(3)).collect();
        prop_assert_eq!(got.into_iter().flatten().collect::<Vec<_>>(), want.clone());
        // Operations and reductions after it see the same bag.
        prop_assert_eq!(r.count().compute_local().unwrap(), want.len() as u64);
        prop_assert_eq!(local(&r.repartition(np))?, want);
    }

    #[test]
    fn text_files_round_trip_bzip2_and_xz(
        lines in prop::collection::vec("[a-z {}:\"0-9]{0,30}", 0..60),
        np in 1usize..5,
    ) {
        let dir = TempDir::new("bag-text-more");
        let b = bag::from_sequence(lines.clone(), np).unwrap();
        for pattern in ["bz/*.txt.bz2", "xz/*.txt.xz"] {
            let glob = dir.0.join(pattern).to_string_lossy().into_owned();
            let written = b.to_textfiles(&glob).compute_local().unwrap();
            prop_assert_eq!(written.len(), b.npartitions());
            prop_assert_eq!(local(&bag::read_text(&glob).unwrap())?, lines.clone());
        }
    }
}

#[test]
fn an_empty_bag_repartitions_into_empty_partitions() -> anyhow::Result<()> {
    let empty: Bag<i64> = Bag::from_delayed(Vec::new());
    let r = empty.repartition(3);
    assert_eq!(r.npartitions(), 3);
    assert_eq!(r.compute_local()?, Vec::<i64>::new());
    assert_eq!(r.count().compute_local()?, 0);
    Ok(())
}

#[test]
fn a_bag_visualizes_as_one_graph_of_all_its_partitions() -> anyhow::Result<()> {
    let dir = TempDir::new("bag-dot");
    let b = bag::from_sequence(0..12i64, 3)?.map(triple).repartition(2);
    let path = dir.0.join("bag.dot");
    b.visualize(&path)?;
    let dot = std::fs::read_to_string(&path)?;
    assert!(dot.starts_with("digraph"), "{dot}");
    // Three sources and their pipelines; partition 0 kept, 1 and 2 joined.
    assert_eq!(dot.matches(r#"label="from_values""#).count(), 3, "{dot}");
    assert_eq!(dot.matches(r#"label="pipeline""#).count(), 3, "{dot}");
    assert_eq!(dot.matches(r#"label="concat""#).count(), 1, "{dot}");
    Ok(())
}

#[test]
fn a_persisted_bag_computes_once_on_real_processes_and_is_reused() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (_w1, _) = worker_with(&addr, "w1", &["--nthreads", "1"]);
    let (_w2, _) = worker_with(&addr, "w2", &["--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    // Plain `rdask worker`s: built-in functions only.
    let b = bag::from_sequence(0..100i64, 4)?.map(inc);
    let kept = b.persist(&client)?;
    assert_eq!(kept.npartitions(), 4);
    // The partitions are held by the cluster while the bag lives.
    wait_until("the persisted partitions to be in memory", || {
        client.scheduler_info().map(|i| i.ntasks >= 4).unwrap_or(false)
    });
    let want: Vec<i64> = (1..=100).collect();
    assert_eq!(kept.compute(&client)?, want);
    assert_eq!(kept.sum().compute(&client)?, 5050);
    assert_eq!(bag::zip(&kept, &b)?.starmap(add).sum().compute(&client)?, 10100);
    drop(kept);
    wait_until("the persisted partitions to be released", || {
        client.scheduler_info().map(|i| i.ntasks == 0).unwrap_or(false)
    });
    Ok(())
}

#[test]
fn compressed_files_interoperate_with_the_bzip2_and_xz_tools() -> anyhow::Result<()> {
    for tool in ["bzip2", "xz"] {
        let found = std::process::Command::new(tool).arg("--version").output().is_ok();
        if !found {
            cannot_run(&format!("the {tool} tool is not installed"));
            return Ok(());
        }
    }
    let dir = TempDir::new("bag-tools-more");
    let lines: Vec<String> = (0..500).map(|i| format!("line {i} {}", "x".repeat(i % 7))).collect();
    for (ext, tool) in [("bz2", "bzip2"), ("xz", "xz")] {
        // Ours, unpacked by the tool.
        let glob = dir.0.join(format!("ours-*.txt.{ext}")).to_string_lossy().into_owned();
        let paths = bag::from_sequence(lines.clone(), 2)?
            .to_textfiles(&glob)
            .compute_local()?;
        let mut unpacked = String::new();
        for p in &paths {
            let out = std::process::Command::new(tool).args(["-dc", p]).output()?;
            assert!(
                out.status.success(),
                "{tool} -dc {p}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            unpacked.push_str(&String::from_utf8(out.stdout)?);
        }
        assert_eq!(unpacked, lines.iter().map(|l| format!("{l}\n")).collect::<String>());
        // The tool's, two streams in one file (as `cat a.bz2 b.bz2` makes),
        // read by us.
        let theirs = dir.0.join(format!("theirs.txt.{ext}"));
        let mut packed = Vec::new();
        for half in lines.chunks(250) {
            let text = half.iter().map(|l| format!("{l}\n")).collect::<String>();
            let mut child = std::process::Command::new(tool)
                .arg("-c")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            let out = child.wait_with_output()?;
            assert!(out.status.success());
            packed.extend(out.stdout);
        }
        std::fs::write(&theirs, packed)?;
        assert_eq!(bag::read_text(&theirs.to_string_lossy())?.compute_local()?, lines);
    }
    Ok(())
}
