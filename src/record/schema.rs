//! Every column a row of each table can carry, in row order: the lists of
//! `grammars/row-columns.tsv` around the CEF dictionary's columns (`grammars/cef-fields.tsv`).
//! `cefgate dcr-template` declares these, so a stream can never miss a column a row carries.

use crate::decode::cef::FIELDS;
use crate::row::ColumnType;
pub use crate::row::schema::columns;
use crate::row::schema::{CSL_HEAD, CSL_TAIL, SYSLOG};

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
            Some(&("CefgateTimeGenerated", ColumnType::DateTime))
        );
    }
}
