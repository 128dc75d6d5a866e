//! Generates the CEF key dictionary from `grammars/cef-fields.tsv`, so the grammar folder stays
//! the one source of truth for which key fills which CommonSecurityLog column.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::{env, fs, path::Path};

fn main() {
    let src = "grammars/cef-fields.tsv";
    println!("cargo:rerun-if-changed={src}");
    let text = fs::read_to_string(src).expect("grammars/cef-fields.tsv is readable");

    let mut table = String::from("/// Generated from grammars/cef-fields.tsv by build.rs.\n");
    table.push_str("pub static FIELDS: &[FieldSpec] = &[\n");
    // wire name -> index; short names win over full names that collide with them.
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
        let kind = match column_type {
            "string" => "String",
            "int" => "Int",
            "long" => "Long",
            "real" => "Real",
            "datetime" => "DateTime",
            other => panic!("{src}:{}: unknown column type {other:?}", lineno + 1),
        };
        writeln!(
            table,
            "    FieldSpec {{ short: {short:?}, full: {full:?}, cef_type: {cef_type:?}, column: {column:?}, column_type: ColumnType::{kind} }},"
        )
        .unwrap();
        if let Some((_, true)) = names.get(short) {
            panic!("{src}:{}: short key {short:?} listed twice", lineno + 1);
        }
        names.insert(short.to_string(), (count, true));
        names.entry(full.to_string()).or_insert((count, false));
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
