//! The `where` language: the part of KQL that Sentinel users write after `| where`, read
//! into an [`Expr`] tree. Hand-written recursive descent: the grammar is small, and every
//! error needs the byte offset of what was expected (the configuration reports it as
//! FILE:LINE:COLUMN inside the expression).
//!
//! ```text
//! expr     = and *("or" and)
//! and      = unary *("and" unary)
//! unary    = "not" "(" expr ")" / test
//! test     = operand [ cmp-op operand / str-op operand
//!                    / ("in" / "!in" / "in~" / "!in~") "(" literal *("," literal) ")"
//!                    / ["!"] "between" "(" literal ".." literal ")"
//!                    / "matches" "regex" string ]
//! operand  = "(" expr ")" / function "(" operand ")" / column / literal
//! cmp-op   = "==" / "!=" / "=~" / "!~" / "<" / "<=" / ">" / ">="
//! str-op   = ["!"] ("has" / "has_cs" / "contains" / "contains_cs" / "startswith"
//!                   / "startswith_cs" / "endswith" / "endswith_cs")
//! function = "isempty" / "isnotempty" / "toint" / "tolong" / "tostring" / "tolower"
//! literal  = string / number / "true" / "false"
//! string   = DQUOTE *char DQUOTE / "'" *char "'" / "@" DQUOTE *char DQUOTE   ; @: verbatim
//! ```

use regex::Regex;

/// A parse error: what was expected, at which byte of the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        left: Operand,
        op: CompareOp,
        right: Operand,
    },
    Text {
        left: Operand,
        op: TextOp,
        case_sensitive: bool,
        negated: bool,
        right: Operand,
    },
    In {
        left: Operand,
        set: Vec<Literal>,
        case_insensitive: bool,
        negated: bool,
    },
    Between {
        left: Operand,
        low: Literal,
        high: Literal,
        negated: bool,
    },
    Matches {
        left: Operand,
        regex: Regex,
    },
    /// An operand used as a condition: `isempty(X)`, `true`, `(a and b)`.
    Truth(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    EqNoCase,
    NeNoCase,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Has,
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone)]
pub enum Operand {
    /// A column, by its name as the row builder writes it.
    Column(&'static str),
    Literal(Literal),
    Call(Function, Box<Operand>),
    /// A parenthesised condition.
    Condition(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    IsEmpty,
    IsNotEmpty,
    ToInt,
    ToLong,
    ToString,
    ToLower,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    Real(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Int(i64),
    Real(f64),
    /// Punctuation and symbolic operators.
    Sym(&'static str),
    End,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

const SYMBOLS: [&str; 13] = [
    "==", "!=", "=~", "!~", "<=", ">=", "..", "<", ">", "(", ")", ",", "!",
];

impl<'a> Lexer<'a> {
    fn skip_space(&mut self) {
        while let Some(c) = self.text[self.pos..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// The next token and where it starts.
    fn next(&mut self) -> Result<(Token, usize), ParseError> {
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[self.pos..];
        let Some(c) = rest.chars().next() else {
            return Ok((Token::End, start));
        };
        if c == '"' || c == '\'' {
            let (value, used) = quoted(rest, c, true).ok_or_else(|| ParseError {
                offset: start,
                message: "this string is not closed".into(),
            })?;
            self.pos += used;
            return Ok((Token::Str(value), start));
        }
        if c == '@' && matches!(rest[1..].chars().next(), Some('"' | '\'')) {
            let q = rest[1..].chars().next().expect("checked");
            let (value, used) = quoted(&rest[1..], q, false).ok_or_else(|| ParseError {
                offset: start,
                message: "this string is not closed".into(),
            })?;
            self.pos += 1 + used;
            return Ok((Token::Str(value), start));
        }
        if c.is_ascii_digit() || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            let end = rest[1..]
                .find(|d: char| !(d.is_ascii_digit() || d == '.' || d == 'e' || d == 'E'))
                .map_or(rest.len(), |i| i + 1);
            // `1..5`: the dots belong to `..`.
            let end = rest[..end].find("..").unwrap_or(end);
            let text = &rest[..end];
            self.pos += end;
            if let Ok(n) = text.parse::<i64>() {
                return Ok((Token::Int(n), start));
            }
            return text
                .parse::<f64>()
                .map(|x| (Token::Real(x), start))
                .map_err(|_| ParseError {
                    offset: start,
                    message: format!("{text:?} is not a number"),
                });
        }
        if c.is_alphabetic() || c == '_' {
            let end = rest
                .find(|d: char| !(d.is_alphanumeric() || d == '_'))
                .unwrap_or(rest.len());
            self.pos += end;
            // `in~`, `!in~`: the tilde belongs to the word.
            if &rest[..end] == "in" && rest[end..].starts_with('~') {
                self.pos += 1;
                return Ok((Token::Word("in~".into()), start));
            }
            return Ok((Token::Word(rest[..end].to_string()), start));
        }
        for sym in SYMBOLS {
            if rest.starts_with(sym) {
                self.pos += sym.len();
                return Ok((Token::Sym(sym), start));
            }
        }
        Err(ParseError {
            offset: start,
            message: if c == '=' {
                "`=` is no operator: write `==` (or `=~` to ignore case)".into()
            } else {
                format!("unexpected {c:?}")
            },
        })
    }
}

/// A quoted string at the start of `text` (quote `q`): its value and the bytes used.
/// With `escapes`, `\` escapes the next character (`\n`, `\t`, `\\`, `\"`, `\'`).
fn quoted(text: &str, q: char, escapes: bool) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => return Some((value, i + c.len_utf8())),
            '\\' if escapes => {
                let (_, e) = chars.next()?;
                value.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            }
            c => value.push(c),
        }
    }
    None
}

/// Reads `text` into an expression; `column` maps a name to the column it names (`None`:
/// no such column in either table).
pub fn parse(
    text: &str,
    column: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<Expr, ParseError> {
    let mut p = Parser {
        lexer: Lexer { text, pos: 0 },
        peeked: None,
        column,
        depth: 0,
    };
    let expr = p.or()?;
    let (token, at) = p.next()?;
    if token != Token::End {
        let found = match token {
            Token::Word(w) => format!("`{w}`"),
            Token::Sym(s) => format!("`{s}`"),
            Token::Str(_) => "a string".into(),
            Token::Int(_) | Token::Real(_) => "a number".into(),
            Token::End => unreachable!(),
        };
        return Err(ParseError {
            offset: at,
            message: format!("expected `and`, `or` or the end of the expression, found {found}"),
        });
    }
    Ok(expr)
}

/// How deeply parentheses, `not(...)` and function calls may nest. The parser and the
/// evaluator recurse once per level, so an unbounded depth would overflow a thread's stack
/// (10,000 levels did, in `check`, in `run` and in a decode thread); no real filter comes
/// near this.
pub const MAX_DEPTH: usize = 64;

struct Parser<'a, 'c> {
    lexer: Lexer<'a>,
    peeked: Option<(Token, usize)>,
    column: &'c dyn Fn(&str) -> Option<&'static str>,
    /// Levels of nesting open at the current token.
    depth: usize,
}

impl Parser<'_, '_> {
    fn next(&mut self) -> Result<(Token, usize), ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn peek(&mut self) -> Result<&(Token, usize), ParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn peek_word(&mut self, word: &str) -> Result<bool, ParseError> {
        Ok(matches!(&self.peek()?.0, Token::Word(w) if w == word))
    }

    fn expect_sym(&mut self, sym: &'static str, what: &str) -> Result<usize, ParseError> {
        match self.next()? {
            (Token::Sym(s), at) if s == sym => Ok(at),
            (_, at) => Err(ParseError {
                offset: at,
                message: format!("expected `{sym}` {what}"),
            }),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.and()?];
        while self.peek_word("or")? {
            self.next()?;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.unary()?];
        while self.peek_word("and")? {
            self.next()?;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek_word("not")? {
            let (_, at) = self.next()?;
            self.expect_sym("(", "after `not`: write not(...)")?;
            self.enter(at)?;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect_sym(")", "to close not(")?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.test()
    }

    /// Opens one level of nesting at byte `at`, refusing past [`MAX_DEPTH`].
    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                offset: at,
                message: format!(
                    "nested more than {MAX_DEPTH} levels deep (parentheses, not(...) and function calls); write the condition flatter"
                ),
            });
        }
        Ok(())
    }

    fn test(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand()?;
        let (token, at) = self.peek()?.clone();
        let compare = |op| Some(op);
        let cmp = match &token {
            Token::Sym("==") => compare(CompareOp::Eq),
            Token::Sym("!=") => compare(CompareOp::Ne),
            Token::Sym("=~") => compare(CompareOp::EqNoCase),
            Token::Sym("!~") => compare(CompareOp::NeNoCase),
            Token::Sym("<") => compare(CompareOp::Lt),
            Token::Sym("<=") => compare(CompareOp::Le),
            Token::Sym(">") => compare(CompareOp::Gt),
            Token::Sym(">=") => compare(CompareOp::Ge),
            _ => None,
        };
        if let Some(op) = cmp {
            self.next()?;
            let right = self.operand()?;
            return Ok(Expr::Compare { left, op, right });
        }
        // `!` before a word operator: `!has`, `!in`, `!between`, ...
        let negated = token == Token::Sym("!");
        if negated {
            self.next()?;
        }
        let (word, word_at) = match self.peek()?.clone() {
            (Token::Word(w), a) => (w, a),
            (_, a) if negated => {
                return Err(ParseError {
                    offset: a,
                    message: "expected an operator after `!` (has, contains, startswith, endswith, in, between)".into(),
                });
            }
            _ => return Ok(Expr::Truth(left)),
        };
        let text_op = |w: &str| -> Option<(TextOp, bool)> {
            Some(match w {
                "has" => (TextOp::Has, false),
                "has_cs" => (TextOp::Has, true),
                "contains" => (TextOp::Contains, false),
                "contains_cs" => (TextOp::Contains, true),
                "startswith" => (TextOp::StartsWith, false),
                "startswith_cs" => (TextOp::StartsWith, true),
                "endswith" => (TextOp::EndsWith, false),
                "endswith_cs" => (TextOp::EndsWith, true),
                _ => return None,
            })
        };
        if let Some((op, case_sensitive)) = text_op(&word) {
            self.next()?;
            let right = self.operand()?;
            return Ok(Expr::Text {
                left,
                op,
                case_sensitive,
                negated,
                right,
            });
        }
        match word.as_str() {
            "in" | "in~" => {
                self.next()?;
                self.expect_sym("(", "after `in`: write in (\"a\", \"b\")")?;
                let mut set = vec![self.literal("a value in the list")?];
                loop {
                    match self.next()? {
                        (Token::Sym(","), _) => set.push(self.literal("a value after `,`")?),
                        (Token::Sym(")"), _) => break,
                        (_, a) => {
                            return Err(ParseError {
                                offset: a,
                                message: "expected `,` or `)` in the list".into(),
                            });
                        }
                    }
                }
                Ok(Expr::In {
                    left,
                    set,
                    case_insensitive: word == "in~",
                    negated,
                })
            }
            "between" => {
                self.next()?;
                self.expect_sym("(", "after `between`: write between (1 .. 10)")?;
                let low = self.literal("the low end of the range")?;
                self.expect_sym("..", "between the ends of the range")?;
                let high = self.literal("the high end of the range")?;
                self.expect_sym(")", "to close the range")?;
                Ok(Expr::Between {
                    left,
                    low,
                    high,
                    negated,
                })
            }
            "matches" if !negated => {
                self.next()?;
                match self.next()? {
                    (Token::Word(w), _) if w == "regex" => {}
                    (_, a) => {
                        return Err(ParseError {
                            offset: a,
                            message: "expected `regex` after `matches`".into(),
                        });
                    }
                }
                let (pattern, pat_at) = match self.next()? {
                    (Token::Str(s), a) => (s, a),
                    (_, a) => {
                        return Err(ParseError {
                            offset: a,
                            message: "expected the regular expression as a string".into(),
                        });
                    }
                };
                let regex = Regex::new(&pattern).map_err(|e| ParseError {
                    offset: pat_at,
                    message: format!("not a regular expression: {e}"),
                })?;
                Ok(Expr::Matches { left, regex })
            }
            _ if negated => Err(ParseError {
                offset: word_at,
                message: format!(
                    "`!{word}` is no operator (use !has, !contains, !startswith, !endswith, !in, !between)"
                ),
            }),
            "and" | "or" => Ok(Expr::Truth(left)),
            _ => Err(ParseError {
                offset: at,
                message: format!(
                    "expected an operator (==, !=, =~, has, contains, startswith, in, between, ...) or `and`/`or`, found `{word}`"
                ),
            }),
        }
    }

    fn literal(&mut self, what: &str) -> Result<Literal, ParseError> {
        match self.next()? {
            (Token::Str(s), _) => Ok(Literal::Str(s)),
            (Token::Int(n), _) => Ok(Literal::Int(n)),
            (Token::Real(x), _) => Ok(Literal::Real(x)),
            (Token::Word(w), _) if w == "true" => Ok(Literal::Bool(true)),
            (Token::Word(w), _) if w == "false" => Ok(Literal::Bool(false)),
            (_, a) => Err(ParseError {
                offset: a,
                message: format!("expected {what}: a string, a number, true or false"),
            }),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let (token, at) = self.next()?;
        Ok(match token {
            Token::Str(s) => Operand::Literal(Literal::Str(s)),
            Token::Int(n) => Operand::Literal(Literal::Int(n)),
            Token::Real(x) => Operand::Literal(Literal::Real(x)),
            Token::Sym("(") => {
                self.enter(at)?;
                let inner = self.or()?;
                self.depth -= 1;
                self.expect_sym(")", "to close `(`")?;
                Operand::Condition(Box::new(inner))
            }
            Token::Word(w) if w == "true" => Operand::Literal(Literal::Bool(true)),
            Token::Word(w) if w == "false" => Operand::Literal(Literal::Bool(false)),
            Token::Word(w) => {
                let function = match w.as_str() {
                    "isempty" => Some(Function::IsEmpty),
                    "isnotempty" => Some(Function::IsNotEmpty),
                    "toint" => Some(Function::ToInt),
                    "tolong" => Some(Function::ToLong),
                    "tostring" => Some(Function::ToString),
                    "tolower" => Some(Function::ToLower),
                    _ => None,
                };
                if let Some(f) = function {
                    self.expect_sym("(", &format!("after `{w}`"))?;
                    self.enter(at)?;
                    let arg = self.operand()?;
                    self.depth -= 1;
                    self.expect_sym(")", &format!("to close {w}("))?;
                    return Ok(Operand::Call(f, Box::new(arg)));
                }
                if matches!(self.peek()?.0, Token::Sym("(")) {
                    return Err(ParseError {
                        offset: at,
                        message: format!(
                            "unknown function `{w}` (use isempty, isnotempty, toint, tolong, tostring, tolower)"
                        ),
                    });
                }
                match (self.column)(&w) {
                    Some(c) => Operand::Column(c),
                    None => {
                        return Err(ParseError {
                            offset: at,
                            message: format!(
                                "unknown column `{w}` (a CommonSecurityLog or Syslog column, spelled as in the table)"
                            ),
                        });
                    }
                }
            }
            Token::End => {
                return Err(ParseError {
                    offset: at,
                    message: "expected a column, a value or `(`, found the end of the expression"
                        .into(),
                });
            }
            Token::Sym(s) => {
                return Err(ParseError {
                    offset: at,
                    message: format!("expected a column, a value or `(`, found `{s}`"),
                });
            }
        })
    }
}
