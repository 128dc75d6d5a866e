use super::*;

fn ext(line: &str) -> Vec<(String, String)> {
    let ev = parse(line).expect("parses");
    ev.pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_owned()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn header_fields_in_order() {
    let ev = parse("CEF:0|Vendor|Product|1.0|0000013|Port scan|7|").unwrap();
    assert_eq!(ev.version, "0");
    assert_eq!(ev.device_vendor, "Vendor");
    assert_eq!(ev.device_product, "Product");
    assert_eq!(ev.device_version, "1.0");
    assert_eq!(ev.device_event_class_id, "0000013");
    assert_eq!(ev.name, "Port scan");
    assert_eq!(ev.severity, "7");
    assert!(ev.pairs().is_empty());
    assert!(ev.extension().take_unkeyed().is_none());
}

#[test]
fn header_escapes_pipe_and_backslash() {
    let ev = parse(r"CEF:1|Ven\|dor|Pro\\duct|1|id|a\|b\\c|High|").unwrap();
    assert_eq!(ev.version, "1");
    assert_eq!(ev.device_vendor, "Ven|dor");
    assert_eq!(ev.device_product, r"Pro\duct");
    assert_eq!(ev.name, r"a|b\c");
    assert!(matches!(ev.device_version, Cow::Borrowed(_)));
}

#[test]
fn header_unknown_escape_keeps_backslash() {
    let ev = parse(r"CEF:0|V|P|1|id|C:\temp|5|").unwrap();
    assert_eq!(ev.name, r"C:\temp");
}

#[test]
fn header_equals_needs_no_escape() {
    let ev = parse("CEF:0|V|P|1|id|a=b|5|x=1").unwrap();
    assert_eq!(ev.name, "a=b");
    assert_eq!(ext("CEF:0|V|P|1|id|a=b|5|x=1"), pairs(&[("x", "1")]));
}

#[test]
fn empty_header_fields() {
    let ev = parse("CEF:0||||||||").unwrap();
    assert_eq!(ev.device_vendor, "");
    assert_eq!(ev.severity, "");
}

#[test]
fn truncated_header_keeps_what_was_found() {
    match parse("CEF:0|Vendor|Product|1.0|src=1.2.3.4 act=x") {
        Err(CefError::TruncatedHeader { event, found }) => {
            assert_eq!(found, 3);
            assert_eq!(event.device_version, "1.0");
            assert_eq!(event.device_event_class_id, "");
            assert_eq!(event.pairs().len(), 2, "extension kept: {event:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = parse("CEF:0|Vendor|Product|1.0|class").unwrap_err();
    assert_eq!(err.to_string(), "CEF header has 5 of 7 fields");
}

#[test]
fn severity_without_closing_pipe_is_a_whole_header() {
    let ev = parse("CEF:0|V|P|1|id|name|10").unwrap();
    assert_eq!(ev.severity, "10");
    assert!(ev.pairs().is_empty());
}

#[test]
fn no_marker() {
    assert_eq!(parse("CEF0|V|P").unwrap_err(), CefError::NoMarker);
    assert_eq!(parse("CEF:x|V").unwrap_err(), CefError::NoMarker);
}

#[test]
fn finds_first_marker_after_prefix() {
    let s = "<134>Sep 19 08:26:10 host CEF:0|V|P|1|1|n|1|a=CEF:1|x";
    assert_eq!(find_marker(s), Some(26));
    assert_eq!(find_marker("no CEF: here, CEF:12|x"), Some(14));
    assert_eq!(find_marker("CEF:"), None);
}

#[test]
fn values_with_spaces() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1|filePath=/user/dir/my file name.txt act=blocked now"),
        pairs(&[
            ("filePath", "/user/dir/my file name.txt"),
            ("act", "blocked now")
        ])
    );
}

#[test]
fn unescaped_equals_stays_in_value() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1|request=https://h/p?a=b&c=d msg=a = b src=1.1.1.1"),
        pairs(&[
            ("request", "https://h/p?a=b&c=d"),
            ("msg", "a = b"),
            ("src", "1.1.1.1")
        ])
    );
}

#[test]
fn extension_escapes() {
    assert_eq!(
        ext(r"CEF:0|V|P|1|1|n|1|msg=a\=b c\\d line1\nline2\rx pipe\|y other\q"),
        pairs(&[("msg", "a=b c\\d line1\nline2\rx pipe|y other\\q")])
    );
}

#[test]
fn escaped_equals_is_no_key_boundary() {
    assert_eq!(
        ext(r"CEF:0|V|P|1|1|n|1|msg=x y\=z k=v"),
        pairs(&[("msg", "x y=z"), ("k", "v")])
    );
}

#[test]
fn escaped_backslash_before_equals_is_a_boundary() {
    assert_eq!(
        ext(r"CEF:0|V|P|1|1|n|1|filePath=C:\\ act=x"),
        pairs(&[("filePath", "C:\\"), ("act", "x")])
    );
}

#[test]
fn trailing_white_space_of_values_trimmed() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1|a=x  b= y z   \t\r"),
        pairs(&[("a", "x"), ("b", " y z")])
    );
}

#[test]
fn empty_values() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1|a= b=2 c="),
        pairs(&[("a", ""), ("b", "2"), ("c", "")])
    );
}

#[test]
fn leading_space_after_header_and_key_chars() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1| ad.field[0]=x FTNT-x=y"),
        pairs(&[("ad.field[0]", "x"), ("FTNT-x", "y")])
    );
}

#[test]
fn duplicates_kept_in_order() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1|a=1 a=2"),
        pairs(&[("a", "1"), ("a", "2")])
    );
}

#[test]
fn text_without_key_is_kept_apart() {
    let ev = parse("CEF:0|V|P|1|1|n|1|garbage here src=1.1.1.1").unwrap();
    assert_eq!(ev.extension().take_unkeyed(), Some("garbage here"));
    assert_eq!(ev.pairs(), vec![("src", Cow::Borrowed("1.1.1.1"))]);
    let ev = parse("CEF:0|V|P|1|1|n|1|only garbage").unwrap();
    assert_eq!(ev.extension().take_unkeyed(), Some("only garbage"));
    assert!(ev.pairs().is_empty());
}

#[test]
fn swar_search_matches_a_plain_search() {
    let text = b"0123456789abcdef=xyz\\0123456789=";
    for from in 0..text.len() {
        for len in from..=text.len() {
            let slice = &text[..len];
            let plain = slice[from..]
                .iter()
                .position(|&b| b == b'=' || b == b'\\')
                .map(|p| p + from);
            assert_eq!(
                find_eq_or_backslash(slice, from),
                plain,
                "from {from} len {len}"
            );
        }
    }
}

#[test]
fn lone_trailing_backslash() {
    assert_eq!(ext("CEF:0|V|P|1|1|n|1|a=x\\"), pairs(&[("a", "x\\")]));
    assert!(parse("CEF:0|V|P|1|1\\").is_err());
}

#[test]
fn non_ascii_values() {
    assert_eq!(
        ext("CEF:0|V|P|1|1|n|1|suser=Jürgen Müller msg=café=ok"),
        pairs(&[("suser", "Jürgen Müller"), ("msg", "café=ok")])
    );
}

#[test]
fn escape_functions_invert_the_decoder() {
    let hv = "a|b\\c";
    let v = "x=y\\z\nw\r";
    let line = format!(
        "CEF:0|{}|P|1|1|n|1|k={} j=1",
        escape_header(hv),
        escape_value(v)
    );
    let ev = parse(&line).unwrap();
    assert_eq!(ev.device_vendor, hv);
    assert_eq!(ext(&line), pairs(&[("k", v), ("j", "1")]));
}
