//! The CEF dictionary (`grammars/cef-fields.tsv`) is consistent with the CommonSecurityLog
//! schema (`grammars/common-security-log.tsv`), and the compiled table is that file.

use std::collections::HashMap;

use cefgate::record::{FIELDS, lookup};

fn tsv(name: &str) -> Vec<Vec<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("grammars")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn every_dictionary_row_maps_to_a_schema_column_of_the_same_type() {
    let schema: HashMap<String, String> = tsv("common-security-log.tsv")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let rows = tsv("cef-fields.tsv");
    assert_eq!(rows.len(), FIELDS.len(), "compiled table is out of date");
    for row in &rows {
        let (short, full, column, column_type) = (&row[0], &row[1], &row[3], &row[4]);
        assert_eq!(
            schema.get(column),
            Some(column_type),
            "{short}: column {column} ({column_type}) is not in the CommonSecurityLog schema"
        );
        let (_, spec) = lookup(short).unwrap_or_else(|| panic!("{short} does not map"));
        assert_eq!(&spec.column, column);
        assert_eq!(spec.column_type.name(), column_type);
        // Microsoft's agent maps the short key only: a full name with a short alias stays
        // in AdditionalExtensions (fixtures/README.md).
        if full != short {
            assert!(lookup(full).is_none(), "{full} maps, beside {short}");
        }
    }
}

#[test]
fn dictionary_covers_the_2023_columns_and_schema_spellings() {
    let columns: Vec<&str> = FIELDS.iter().map(|f| f.column).collect();
    for column in [
        "ExtID",
        "FieldDeviceCustomNumber1",
        "FieldDeviceCustomNumber2",
        "FieldDeviceCustomNumber3",
        "EventOutcome",
        "Reason",
        "DeviceEventCategory",
        "SourceMACAddress",
        "DestinationMACAddress",
        "DestinationUserID",
        "ProcessID",
        "OldFileID",
        "DeviceCustomIPv6Address2",
    ] {
        assert!(columns.contains(&column), "{column} missing");
    }
}

#[test]
fn no_two_keys_fill_the_same_column() {
    let mut seen = HashMap::new();
    for f in FIELDS {
        if let Some(other) = seen.insert(f.column, f.short) {
            panic!("{} and {} both fill {}", other, f.short, f.column);
        }
    }
}
