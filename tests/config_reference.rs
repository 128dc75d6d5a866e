//! The README's configuration reference lists every key the code accepts. The code's list
//! comes from the code itself: a key no section knows is refused, and the refusal names
//! every key the section takes.

use std::process::Command;

const BASE: &str =
    "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:1\"\n\n[output]\ntype = \"stdout\"\n";

/// The keys a section accepts, as `cefgate check` lists them when refusing an unknown one.
fn accepted_keys(config: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(["check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown key was accepted");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let listed = stderr
        .split("unknown field `zz_unknown`, expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of keys in: {stderr}"));
    let listed = listed.lines().next().unwrap();
    let keys: Vec<String> = listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(!keys.is_empty(), "{stderr}");
    keys
}

/// The README text of `### heading` up to the next heading.
fn reference_section(readme: &str, heading: &str) -> String {
    let reference = readme
        .split("## Configuration reference")
        .nth(1)
        .expect("the README has a configuration reference");
    let reference = reference.split("\n## ").next().unwrap();
    reference
        .split(&format!("### {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no `### {heading}` in the configuration reference"))
        .split("\n### ")
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn every_accepted_key_is_in_the_readme_reference() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let with_section =
        |section: &str, required: &str| format!("{BASE}\n[{section}]\n{required}zz_unknown = 1\n");
    let cases: Vec<(&str, String)> = vec![
        ("Top level", format!("{BASE}\n[zz_unknown]\n")),
        (
            "`[[listener]]`",
            "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:1\"\nzz_unknown = 1\n\n[output]\ntype = \"stdout\"\n".to_string(),
        ),
        (
            "`[output]`",
            "[[listener]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:1\"\n\n[output]\ntype = \"stdout\"\nzz_unknown = 1\n".to_string(),
        ),
        ("`[batch]`", with_section("batch", "")),
        ("`[record]`", with_section("record", "")),
        ("`[pipeline]`", with_section("pipeline", "")),
        ("`[spool]`", with_section("spool", "path = \"/tmp/cefgate-spool\"\n")),
        ("`[metrics]`", with_section("metrics", "")),
        ("`[log]`", with_section("log", "")),
    ];
    let mut missing = Vec::new();
    for (heading, config) in cases {
        let text = reference_section(&readme, heading);
        for key in accepted_keys(&config) {
            if !text.contains(&format!("`{key}`")) {
                missing.push(format!("{heading} {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys the code accepts but the README's configuration reference does not list: {missing:?}"
    );
}
