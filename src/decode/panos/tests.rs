use super::*;

#[test]
fn placeholder_recognises_prefix() {
    assert!(looks_like_panos("1,2026/12/03 10:00:00,012345678901,TRAFFIC,end"));
}
