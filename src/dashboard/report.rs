//! The standalone performance report (`Client::performance_report`): one
//! HTML file with the dashboard's style and script inlined and the task
//! stream's records embedded as JSON, so it opens offline in any browser.

use serde::Serialize;

use super::assets::{SCRIPT_JS, STYLE_CSS};
use crate::wire::messages::TaskStreamRecord;

/// The report's page, with `/*STYLE*/`, `/*SCRIPT*/` and `/*DATA*/` to fill.
const REPORT_HTML: &str = include_str!("assets/report.html");

/// The data the report's script reads (`window.RDASK_REPORT`).
#[derive(Serialize)]
struct ReportData<'a> {
    records: &'a [TaskStreamRecord],
    generated_unix_s: u64,
}

/// The report's HTML for `records`.
pub fn render(records: &[TaskStreamRecord]) -> String {
    let data = ReportData {
        records,
        generated_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    // Records are plain strings and numbers, which always encode.
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "{\"records\":[]}".to_string());
    // A key or function name holding `</script>` must not end the script
    // element early: `<\/` is the same string to JavaScript.
    let json = json.replace("</", "<\\/");
    REPORT_HTML
        .replacen("/*STYLE*/", STYLE_CSS, 1)
        .replacen("/*SCRIPT*/", SCRIPT_JS, 1)
        .replacen("/*DATA*/", &json, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::StreamKind;

    #[test]
    fn the_report_embeds_its_records_safely() {
        let r = TaskStreamRecord {
            seq: 0,
            key: "evil-</script><script>alert(1)</script>".into(),
            function: "f".into(),
            worker: "w".into(),
            thread: 0,
            start_us: 1,
            stop_us: 2,
            kind: StreamKind::Compute,
        };
        let html = render(&[r]);
        assert_eq!(
            html.matches("</script>").count(),
            2,
            "only the page's own two script ends"
        );
        assert!(html.contains("evil-<\\/script>"));
        assert!(!html.contains("/*DATA*/") && !html.contains("/*SCRIPT*/") && !html.contains("/*STYLE*/"));
    }
}
