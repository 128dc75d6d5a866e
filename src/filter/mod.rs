//! Filter: which rows an output takes (`where`, a KQL predicate) and which columns it drops
//! (`project_away`). Sentinel is billed per GB ingested; this is where the noise is dropped
//! before it crosses the wire, in the language Sentinel users already write.
//!
//! A predicate is parsed and checked once, when the configuration is read ([`parse`]), and
//! evaluated per row against the typed [`Row`] the record stage built: no text is parsed
//! again, and the common operators allocate nothing.

mod parse;

use std::borrow::Cow;

use parse::{CompareOp, Expr, Function, Literal, Operand, TextOp};
pub use parse::{MAX_DEPTH, ParseError};

use crate::record::schema;
use crate::record::{Row, Value};

/// A compiled `where` predicate.
#[derive(Debug, Clone)]
pub struct Predicate {
    expr: Expr,
    text: String,
}

impl Predicate {
    /// Parses and checks `text`; an error says what was expected at which byte.
    pub fn parse(text: &str) -> Result<Predicate, ParseError> {
        let expr = parse::parse(text, &column)?;
        Ok(Predicate {
            expr,
            text: text.to_string(),
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when `row` satisfies the predicate.
    pub fn keeps(&self, row: &Row<'_>) -> bool {
        eval(&self.expr, row)
    }
}

/// [`Predicate::parse`] for text that stands alone (`convert --where`): the error keeps the
/// text, to show the place under it.
impl std::str::FromStr for Predicate {
    type Err = PredicateError;

    fn from_str(text: &str) -> Result<Predicate, PredicateError> {
        Predicate::parse(text).map_err(|error| PredicateError {
            text: text.to_string(),
            error,
        })
    }
}

/// A predicate that does not parse, with its text: shown as the message, then the text on
/// its own line with a caret under the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}\n  {text}\n  {}^", " ".repeat(chars_before(.text, .error.offset)))]
pub struct PredicateError {
    pub text: String,
    pub error: ParseError,
}

/// How many characters of `text` stand before byte `offset`.
fn chars_before(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].chars().count()
}

/// The column `name` names in either table, as the row builder spells it.
pub fn column(name: &str) -> Option<&'static str> {
    schema::common_security_log()
        .into_iter()
        .chain(schema::syslog())
        .map(|(c, _)| c)
        .find(|c| *c == name)
}

/// Columns one output leaves out of its rows.
#[derive(Debug, Clone, Default)]
pub struct ProjectAway {
    columns: Vec<&'static str>,
}

impl ProjectAway {
    /// Checks the names: each must be a column, and `TimeGenerated` cannot go (every table
    /// needs it). Returns the first name that cannot be removed, and why.
    pub fn new(names: &[&str]) -> Result<ProjectAway, (usize, String)> {
        let mut columns = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if *name == schema::columns::TIME_GENERATED {
                return Err((
                    i,
                    "TimeGenerated cannot be removed: every table needs it".into(),
                ));
            }
            match column(name) {
                Some(c) => columns.push(c),
                None => {
                    return Err((
                        i,
                        format!("unknown column `{name}` (a CommonSecurityLog or Syslog column)"),
                    ));
                }
            }
        }
        Ok(ProjectAway { columns })
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// True when `column` is left out.
    pub fn removes(&self, column: &str) -> bool {
        self.columns.iter().any(|c| same(c, column))
    }
}

/// Column names are mostly the same `&'static str`: compare the pointer first.
fn same(a: &str, b: &str) -> bool {
    std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len() || a == b
}

/// A value while evaluating: a column's, a literal's or a function's.
#[derive(Debug, Clone)]
enum V<'r> {
    Null,
    Str(Cow<'r, str>),
    Int(i64),
    Real(f64),
    Bool(bool),
}

impl<'r> V<'r> {
    fn text(&self) -> Cow<'_, str> {
        match self {
            V::Null => Cow::Borrowed(""),
            V::Str(s) => Cow::Borrowed(s),
            V::Int(n) => Cow::Owned(n.to_string()),
            V::Real(x) => Cow::Owned(x.to_string()),
            V::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            V::Int(n) => Some(*n as f64),
            V::Real(x) => Some(*x),
            V::Str(s) => s.trim().parse().ok(),
            V::Null | V::Bool(_) => None,
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            V::Null => true,
            V::Str(s) => s.is_empty(),
            _ => false,
        }
    }

    fn truth(&self) -> bool {
        match self {
            V::Bool(b) => *b,
            V::Int(n) => *n != 0,
            V::Real(x) => *x != 0.0,
            V::Str(s) => s.as_ref() == "true",
            V::Null => false,
        }
    }
}

/// A row's value of `column`: a scan of a few dozen names, which first compares each name's
/// length and last byte (that tells nearly all apart) before its text.
fn lookup<'r>(row: &'r Row<'_>, column: &str) -> Option<&'r Value<'r>> {
    let (len, last) = (column.len(), column.as_bytes().last().copied());
    row.columns
        .iter()
        .find(|(name, _)| {
            name.len() == len && name.as_bytes().last().copied() == last && *name == column
        })
        .map(|(_, v)| v)
}

fn literal(l: &Literal) -> V<'_> {
    match l {
        Literal::Str(s) => V::Str(Cow::Borrowed(s)),
        Literal::Int(n) => V::Int(*n),
        Literal::Real(x) => V::Real(*x),
        Literal::Bool(b) => V::Bool(*b),
    }
}

fn operand<'r>(op: &'r Operand, row: &'r Row<'_>) -> V<'r> {
    match op {
        Operand::Column(c) => match lookup(row, c) {
            None => V::Null,
            Some(Value::Str(s)) => V::Str(Cow::Borrowed(s)),
            Some(Value::Int(n)) => V::Int(*n),
            Some(Value::Real(x)) => V::Real(*x),
            Some(Value::Time(t)) => V::Str(Cow::Owned(crate::decode::time::iso8601(t))),
        },
        Operand::Literal(l) => literal(l),
        Operand::Condition(e) => V::Bool(eval(e, row)),
        Operand::Call(f, arg) => {
            let v = operand(arg, row);
            match f {
                Function::IsEmpty => V::Bool(v.is_empty()),
                Function::IsNotEmpty => V::Bool(!v.is_empty()),
                Function::ToInt => v
                    .number()
                    .filter(|x| x.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(x))
                    .map_or(V::Null, |x| V::Int(x as i64)),
                Function::ToLong => v
                    .number()
                    .filter(|x| x.fract() == 0.0)
                    .map_or(V::Null, |x| V::Int(x as i64)),
                Function::ToString => V::Str(Cow::Owned(v.text().into_owned())),
                Function::ToLower => match v {
                    V::Str(Cow::Borrowed(s)) if !s.chars().any(char::is_uppercase) => {
                        V::Str(Cow::Borrowed(s))
                    }
                    other => V::Str(Cow::Owned(other.text().to_lowercase())),
                },
            }
        }
    }
}

fn eval(expr: &Expr, row: &Row<'_>) -> bool {
    match expr {
        Expr::Or(parts) => parts.iter().any(|e| eval(e, row)),
        Expr::And(parts) => parts.iter().all(|e| eval(e, row)),
        Expr::Not(e) => !eval(e, row),
        Expr::Truth(op) => operand(op, row).truth(),
        Expr::Compare { left, op, right } => {
            compare(&operand(left, row), *op, &operand(right, row))
        }
        Expr::Text {
            left,
            op,
            case_sensitive,
            negated,
            right,
        } => {
            let (l, r) = (operand(left, row), operand(right, row));
            text_op(&l.text(), *op, *case_sensitive, &r.text()) != *negated
        }
        Expr::In {
            left,
            set,
            case_insensitive,
            negated,
        } => {
            let l = operand(left, row);
            let op = if *case_insensitive {
                CompareOp::EqNoCase
            } else {
                CompareOp::Eq
            };
            set.iter().any(|item| compare(&l, op, &literal(item))) != *negated
        }
        Expr::Between {
            left,
            low,
            high,
            negated,
        } => {
            let inside = match (
                operand(left, row).number(),
                literal(low).number(),
                literal(high).number(),
            ) {
                (Some(x), Some(lo), Some(hi)) => lo <= x && x <= hi,
                _ => false,
            };
            inside != *negated
        }
        Expr::Matches { left, regex } => regex.is_match(&operand(left, row).text()),
    }
}

/// KQL's comparisons: numbers numerically, text exactly (`==`) or ignoring case (`=~`);
/// a missing value equals only the empty string and orders against nothing.
fn compare(l: &V<'_>, op: CompareOp, r: &V<'_>) -> bool {
    let numeric = |l: &V<'_>, r: &V<'_>| match (l, r) {
        (V::Int(a), V::Int(b)) => Some((*a as f64, *b as f64)),
        (V::Int(_) | V::Real(_), _) | (_, V::Int(_) | V::Real(_)) => {
            Some((l.number()?, r.number()?))
        }
        _ => None,
    };
    match op {
        CompareOp::Eq | CompareOp::Ne => {
            let equal = match (l, r) {
                (V::Null, V::Null) => true,
                (V::Null, other) | (other, V::Null) => other.is_empty(),
                (V::Int(a), V::Int(b)) => a == b,
                (V::Str(a), V::Str(b)) => a == b,
                (V::Bool(a), V::Bool(b)) => a == b,
                _ => match numeric(l, r) {
                    Some((a, b)) => a == b,
                    None => l.text() == r.text(),
                },
            };
            equal == (op == CompareOp::Eq)
        }
        CompareOp::EqNoCase | CompareOp::NeNoCase => {
            let (a, b) = (l.text(), r.text());
            let equal = if a.is_ascii() && b.is_ascii() {
                a.eq_ignore_ascii_case(&b)
            } else {
                a.to_lowercase() == b.to_lowercase()
            };
            equal == (op == CompareOp::EqNoCase)
        }
        CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => {
            if matches!(l, V::Null) || matches!(r, V::Null) {
                return false;
            }
            let ordering = match numeric(l, r) {
                Some((a, b)) => a.partial_cmp(&b),
                None => Some(l.text().cmp(&r.text())),
            };
            let Some(o) = ordering else { return false };
            match op {
                CompareOp::Lt => o.is_lt(),
                CompareOp::Le => o.is_le(),
                CompareOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            }
        }
    }
}

/// `has`, `contains`, `startswith`, `endswith`, ignoring case unless `case_sensitive`.
fn text_op(hay: &str, op: TextOp, case_sensitive: bool, needle: &str) -> bool {
    let ascii = hay.is_ascii() && needle.is_ascii();
    if !case_sensitive && !ascii {
        // Unicode case folding needs new strings; ASCII (nearly every log) does not.
        return text_op(&hay.to_lowercase(), op, true, &needle.to_lowercase());
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let eq = |a: &[u8], b: &[u8]| {
        if case_sensitive {
            a == b
        } else {
            a.eq_ignore_ascii_case(b)
        }
    };
    match op {
        TextOp::StartsWith => h.len() >= n.len() && eq(&h[..n.len()], n),
        TextOp::EndsWith => h.len() >= n.len() && eq(&h[h.len() - n.len()..], n),
        TextOp::Contains => find(h, n, 0, &eq).is_some(),
        TextOp::Has => {
            // A whole term: no letter or digit right before or after (where the needle
            // itself starts or ends with one).
            let alnum = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
            let (starts, ends) = (
                n.first().is_some_and(|b| alnum(*b)),
                n.last().is_some_and(|b| alnum(*b)),
            );
            let mut from = 0;
            while let Some(i) = find(h, n, from, &eq) {
                let before_ok = !starts || i == 0 || !alnum(h[i - 1]);
                let after = i + n.len();
                let after_ok = !ends || after == h.len() || !alnum(h[after]);
                if before_ok && after_ok {
                    return true;
                }
                from = i + 1;
            }
            n.is_empty()
        }
    }
}

/// The first position at or after `from` where `n` occurs in `h` (by `eq`).
fn find(h: &[u8], n: &[u8], from: usize, eq: &impl Fn(&[u8], &[u8]) -> bool) -> Option<usize> {
    if n.is_empty() {
        return Some(from.min(h.len()));
    }
    if h.len() < n.len() {
        return None;
    }
    let first = n[0];
    let (lo, hi) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut i = from;
    while i + n.len() <= h.len() {
        let j = memchr::memchr2(lo, hi, &h[i..=h.len() - n.len()])? + i;
        if eq(&h[j..j + n.len()], n) {
            return Some(j);
        }
        i = j + 1;
    }
    None
}

#[cfg(test)]
mod tests;
