//! Fuzzes the PROXY header parser: any bytes are a header (whose length lies within the
//! input), a request for more, or a refusal; never a panic. A header found in a prefix is
//! found the same in the whole.
#![no_main]

use cefgate::listen::proxy::{Parsed, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Header { len, .. }) => assert!(len <= data.len()),
        Ok(Parsed::NeedMore(n)) => assert!(n > 0),
        Err(_) => {}
    }
    if let Some(cut) = data.first().map(|b| usize::from(*b) % (data.len() + 1)) {
        if let Ok(Parsed::Header { source, len }) = parse(&data[..cut]) {
            assert_eq!(parse(data), Ok(Parsed::Header { source, len }));
        }
    }
});
