//! The columns a row can carry, generated at build time from `grammars/row-columns.tsv` (and,
//! for the CEF extension columns, `grammars/cef-fields.tsv`). The row builder writes the
//! [`columns`] constants; `cefgate dcr-template` declares [`common_security_log`] and
//! [`syslog`]. One source, so a stream can never miss a column a row carries.

use super::fields::{ColumnType, FIELDS};

include!(concat!(env!("OUT_DIR"), "/row_columns.rs"));

/// Every column of a CommonSecurityLog row, with its type, in row order.
pub fn common_security_log() -> Vec<(&'static str, ColumnType)> {
    let mut all = CSL_HEAD.to_vec();
    all.extend(FIELDS.iter().map(|f| (f.column, f.column_type)));
    all.extend_from_slice(CSL_TAIL);
    all
}

/// Every column of a Syslog row, with its type, in row order.
pub fn syslog() -> Vec<(&'static str, ColumnType)> {
    SYSLOG.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_constants() {
        assert_eq!(columns::DEVICE_EVENT_CLASS_ID, "DeviceEventClassID");
        assert_eq!(columns::HOST_IP, "HostIP");
        assert_eq!(columns::CEFGATE_EVENT_ID, "CefgateEventId");
        assert_eq!(syslog()[0], ("TimeGenerated", ColumnType::DateTime));
        let csl = common_security_log();
        assert!(csl.contains(&("SourceIP", ColumnType::String)));
        assert_eq!(
            csl.last(),
            Some(&("CefgateReceivedTime", ColumnType::DateTime))
        );
    }
}
