//! Generates the CEF key dictionary from `grammars/cef-fields.tsv` and the row columns from
//! `grammars/row-columns.tsv`, so the grammar folder stays the one source of truth for which
//! key fills which CommonSecurityLog column and which columns a row can carry.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::{env, fs, path::Path};

fn main() {
    cef_fields();
    row_columns();
    check_tables();
}

/// The grammar tables the code reads at run time (`include_str!`): every line has its
/// number of tab-separated fields, so a bad row fails the build, as a bad row of the tables
/// above does.
fn check_tables() {
    for (src, fields) in [
        ("grammars/cisco-asa-messages.tsv", 4),
        ("grammars/pan-os-fields.tsv", 4),
        ("grammars/fortigate-fields.tsv", 4),
        ("grammars/leef-fields.tsv", 2),
        ("grammars/simplified-device-action.tsv", 2),
        ("grammars/common-security-log.tsv", 2),
        ("grammars/dcr-transform-kql.tsv", 2),
    ] {
        println!("cargo:rerun-if-changed={src}");
        let text = fs::read_to_string(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        for (lineno, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let found = line.split('\t').count();
            assert!(
                found == fields && line.split('\t').all(|f| !f.trim().is_empty()),
                "{src}:{}: expected {fields} non-empty tab-separated fields, found {found}",
                lineno + 1
            );
        }
    }
}

fn column_kind(src: &str, lineno: usize, column_type: &str) -> &'static str {
    match column_type {
        "string" => "String",
        "int" => "Int",
        "long" => "Long",
        "real" => "Real",
        "datetime" => "DateTime",
        other => panic!("{src}:{}: unknown column type {other:?}", lineno + 1),
    }
}

/// `DeviceEventClassID` -> `DEVICE_EVENT_CLASS_ID`.
fn constant_name(column: &str) -> String {
    let chars: Vec<char> = column.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let lower_before = i > 0 && !chars[i - 1].is_ascii_uppercase();
        let upper_run_ends = i > 0
            && chars[i - 1].is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        if c.is_ascii_uppercase() && (lower_before || upper_run_ends) {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn row_columns() {
    let src = "grammars/row-columns.tsv";
    println!("cargo:rerun-if-changed={src}");
    let text = fs::read_to_string(src).expect("grammars/row-columns.tsv is readable");
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut lists: BTreeMap<&str, String> = BTreeMap::new();
    let mut list = "";
    for (lineno, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(
            cols.len() == 3,
            "{src}:{}: expected 3 tab-separated columns",
            lineno + 1
        );
        let (table, column, column_type) = (cols[0], cols[1], cols[2]);
        match (table, column) {
            ("CommonSecurityLog", "*") => {
                list = "CSL_TAIL";
                continue;
            }
            ("CommonSecurityLog", _) if list != "CSL_TAIL" => list = "CSL_HEAD",
            ("Syslog", _) => list = "SYSLOG",
            ("CommonSecurityLog", _) => {}
            (other, _) => panic!("{src}:{}: unknown table {other:?}", lineno + 1),
        }
        let kind = column_kind(src, lineno, column_type);
        let constant = constant_name(column);
        names.insert(constant.clone(), column.to_string());
        writeln!(
            lists.entry(list).or_default(),
            "    (columns::{constant}, ColumnType::{kind}),"
        )
        .unwrap();
    }
    let mut out = String::from("/// Generated from grammars/row-columns.tsv by build.rs.\n");
    out.push_str("pub mod columns {\n");
    for (constant, column) in &names {
        writeln!(out, "    pub const {constant}: &str = {column:?};").unwrap();
    }
    out.push_str("}\n\n");
    for (name, what) in [
        (
            "CSL_HEAD",
            "CommonSecurityLog columns before the dictionary's",
        ),
        (
            "CSL_TAIL",
            "CommonSecurityLog columns after the dictionary's",
        ),
        ("SYSLOG", "Syslog columns"),
    ] {
        writeln!(out, "/// {what}, in row order.").unwrap();
        writeln!(out, "pub static {name}: &[(&str, ColumnType)] = &[").unwrap();
        out.push_str(lists.get(name).map_or("", String::as_str));
        out.push_str("];\n\n");
    }
    let path = Path::new(&env::var("OUT_DIR").unwrap()).join("row_columns.rs");
    fs::write(path, out).unwrap();
}

fn cef_fields() {
    let src = "grammars/cef-fields.tsv";
    println!("cargo:rerun-if-changed={src}");
    let text = fs::read_to_string(src).expect("grammars/cef-fields.tsv is readable");

    let mut table = String::from("/// Generated from grammars/cef-fields.tsv by build.rs.\n");
    table.push_str("pub static FIELDS: &[FieldSpec] = &[\n");
    // wire key -> index.
    let mut names: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut count = 0usize;
    for (lineno, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(
            cols.len() == 5,
            "{src}:{}: expected 5 tab-separated columns, found {}",
            lineno + 1,
            cols.len()
        );
        let (short, full, cef_type, column, column_type) =
            (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let kind = column_kind(src, lineno, column_type);
        writeln!(
            table,
            "    FieldSpec {{ short: {short:?}, full: {full:?}, cef_type: {cef_type:?}, column: {column:?}, column_type: ColumnType::{kind} }},"
        )
        .unwrap();
        if let Some((_, true)) = names.get(short) {
            panic!("{src}:{}: short key {short:?} listed twice", lineno + 1);
        }
        // Only the key Microsoft's mapping table lists is mapped: the short key. An ArcSight
        // full name that has a short alias (`bytesIn` for `in`) stays in AdditionalExtensions,
        // as Microsoft's agent leaves it (fixtures/README.md, "Rows as Microsoft's agent
        // writes them"); full names without a short one (`deviceExternalId`) are the key.
        names.insert(short.to_string(), (count, true));
        count += 1;
    }
    table.push_str("];\n\n");
    table.push_str(
        "/// The dictionary entry for a key as written on the wire (short or full name).\n",
    );
    table.push_str("pub fn field_index(key: &str) -> Option<u16> {\n    match key {\n");
    for (name, (idx, _)) in &names {
        writeln!(table, "        {name:?} => Some({idx}),").unwrap();
    }
    table.push_str("        _ => None,\n    }\n}\n");

    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("cef_fields.rs");
    fs::write(out, table).unwrap();
}
