//! docs/cli.md names every command and every long flag the binary knows. The binary's own
//! help is the list: `cefgate --help`, then the `--help` of every command it lists, down to
//! `cefgate dlq replay`. Hidden commands are not in the help and need not be documented.
//! And the README's deployment example is a configuration `cefgate check` accepts.

use std::process::Command;

const CLI_REFERENCE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md"));

fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "cefgate {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of one `Heading:` block of clap's help, up to the next blank line.
fn block<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// The subcommands a help lists (clap's own `help` left out).
fn subcommands(help: &str) -> Vec<String> {
    block(help, "Commands:")
        .into_iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags a help lists: `--name` at the start of an option line (the description of
/// a long help is indented further, and is not read).
fn long_flags(help: &str) -> Vec<String> {
    block(help, "Options:")
        .into_iter()
        .filter(|l| {
            let indent = l.len() - l.trim_start().len();
            indent <= 6 && l.trim_start().starts_with('-')
        })
        .flat_map(|l| {
            let head = l.trim_start().split("  ").next().unwrap_or_default();
            head.split([',', ' '])
                .filter(|w| w.starts_with("--"))
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `flag` occurs in the reference as itself, not as the start of a longer flag.
fn mentions_flag(flag: &str) -> bool {
    CLI_REFERENCE.match_indices(flag).any(|(at, _)| {
        let next = CLI_REFERENCE[at + flag.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_command_and_flag_is_in_the_cli_reference() {
    let mut missing = Vec::new();
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    let mut commands_seen = 0;
    while let Some(path) = pending.pop() {
        let text = help(&path);
        let children = subcommands(&text);
        if !path.is_empty() && children.is_empty() {
            commands_seen += 1;
            let name = format!("`cefgate {}", path.join(" "));
            if !CLI_REFERENCE.contains(&name) {
                missing.push(format!("command: cefgate {}", path.join(" ")));
            }
        }
        for flag in long_flags(&text) {
            if !mentions_flag(&flag) {
                missing.push(format!("flag of `cefgate {}`: {flag}", path.join(" ")));
            }
        }
        for child in children {
            let mut next = path.clone();
            next.push(child);
            pending.push(next);
        }
    }
    assert!(commands_seen >= 8, "only {commands_seen} commands found");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "in the binary's help but not in docs/cli.md: {missing:?}"
    );
}

/// The README's deployment example is a configuration `cefgate check` accepts (its spool
/// moved into a temporary folder, its secret given in the environment).
#[test]
fn the_readme_deployment_example_is_valid() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let example = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README has a TOML example");
    assert!(example.contains("type              = \"logs-ingestion\""));
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let config = example.replace("/var/lib/cefgate/spool", spool.to_str().unwrap());
    let path = dir.path().join("cefgate.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cefgate"))
        .arg("check")
        .arg(&path)
        .env("CEFGATE_CLIENT_SECRET", "example-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cefgate check refuses the README's example: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
