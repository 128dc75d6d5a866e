//! The CEF key dictionary, generated at build time from `grammars/cef-fields.tsv`.

pub use crate::row::ColumnType;

/// One row of `grammars/cef-fields.tsv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub short: &'static str,
    pub full: &'static str,
    pub cef_type: &'static str,
    pub column: &'static str,
    pub column_type: ColumnType,
}

include!(concat!(env!("OUT_DIR"), "/cef_fields.rs"));

/// The dictionary entry for a wire key: its short name (`src`), or its full name when it has no
/// short one (`deviceExternalId`).
pub fn lookup(key: &str) -> Option<(u16, &'static FieldSpec)> {
    field_index(key).map(|i| (i, &FIELDS[i as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_and_full_names_without_a_short_one() {
        assert_eq!(lookup("src").unwrap().1.column, "SourceIP");
        assert!(
            lookup("sourceAddress").is_none(),
            "a full name with a short alias"
        );
        assert!(lookup("bytesIn").is_none());
        assert!(lookup("fileSize").is_none());
        assert_eq!(
            lookup("deviceExternalId").unwrap().1.column,
            "DeviceExternalID"
        );
        assert!(lookup("start").is_none() && lookup("end").is_none());
        assert_eq!(lookup("cn2").unwrap().1.column, "FieldDeviceCustomNumber2");
        assert_eq!(lookup("externalId").unwrap().1.column, "ExtID");
        assert_eq!(lookup("dpt").unwrap().1.column_type, ColumnType::Int);
        assert!(lookup("FTNTFGTlogid").is_none());
        assert!(lookup("SRC").is_none(), "keys are case-sensitive");
        assert_eq!(lookup("act").unwrap().0, 0, "record::ACT_INDEX");
    }
}
