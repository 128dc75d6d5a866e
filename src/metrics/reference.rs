//! `docs/metrics.md`, the metrics reference, rendered from [`CATALOG`]: the same list
//! `/metrics` and the exit report are rendered from, so the reference names every metric
//! they show, as they show it. The checked-in file is compared with [`markdown`] by a test;
//! `CEFGATE_BLESS=1 cargo test metrics_reference` rewrites it after the list changed.

use std::fmt::Write as _;

use super::{CATALOG, Descriptor, Kind};

/// Where the reference is kept, from the crate's root.
pub const PATH: &str = "docs/metrics.md";

/// The command that rewrites [`PATH`] from the list.
pub const BLESS_COMMAND: &str = "CEFGATE_BLESS=1 cargo test metrics_reference";

/// The reference: one table row per metric of [`CATALOG`], in its order.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# cefgate metrics\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from src/metrics/catalog.rs; do not edit. Rewrite with `{BLESS_COMMAND}`. -->\n"
    );
    out.push_str(
        "`[metrics] address` serves these at `/metrics`, in the Prometheus text format. \
         When `cefgate run` ends it prints those with an exit report name to standard error, \
         one `name value` line each (a labelled one, one line per series).\n\n",
    );
    out.push_str("| Metric | Type | Labels | Exit report | Help |\n");
    out.push_str("|---|---|---|---|---|\n");
    for metric in CATALOG {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            code_or_empty(metric.in_metrics.then(|| metric.exposition_name())),
            kind_name(metric.kind),
            labels(metric),
            code_or_empty(metric.in_report.then(|| report_name(metric))),
            escape(metric.help),
        );
    }
    out
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    }
}

/// The label names, each in backticks, comma-separated.
fn labels(metric: &Descriptor) -> String {
    let names: Vec<String> = metric.labels.iter().map(|l| format!("`{l}`")).collect();
    names.join(", ")
}

/// How the exit report names it: `cefgate_name`, or `cefgate_name{label="…"}` for a family.
fn report_name(metric: &Descriptor) -> String {
    if metric.labels.is_empty() {
        return format!("cefgate_{}", metric.name);
    }
    let labels: Vec<String> = metric.labels.iter().map(|l| format!("{l}=\"…\"")).collect();
    format!("cefgate_{}{{{}}}", metric.name, labels.join(","))
}

fn code_or_empty(name: Option<String>) -> String {
    name.map(|n| format!("`{n}`")).unwrap_or_default()
}

/// Help text made safe for a table cell.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PATH)
    }

    #[test]
    fn metrics_reference_is_the_checked_in_docs_metrics_md() {
        let rendered = markdown();
        let path = checked_in_path();
        if std::env::var_os("CEFGATE_BLESS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().expect("docs/ has a parent"))
                .expect("create docs/");
            std::fs::write(&path, &rendered).expect("write docs/metrics.md");
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        if checked_in != rendered {
            let first_difference = checked_in
                .lines()
                .zip(rendered.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| checked_in.lines().count().min(rendered.lines().count()));
            panic!(
                "{PATH} is not what the metrics list (src/metrics/catalog.rs) renders \
                 (first difference at line {}); rewrite it with `{BLESS_COMMAND}` and commit it",
                first_difference + 1
            );
        }
    }

    #[test]
    fn metrics_reference_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for metric in CATALOG {
            assert!(seen.insert(metric.name), "{} listed twice", metric.name);
        }
        let mut served = std::collections::BTreeSet::new();
        for metric in CATALOG.iter().filter(|m| m.in_metrics) {
            assert!(
                served.insert(metric.exposition_name()),
                "{} served twice",
                metric.exposition_name()
            );
        }
    }
}
