//! `key=value key="quoted value" ...`: the body of FortiOS and SonicWall syslog, split into
//! pairs without copying. A quoted value may hold spaces and `\"` or `\\` escapes; a value
//! without quotes runs to the next space. Never fails: a token with no `=` is skipped and
//! counted, and a quote left open takes the rest of the line and is reported, so a format
//! keeps what it read.

use std::borrow::Cow;

/// One `key=value`, the value unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<'a> {
    pub key: &'a str,
    pub value: Cow<'a, str>,
    /// The value was written in quotes (some content keeps them: see SonicWall).
    pub quoted: bool,
}

/// What splitting a body found besides its pairs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Oddities {
    /// Tokens without `=`, skipped.
    pub bare_tokens: usize,
    /// A quoted value never closed: it runs to the end of the line.
    pub unbalanced_quote: bool,
    /// More pairs than the caller's bound: the rest of the line was not read.
    pub cut: bool,
}

/// Splits `body` into at most `max` pairs.
pub fn split(body: &str, max: usize) -> (Vec<Pair<'_>>, Oddities) {
    let mut pairs = Vec::with_capacity(48);
    let mut odd = Oddities::default();
    let mut rest = body.trim_end_matches(['\r', '\n']);
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if pairs.len() == max {
            odd.cut = true;
            break;
        }
        let token_end = memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len());
        let Some(eq) = memchr::memchr(b'=', &rest.as_bytes()[..token_end]) else {
            odd.bare_tokens += 1;
            rest = &rest[token_end..];
            continue;
        };
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        if let Some(quoted) = after.strip_prefix('"') {
            let (value, left) = quoted_value(quoted);
            pairs.push(Pair {
                key,
                value,
                quoted: true,
            });
            match left {
                Some(left) => rest = left,
                None => {
                    odd.unbalanced_quote = true;
                    break;
                }
            }
        } else {
            let end = memchr::memchr(b' ', after.as_bytes()).unwrap_or(after.len());
            pairs.push(Pair {
                key,
                value: Cow::Borrowed(&after[..end]),
                quoted: false,
            });
            rest = &after[end..];
        }
    }
    (pairs, odd)
}

/// The inside of a quoted value starting after its opening quote, and the text after its
/// closing quote (`None` when it never closes: the value is the rest of the text).
fn quoted_value(s: &str) -> (Cow<'_, str>, Option<&str>) {
    let bytes = s.as_bytes();
    let mut owned: Option<String> = None;
    let mut from = 0;
    let mut i = 0;
    while let Some(at) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
        let at = i + at;
        if bytes[at] == b'\\' {
            match bytes.get(at + 1) {
                Some(b'"') | Some(b'\\') => {
                    let text = owned.get_or_insert_with(String::new);
                    text.push_str(&s[from..at]);
                    text.push(bytes[at + 1] as char);
                    from = at + 2;
                    i = at + 2;
                }
                // Any other backslash is text.
                _ => i = at + 1,
            }
            continue;
        }
        let value = match owned {
            Some(mut text) => {
                text.push_str(&s[from..at]);
                Cow::Owned(text)
            }
            None => Cow::Borrowed(&s[..at]),
        };
        return (value, Some(&s[at + 1..]));
    }
    let value = match owned {
        Some(mut text) => {
            text.push_str(&s[from..]);
            Cow::Owned(text)
        }
        None => Cow::Borrowed(s),
    };
    (value, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv<'a>(pairs: &'a [Pair<'a>]) -> Vec<(&'a str, &'a str)> {
        pairs.iter().map(|p| (p.key, p.value.as_ref())).collect()
    }

    #[test]
    fn plain_and_quoted_values_with_spaces_and_escapes() {
        let (pairs, odd) = split(
            r#"date=2026-11-26 devname="FG 100F" msg="a \"quoted\" word, a \\ slash" x=1"#,
            100,
        );
        assert_eq!(
            kv(&pairs),
            [
                ("date", "2026-11-26"),
                ("devname", "FG 100F"),
                ("msg", r#"a "quoted" word, a \ slash"#),
                ("x", "1"),
            ]
        );
        assert!(pairs[1].quoted && !pairs[0].quoted);
        assert_eq!(odd, Oddities::default());
    }

    #[test]
    fn odd_lines_keep_what_was_read() {
        let (pairs, odd) = split(r#"a=1  bare b= c="open to the end"#, 100);
        assert_eq!(
            kv(&pairs),
            [("a", "1"), ("b", ""), ("c", "open to the end")]
        );
        assert_eq!(odd.bare_tokens, 1);
        assert!(odd.unbalanced_quote);
        let (pairs, odd) = split("a=1 b=2 c=3", 2);
        assert_eq!(pairs.len(), 2);
        assert!(odd.cut);
        // A value may hold `=`; a backslash before anything else is text.
        let (pairs, _) = split(r#"url=/a?b=c path="C:\dir\x""#, 100);
        assert_eq!(kv(&pairs), [("url", "/a?b=c"), ("path", r"C:\dir\x")]);
        assert_eq!(split("", 10).0, vec![]);
    }
}
