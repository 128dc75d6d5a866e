//! For the formats' tests: every capture `fixtures/<format>/*.log` converts to exactly its
//! golden rows `*.ndjson`. To see a difference after a deliberate change:
//! `cefgate convert --received-at 2026-11-26T10:00:00Z --collector-host cefgate-test
//! fixtures/<format>/X.log > fixtures/<format>/X.ndjson`, then review the `git diff`.

use std::path::{Path, PathBuf};

use crate::convert::{ConvertSettings, convert_stream};
use crate::record::{RecordSettings, RowBuilder};

/// Panics, naming the file and line, at the first row that differs from its golden.
pub fn assert_fixtures_match_goldens(format: &str) {
    let builder = RowBuilder::new(RecordSettings {
        collector_host: "cefgate-test".into(),
        ..RecordSettings::default()
    });
    let convert = ConvertSettings {
        received_at: Some(crate::time::test_context().received_at),
        zone: Default::default(),
        sender: None,
        filter: None,
        project_away: Default::default(),
        format: None,
    };
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format);
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(!logs.is_empty(), "no captures in {}", folder.display());
    for log in logs {
        let input = std::fs::read(&log).unwrap();
        let want = std::fs::read_to_string(log.with_extension("ndjson")).unwrap();
        let mut out = Vec::new();
        let mut summary = Default::default();
        convert_stream(
            &builder,
            &convert,
            &input[..],
            &mut out,
            &mut summary,
            |_| {},
        )
        .unwrap();
        let got = String::from_utf8(out).unwrap();
        assert_eq!(
            got.lines().count(),
            input.split(|b| *b == b'\n').count() - 1,
            "{}: one row per line",
            log.display()
        );
        for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "{} line {}", log.display(), n + 1);
        }
        assert_eq!(
            got.lines().count(),
            want.lines().count(),
            "{}",
            log.display()
        );
    }
}
