//! Tokenizer for fwup's libconfuse configuration syntax.
//!
//! This mirrors the flex scanner of libconfuse 3.3 (the version fwup 1.16.0 is built
//! against), including its corner cases:
//!
//! * `#…` and `//…` comments run to the end of the line, `/* … */` blocks may span lines.
//!   Comments are only recognised at the start of a token: `a//b` is one word.
//! * An unquoted word is a run of bytes other than whitespace, `#`, quotes, `= { } ( ) + , *`
//!   and carriage return. A lone `*` (or any other byte no rule matches) is dropped.
//! * `${VAR}` / `${VAR:-default}` at the start of a token is a whole token by itself
//!   (`${A}b` is two tokens). Inside double-quoted strings it is substituted in place.
//!   Unset variables without a default become empty.
//! * Double-quoted strings know the C escapes, `\ooo` octal (at most 3 digits; a longer
//!   digit run is an error), `\xH`/`\xHH`, backslash-newline (joins lines) and `\<c>` → `c`
//!   (so `\$` gives a literal `$`). An unterminated double-quoted string silently ends the
//!   input, as in libconfuse.
//! * Single-quoted strings only know `\\` and `\'` (and backslash-newline); other
//!   backslashes are kept. An unterminated single-quoted string is an error.
//! * Values are C strings in libconfuse: everything from the first NUL byte on is dropped.
//!
//! Tokens are produced on demand so that the parser can change variables (fwup's
//! `define`) between two tokens, as libconfuse does.

use std::borrow::Cow;

use super::Variables;

/// The kind of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    /// A word, a quoted string or a `${…}` substitution.
    Str,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `=`
    Equals,
    /// `+=`
    PlusEquals,
    /// `,`
    Comma,
    /// End of input.
    Eof,
}

/// One token with the line number libconfuse would report after reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// What kind of token this is.
    pub(crate) kind: TokKind,
    /// The string value (for [`TokKind::Str`]) or the punctuation as written.
    pub(crate) text: String,
    /// 1-based line at the end of the token.
    pub(crate) line: u32,
}

/// A lexical error (libconfuse reports it and stops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    /// Line of the error.
    pub(crate) line: u32,
    /// libconfuse's message.
    pub(crate) message: String,
}

/// The scanner. It borrows the input and reads variables from the caller on every
/// substitution.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    input: Cow<'a, [u8]>,
    pos: usize,
    line: u32,
    /// Cache for the `${…}` scan: the index of the next `}` found by the last search
    /// (or `None` when there is none after the searched position), so that many `$`
    /// without a closing brace do not make scanning quadratic.
    close_cache: Option<(usize, Option<usize>)>,
}

/// Bytes that end an unquoted word (besides the comment openers at token start).
fn ends_word(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'#'
            | b'"'
            | b'\''
            | b'\t'
            | b'\n'
            | b'\r'
            | b'='
            | b'{'
            | b'}'
            | b'('
            | b')'
            | b'+'
            | b','
            | b'*'
    )
}

/// Converts collected bytes to a value: cut at the first NUL (C string), then UTF-8
/// (invalid sequences become U+FFFD).
fn finish(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Looks up the body of a `${…}` (without the braces): `NAME` or `NAME:-default`.
/// Only the first `:` is considered, as in libconfuse.
fn substitute(body: &[u8], vars: &Variables) -> Option<Vec<u8>> {
    let (name, default) = match body.iter().position(|&b| b == b':') {
        Some(i) if body.get(i + 1) == Some(&b'-') => (&body[..i], Some(&body[i + 2..])),
        _ => (body, None),
    };
    // getenv() sees a C string: the name ends at a NUL byte.
    let name = finish(name);
    match vars.get(&name) {
        Some(v) => Some(v.as_bytes().to_vec()),
        None => default.map(<[u8]>::to_vec),
    }
}

impl<'a> Lexer<'a> {
    /// Starts scanning `input` at line 1.
    pub(crate) fn new(input: impl Into<Cow<'a, [u8]>>) -> Self {
        Lexer {
            input: input.into(),
            pos: 0,
            line: 1,
            close_cache: None,
        }
    }

    /// The current line (the line libconfuse reports at end of input).
    pub(crate) fn line(&self) -> u32 {
        self.line
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.input.get(self.pos + ahead).copied()
    }

    fn punct(&mut self, kind: TokKind, len: usize) -> Token {
        let text = String::from_utf8_lossy(&self.input[self.pos..self.pos + len]).into_owned();
        self.pos += len;
        Token {
            kind,
            text,
            line: self.line,
        }
    }

    /// Finds the `}` closing a `${` at `self.pos` (which points at `$`).
    fn var_end(&mut self) -> Option<usize> {
        if self.peek(1) != Some(b'{') {
            return None;
        }
        let from = self.pos + 2;
        if let Some((searched_from, found)) = self.close_cache {
            match found {
                Some(idx) if searched_from <= from && idx >= from => return Some(idx),
                None if searched_from <= from => return None,
                _ => {}
            }
        }
        let found = self.input[from..]
            .iter()
            .position(|&b| b == b'}')
            .map(|i| from + i);
        self.close_cache = Some((from, found));
        found
    }

    /// Returns the next token, substituting variables from `vars`.
    pub(crate) fn next_token(&mut self, vars: &Variables) -> Result<Token, LexError> {
        loop {
            let Some(b) = self.peek(0) else {
                return Ok(Token {
                    kind: TokKind::Eof,
                    text: String::new(),
                    line: self.line,
                });
            };
            match b {
                b' ' | b'\t' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line = self.line.saturating_add(1);
                }
                b'#' => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'/') => self.skip_line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'{' => return Ok(self.punct(TokKind::LBrace, 1)),
                b'}' => return Ok(self.punct(TokKind::RBrace, 1)),
                b'(' => return Ok(self.punct(TokKind::LParen, 1)),
                b')' => return Ok(self.punct(TokKind::RParen, 1)),
                b'=' => return Ok(self.punct(TokKind::Equals, 1)),
                b',' => return Ok(self.punct(TokKind::Comma, 1)),
                b'+' if self.peek(1) == Some(b'=') => return Ok(self.punct(TokKind::PlusEquals, 2)),
                b'"' => {
                    self.pos += 1;
                    return self.double_quoted(vars);
                }
                b'\'' => {
                    self.pos += 1;
                    return self.single_quoted();
                }
                b'$' if self.var_end().is_some() => {
                    let end = self.var_end().unwrap_or(self.pos);
                    let body = &self.input[self.pos + 2..end];
                    let value = substitute(body, vars).unwrap_or_default();
                    // libconfuse does not count newlines inside `${…}`.
                    self.pos = end + 1;
                    return Ok(Token {
                        kind: TokKind::Str,
                        text: finish(&value),
                        line: self.line,
                    });
                }
                _ if ends_word(b) => {
                    // `*`, `\r`, a lone `+`: no rule matches, flex's catch-all drops it.
                    self.pos += 1;
                }
                _ => {
                    let start = self.pos;
                    while let Some(c) = self.peek(0) {
                        if ends_word(c) {
                            break;
                        }
                        self.pos += 1;
                    }
                    let text = finish(&self.input[start..self.pos]);
                    return Ok(Token {
                        kind: TokKind::Str,
                        text,
                        line: self.line,
                    });
                }
            }
        }
    }

    fn skip_line_comment(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn skip_block_comment(&mut self) {
        self.pos += 2;
        loop {
            match self.peek(0) {
                // An unterminated block comment runs to the end of the input.
                None => return,
                Some(b'\n') => {
                    self.line = self.line.saturating_add(1);
                    self.pos += 1;
                }
                Some(b'*') if self.peek(1) == Some(b'/') => {
                    self.pos += 2;
                    return;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn double_quoted(&mut self, vars: &Variables) -> Result<Token, LexError> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek(0) else {
                // No end-of-file rule for this state in libconfuse: the input just ends.
                return Ok(Token {
                    kind: TokKind::Eof,
                    text: String::new(),
                    line: self.line,
                });
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(Token {
                        kind: TokKind::Str,
                        text: finish(&out),
                        line: self.line,
                    });
                }
                b'\n' => {
                    out.push(b'\n');
                    self.line = self.line.saturating_add(1);
                    self.pos += 1;
                }
                b'$' if self.var_end().is_some() => {
                    let end = self.var_end().unwrap_or(self.pos);
                    if let Some(v) = substitute(&self.input[self.pos + 2..end], vars) {
                        out.extend_from_slice(&v);
                    }
                    self.pos = end + 1;
                }
                b'\\' => self.escape(&mut out)?,
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// Handles a backslash sequence in a double-quoted string (`self.pos` at the `\`).
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), LexError> {
        let Some(c) = self.peek(1) else {
            // A backslash as the very last byte: flex echoes it, then the input ends.
            self.pos += 1;
            return Ok(());
        };
        match c {
            b'\n' => {
                self.line = self.line.saturating_add(1);
                self.pos += 2;
            }
            b'0'..=b'9' => {
                let digits = self.input[self.pos + 1..]
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let octal = self.input[self.pos + 1..]
                    .iter()
                    .take(3)
                    .take_while(|d| (b'0'..=b'7').contains(d))
                    .count();
                let text = String::from_utf8_lossy(&self.input[self.pos..self.pos + 1 + digits])
                    .into_owned();
                if digits > octal {
                    // flex prefers the longer `\\[0-9]+` match.
                    return Err(LexError {
                        line: self.line,
                        message: format!("bad escape sequence '{text}'"),
                    });
                }
                let value = self.input[self.pos + 1..self.pos + 1 + octal]
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                let Ok(byte) = u8::try_from(value) else {
                    return Err(LexError {
                        line: self.line,
                        message: format!("invalid octal number '{text}'"),
                    });
                };
                out.push(byte);
                self.pos += 1 + octal;
            }
            b'x' if self.peek(2).is_some_and(|d| d.is_ascii_hexdigit()) => {
                let n = self.input[self.pos + 2..]
                    .iter()
                    .take(2)
                    .take_while(|d| d.is_ascii_hexdigit())
                    .count();
                let value =
                    self.input[self.pos + 2..self.pos + 2 + n]
                        .iter()
                        .fold(0u8, |acc, d| {
                            let v = match d {
                                b'0'..=b'9' => d - b'0',
                                b'a'..=b'f' => d - b'a' + 10,
                                _ => d.wrapping_sub(b'A').wrapping_add(10),
                            };
                            acc.wrapping_mul(16).wrapping_add(v)
                        });
                out.push(value);
                self.pos += 2 + n;
            }
            _ => {
                let value = match c {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'a' => 0x07,
                    b'e' => 0x1b,
                    b't' => b'\t',
                    b'v' => 0x0b,
                    other => other,
                };
                out.push(value);
                self.pos += 2;
            }
        }
        Ok(())
    }

    fn single_quoted(&mut self) -> Result<Token, LexError> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek(0) else {
                return Err(LexError {
                    line: self.line,
                    message: "unterminated string constant".into(),
                });
            };
            match b {
                b'\'' => {
                    self.pos += 1;
                    return Ok(Token {
                        kind: TokKind::Str,
                        text: finish(&out),
                        line: self.line,
                    });
                }
                b'\n' => {
                    out.push(b'\n');
                    self.line = self.line.saturating_add(1);
                    self.pos += 1;
                }
                b'\\' => match self.peek(1) {
                    Some(b'\n') => {
                        self.line = self.line.saturating_add(1);
                        self.pos += 2;
                    }
                    Some(c @ (b'\\' | b'\'')) => {
                        out.push(c);
                        self.pos += 2;
                    }
                    Some(c) => {
                        out.extend_from_slice(&[b'\\', c]);
                        self.pos += 2;
                    }
                    None => {
                        return Err(LexError {
                            line: self.line,
                            message: "unterminated string constant".into(),
                        });
                    }
                },
                _ => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }
}
