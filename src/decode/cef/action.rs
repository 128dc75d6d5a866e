//! `SimplifiedDeviceAction`: the device's action reduced to the words Sentinel content
//! filters on. Microsoft's agent copies most actions unchanged and rewrites a few
//! (`deny` and `Denied` become `Deny`); the words it rewrites are data, in
//! `grammars/simplified-device-action.tsv`.

use std::borrow::Cow;
use std::sync::LazyLock;

const TABLE: &str = include_str!("../../../grammars/simplified-device-action.tsv");

/// `(device action, simplified)` pairs, read once from the grammar file.
static REWRITES: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .collect()
});

/// The `SimplifiedDeviceAction` for a `DeviceAction`: the rewrite when the table lists the
/// action (whole word, any case), the action itself otherwise.
pub fn simplified(action: Cow<'_, str>) -> Cow<'_, str> {
    match REWRITES
        .iter()
        .find(|(from, _)| from.eq_ignore_ascii_case(&action))
    {
        Some((_, to)) => Cow::Borrowed(to),
        None => action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_and_every_line_has_two_fields() {
        let lines = TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count();
        assert_eq!(REWRITES.len(), lines);
        assert!(lines >= 2);
    }

    #[test]
    fn listed_words_are_rewritten_others_copied() {
        assert_eq!(simplified("deny".into()), "Deny");
        assert_eq!(simplified("Denied".into()), "Deny");
        assert_eq!(simplified("DENY".into()), "Deny");
        assert_eq!(simplified("Block".into()), "Block");
        assert_eq!(simplified("blocked".into()), "blocked");
        assert_eq!(simplified("Deny all".into()), "Deny all");
        assert_eq!(simplified("".into()), "");
    }
}
