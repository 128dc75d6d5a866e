//! Fuzzes the configuration loader: any text is either a configuration or a list of
//! problems, each with a line and column inside the text; never a panic.
#![no_main]

use cefgate::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse("fuzz.toml", text) {
        assert!(!e.problems.is_empty());
        let lines = text.lines().count().max(1) + 1;
        for p in &e.problems {
            assert!(p.line >= 1 && p.line <= lines, "{p}");
            assert!(p.column >= 1, "{p}");
        }
    }
});
