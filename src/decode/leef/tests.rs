use super::*;

#[test]
fn headers_of_both_versions_and_every_delimiter_form() {
    let r = parse("LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=10.0.0.1\tdst=10.0.0.2");
    assert_eq!(
        (
            r.version,
            r.vendor,
            r.product,
            r.product_version,
            r.event_id
        ),
        (
            "1.0",
            Some("Microsoft"),
            Some("MSExchange"),
            Some("4.0 SP1"),
            Some("15345")
        )
    );
    assert_eq!(r.attributes.len(), 2);
    for (field, text) in [
        ("^", "a=1^b=2"),
        ("x5E", "a=1^b=2"),
        ("0x5e", "a=1^b=2"),
        ("x09", "a=1\tb=2"),
        ("0x0009", "a=1\tb=2"),
        ("#", "a=1#b=2"),
    ] {
        let line = format!("LEEF:2.0|V|P|1|E|{field}|{text}");
        let r = parse(&line);
        let got: Vec<_> = r.attributes.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        assert_eq!(got, [("a", "1"), ("b", "2")], "{field}");
        assert!(!r.bad_delimiter && !r.malformed, "{field}");
    }
    // 2.0 without its delimiter field: the attributes start there, split on tabs.
    let r = parse("LEEF:2.0|V|P|1|E|a=1\tb=2");
    assert_eq!(r.attributes.len(), 2);
    // 1.0 from a device that separates with `|`.
    let r = parse("LEEF:1.0|V|P|1|E|cat=T|src=10.0.0.1|usrName=");
    let got: Vec<_> = r.attributes.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    assert_eq!(got, [("cat", "T"), ("src", "10.0.0.1"), ("usrName", "")]);
}

#[test]
fn escapes_and_broken_records() {
    let r = parse("LEEF:2.0|V|P|1|E|^|url=a?b\\=c^msg=x\\^y\\|z^k=v=w");
    let got: Vec<_> = r.attributes.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    assert_eq!(got, [("url", "a?b=c"), ("msg", "x^y|z"), ("k", "v=w")]);
    assert!(parse("LEEF:1.0|V|P").truncated_header);
    assert!(parse("LEEF:2.0|V|P|1|E|xZZ|a=1").bad_delimiter);
    assert!(parse("LEEF:1.0|V|P|1|E|a=1\tjunk\tb=2").malformed);
    assert_eq!(delimiter_of("x12345"), None);
    assert_eq!(delimiter_of(""), None);
}

#[test]
fn recognised_behind_every_header_and_not_otherwise() {
    assert!(looks_like_leef("LEEF:1.0|V|P|1|E|"));
    assert!(looks_like_leef("LEEF:2.0|V|P|1|E|^|"));
    for other in ["", "LEEF:", "LEEF:3.0|", "CEF:0|V|P|1|E|n|1|", "leef:1.0|V"] {
        assert!(!looks_like_leef(other), "{other:?}");
    }
    let (ibm, record) =
        ibm_header("<13>1 2019-01-18T11:07:53.520Z 192.168.1.1 LEEF:1.0|V|P|1|E|").unwrap();
    assert_eq!((ibm.host, record), ("192.168.1.1", "LEEF:1.0|V|P|1|E|"));
    assert_eq!(
        ibm_header("<13>1 2019-01-18T11:07:53.520Z host app - - - LEEF:1.0|"),
        None
    );
}
