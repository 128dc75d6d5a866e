//! docs/configuration.md against the code, in both directions.
//!
//! What the configuration accepts is known to serde alone: every section is a struct with
//! `deny_unknown_fields`, and serde's refusal of an unknown key lists every key the struct
//! takes ("unknown field `x`, expected one of `a`, `b`, ..."). The sections themselves are
//! the keys of the top level, found the same way. So the test asks the real reader
//! ([`read_toml`]) for each list instead of keeping a list of its own:
//!
//! - every key a section accepts must be in that section's tables in the reference;
//! - every key the reference lists must be accepted: a file setting it alone in its section
//!   may be refused for its value or for what is missing, but never as an unknown field
//!   (this also covers keys serde's list would not name, such as aliases).

use super::read_toml;

const REFERENCE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/configuration.md"
));

const PROBE: &str = "zz_unknown";

/// The keys serde lists when it refuses `zz_unknown` in `text`, or `None` when `text` is
/// refused for another reason (or not at all).
fn accepted_keys(text: &str) -> Option<Vec<String>> {
    let message = match read_toml(text) {
        Ok(_) => return None,
        Err(e) => e.message().to_string(),
    };
    let listed = message
        .split(&format!("unknown field `{PROBE}`, expected "))
        .nth(1)?;
    let listed = listed.lines().next().unwrap_or_default();
    let keys: Vec<String> = listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// The reference's `## ` sections: heading -> the keys in the first column of its tables.
fn documented_sections() -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in REFERENCE.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            sections.push((heading.trim().to_string(), Vec::new()));
        } else if let (Some(cells), Some((_, keys))) =
            (line.strip_prefix("| `"), sections.last_mut())
        {
            let first_cell = cells.split(" |").next().unwrap_or_default();
            let first_cell = format!("`{first_cell}");
            keys.extend(first_cell.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    sections
}

/// The reference's keys under the heading that names `[section]` or `[[section]]`.
fn documented_keys(section: &str) -> Vec<String> {
    let names = [format!("`[{section}]`"), format!("`[[{section}]]`")];
    let found: Vec<_> = documented_sections()
        .into_iter()
        .filter(|(heading, _)| names.iter().any(|n| heading == n))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "docs/configuration.md needs one section headed `[{section}]` or `[[{section}]]`"
    );
    found.into_iter().next().unwrap().1
}

/// A file holding `body` in `section`, written as the table or array of tables the code
/// takes, and the keys the section accepts.
fn section_shape(section: &str) -> (String, Vec<String>) {
    for header in [format!("[{section}]"), format!("[[{section}]]")] {
        if let Some(keys) = accepted_keys(&format!("{header}\n{PROBE} = 1\n")) {
            return (header, keys);
        }
    }
    panic!("neither [{section}] nor [[{section}]] refuses an unknown key with a list of keys");
}

fn top_level_keys() -> Vec<String> {
    accepted_keys(&format!("{PROBE} = 1\n")).expect("the top level lists its keys")
}

#[test]
fn the_probe_finds_every_section() {
    let top = top_level_keys();
    for section in ["listener", "output", "batch", "spool", "metrics"] {
        assert!(top.iter().any(|k| k == section), "{top:?}");
    }
    // [output] may also be [[output]]; both spellings take the same keys.
    let (_, single) = section_shape("output");
    let several = accepted_keys(&format!("[[output]]\n{PROBE} = 1\n")).unwrap();
    assert_eq!(single, several);
}

#[test]
fn every_key_the_code_accepts_is_in_the_reference() {
    let mut missing = Vec::new();
    let top_documented: Vec<String> = documented_sections()
        .into_iter()
        .find(|(heading, _)| heading == "Top level")
        .expect("docs/configuration.md has a `## Top level` section")
        .1;
    for key in top_level_keys() {
        if !top_documented.contains(&key) {
            missing.push(format!("top level: {key}"));
        }
        let (header, accepted) = section_shape(&key);
        let documented = documented_keys(&key);
        for k in accepted {
            if !documented.contains(&k) {
                missing.push(format!("{header} {k}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys the code accepts but docs/configuration.md does not list: {missing:?}"
    );
}

#[test]
fn every_key_in_the_reference_is_accepted() {
    let mut unknown = Vec::new();
    let sections = documented_sections();
    assert!(
        sections.len() > 5,
        "no sections found in docs/configuration.md"
    );
    for (heading, keys) in sections {
        let section = heading
            .trim_matches('`')
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let header = if heading == "Top level" {
            None
        } else if heading.starts_with("`[") {
            Some(section_shape(&section).0)
        } else {
            continue;
        };
        for key in keys {
            let text = match &header {
                None => format!("{key} = 0\n"),
                Some(h) => format!("{h}\n{key} = 0\n"),
            };
            if let Err(e) = read_toml(&text)
                && e.message().contains("unknown field")
            {
                unknown.push(format!("{heading} {key}: {}", e.message().trim()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "keys docs/configuration.md lists but the code refuses: {unknown:?}"
    );
}
