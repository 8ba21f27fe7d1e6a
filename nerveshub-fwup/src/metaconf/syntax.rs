//! The syntax layer: tokens → a generic tree of options, sections and function calls.
//!
//! The tree knows nothing about meta.conf's option table; [`super::schema`] interprets it.
//! The grammar is libconfuse's, read without a schema:
//!
//! ```text
//! item    := NAME ('=' | '+=') value        option
//!          | NAME '(' [ STR { ',' STR } [','] ] ')'   function call
//!          | NAME [ STR ] '{' item* '}'     section (with an optional title)
//! value   := STR | '{' [ STR { ',' STR } [','] ] '}'
//! ```
//!
//! Function calls are offered to a hook right after their `)` is read and before the next
//! token is scanned, so a hook can change variables the way fwup's `define` does.
//!
//! On a syntax error the tree built so far is kept together with the error: libconfuse
//! reports problems in file order, so the schema layer first checks the partial tree for an
//! earlier error of its own.

use super::Variables;
use super::lexer::{LexError, Lexer, TokKind, Token};

/// Sections nested deeper than this are refused (libconfuse recurses without a limit;
/// fwup's own option table is three levels deep).
pub(crate) const MAX_DEPTH: usize = 32;

/// A string token and the line it ends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spanned {
    /// The value.
    pub(crate) text: String,
    /// Line at the end of the token.
    pub(crate) line: u32,
}

/// The value of an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `name = value`
    Scalar(Spanned),
    /// `name = {a, b}`
    List {
        /// Line of the `{`.
        open_line: u32,
        /// The elements.
        items: Vec<Spanned>,
    },
}

/// `name = value` or `name += value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OptionItem {
    /// Option name.
    pub(crate) name: String,
    /// Line of the `=` / `+=`.
    pub(crate) op_line: u32,
    /// True for `+=`.
    pub(crate) append: bool,
    /// The value.
    pub(crate) value: Value,
}

/// `name(arg, …)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// Function name.
    pub(crate) name: String,
    /// Line of the `(`.
    pub(crate) open_line: u32,
    /// Arguments, as strings.
    pub(crate) args: Vec<String>,
    /// Line of the `)`.
    pub(crate) close_line: u32,
    /// Which input the call was read from: 0 for the main text, then 1, 2, … for each
    /// included text in the order the hook returned [`HookAction::Include`].
    pub(crate) file: usize,
}

/// `name { … }` or `name title { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    /// Section type (empty for the document root).
    pub(crate) name: String,
    /// The title, if one was written, and the line of its token.
    pub(crate) title: Option<Spanned>,
    /// Line of the `{`.
    pub(crate) open_line: u32,
    /// Line of the `}`, or of the end of input for a section still open there (libconfuse
    /// closes those silently). fwup's section validators report errors at this line.
    pub(crate) close_line: u32,
    /// Which input the `{` was read from, numbered as [`Call::file`] (fwup resolves a
    /// `file-resource`'s relative `host-path` against that file's directory).
    pub(crate) file: usize,
    /// Index of the section's name token in [`Document::tokens`].
    pub(crate) name_token: usize,
    /// Contents in file order.
    pub(crate) items: Vec<Item>,
}

/// One entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// An option assignment.
    Option(OptionItem),
    /// A nested section.
    Section(Section),
    /// A function call.
    Call(Call),
}

/// The parsed document.
#[derive(Debug)]
pub(crate) struct Document {
    /// Top-level items (a section without name or title).
    pub(crate) root: Section,
    /// Every token read, in order (ends with an `Eof` token when the whole input was read).
    pub(crate) tokens: Vec<Token>,
    /// Line libconfuse reports at end of input.
    pub(crate) eof_line: u32,
    /// The first error, if parsing stopped early. `root` then holds what came before it.
    pub(crate) error: Option<crate::Error>,
    /// The variables after the parse (hooks may have changed them).
    pub(crate) vars: Variables,
}

/// What a hook wants done with a function call it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookAction {
    /// Put the call into the tree.
    Keep,
    /// The hook handled it; leave it out of the tree.
    Consumed,
    #[cfg(feature = "create")]
    /// fwup's `include`: read these bytes now, as if they stood in place of the call
    /// (libconfuse's lexer file stack). Leaves the call out of the tree.
    Include(Vec<u8>),
}

/// Includes nest at most this deep (libconfuse's limit).
#[cfg(feature = "create")]
pub(crate) const MAX_INCLUDE_DEPTH: usize = 10;

/// Called for every function call before the next token is read. `path` holds the names
/// of the enclosing sections (empty at top level).
pub(crate) type CallHook<'h> =
    dyn FnMut(&[&str], &Call, &mut Variables) -> crate::Result<HookAction> + 'h;

/// Called when a section has been read completely (fwup's section validators run at that
/// point, and may define variables for the rest of the file). `path` holds the names of the
/// enclosing sections; the tokens read so far let the hook build the section's model.
pub(crate) type SectionHook<'h> =
    dyn FnMut(&[&str], &Section, &[Token], &mut Variables) -> crate::Result<()> + 'h;

/// Builds a syntax error.
pub(crate) fn syntax_error(line: u32, message: impl Into<String>) -> crate::Error {
    crate::Error::MetaConf(crate::MetaConfError::Syntax {
        line,
        message: message.into(),
    })
}

struct Parser<'a, 'r, 'h> {
    lexer: Lexer<'a>,
    /// Index of the input `lexer` reads (0 = main text).
    file: usize,
    /// Inputs suspended by an include, innermost last.
    stack: Vec<(Lexer<'a>, usize)>,
    /// How many inputs were opened so far (main text included).
    #[cfg(feature = "create")]
    files_opened: usize,
    vars: Variables,
    tokens: Vec<Token>,
    hook: &'r mut CallHook<'h>,
    section_hook: Option<&'r mut SectionHook<'h>>,
    path: Vec<String>,
    /// The end-of-input token once it was read: every later read returns it again, so that
    /// each section still open can close on it.
    eof: Option<Token>,
}

/// Parses `text`. Never fails as a whole: errors are reported in [`Document::error`].
pub(crate) fn parse(text: &[u8], vars: Variables, hook: &mut CallHook<'_>) -> Document {
    parse_with_sections(text, vars, hook, None)
}

/// [`parse`] with a hook that sees every completed section as well.
pub(crate) fn parse_with_sections<'h>(
    text: &[u8],
    vars: Variables,
    hook: &mut CallHook<'h>,
    section_hook: Option<&mut SectionHook<'h>>,
) -> Document {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        file: 0,
        stack: Vec::new(),
        #[cfg(feature = "create")]
        files_opened: 1,
        vars,
        tokens: Vec::new(),
        hook,
        section_hook,
        path: Vec::new(),
        eof: None,
    };
    let mut root = Section {
        name: String::new(),
        title: None,
        open_line: 1,
        close_line: 1,
        file: 0,
        name_token: 0,
        items: Vec::new(),
    };
    let error = parser.items(&mut root.items, 0).err();
    root.close_line = parser.lexer.line();
    Document {
        root,
        eof_line: parser.lexer.line(),
        tokens: parser.tokens,
        error,
        vars: parser.vars,
    }
}

fn unexpected(tok: &Token) -> crate::Error {
    match tok.kind {
        TokKind::Eof => syntax_error(tok.line, "premature end of file"),
        _ => syntax_error(tok.line, format!("unexpected token '{}'", tok.text)),
    }
}

impl Parser<'_, '_, '_> {
    fn next(&mut self) -> crate::Result<Token> {
        if let Some(eof) = &self.eof {
            return Ok(eof.clone());
        }
        loop {
            match self.lexer.next_token(&self.vars) {
                Ok(tok) if tok.kind == TokKind::Eof && !self.stack.is_empty() => {
                    // End of an included text: go on with the one that included it.
                    if let Some((lexer, file)) = self.stack.pop() {
                        self.lexer = lexer;
                        self.file = file;
                    }
                }
                Ok(tok) => {
                    if tok.kind == TokKind::Eof {
                        self.eof = Some(tok.clone());
                    }
                    self.tokens.push(tok.clone());
                    return Ok(tok);
                }
                Err(LexError { line, message }) => return Err(syntax_error(line, message)),
            }
        }
    }

    /// Parses items until the closing brace (depth > 0) or end of input; returns the line
    /// of the token that ended them. A section still open at the end of input is closed
    /// there without complaint, as libconfuse does (fwup 1.16 accepts such files, at create
    /// and at apply time alike).
    fn items(&mut self, items: &mut Vec<Item>, depth: usize) -> crate::Result<u32> {
        loop {
            let tok = self.next()?;
            match tok.kind {
                TokKind::Eof => return Ok(tok.line),
                TokKind::RBrace if depth > 0 => return Ok(tok.line),
                TokKind::RBrace => return Err(syntax_error(tok.line, "unexpected closing brace")),
                TokKind::Str => {
                    let name_token = self.tokens.len() - 1;
                    self.item(tok.text, name_token, items, depth)?;
                }
                _ => return Err(unexpected(&tok)),
            }
        }
    }

    fn item(
        &mut self,
        name: String,
        name_token: usize,
        items: &mut Vec<Item>,
        depth: usize,
    ) -> crate::Result<()> {
        let tok = self.next()?;
        match tok.kind {
            TokKind::Equals | TokKind::PlusEquals => {
                let value = self.value()?;
                items.push(Item::Option(OptionItem {
                    name,
                    op_line: tok.line,
                    append: tok.kind == TokKind::PlusEquals,
                    value,
                }));
                Ok(())
            }
            TokKind::LParen => self.call(name, tok.line, items),
            TokKind::LBrace => self.section(name, None, tok.line, name_token, items, depth),
            TokKind::Str => {
                let title = Spanned {
                    text: tok.text,
                    line: tok.line,
                };
                let open = self.next()?;
                if open.kind != TokKind::LBrace {
                    return Err(unexpected(&open));
                }
                self.section(name, Some(title), open.line, name_token, items, depth)
            }
            _ => Err(unexpected(&tok)),
        }
    }

    fn value(&mut self) -> crate::Result<Value> {
        let tok = self.next()?;
        match tok.kind {
            TokKind::Str => Ok(Value::Scalar(Spanned {
                text: tok.text,
                line: tok.line,
            })),
            TokKind::LBrace => {
                let mut values = Vec::new();
                loop {
                    let tok = self.next()?;
                    match tok.kind {
                        TokKind::RBrace => break,
                        TokKind::Str => values.push(Spanned {
                            text: tok.text,
                            line: tok.line,
                        }),
                        _ => return Err(unexpected(&tok)),
                    }
                    let sep = self.next()?;
                    match sep.kind {
                        TokKind::Comma => {}
                        TokKind::RBrace => break,
                        _ => return Err(unexpected(&sep)),
                    }
                }
                Ok(Value::List {
                    open_line: tok.line,
                    items: values,
                })
            }
            _ => Err(unexpected(&tok)),
        }
    }

    fn call(&mut self, name: String, open_line: u32, items: &mut Vec<Item>) -> crate::Result<()> {
        let mut args = Vec::new();
        let close_line = loop {
            let tok = self.next()?;
            match tok.kind {
                TokKind::RParen => break tok.line,
                TokKind::Str => args.push(tok.text),
                _ => {
                    return Err(syntax_error(
                        tok.line,
                        format!("syntax error in call of function '{name}'"),
                    ));
                }
            }
            let sep = self.next()?;
            match sep.kind {
                TokKind::Comma => {}
                TokKind::RParen => break sep.line,
                _ => {
                    return Err(syntax_error(
                        sep.line,
                        format!("syntax error in call of function '{name}'"),
                    ));
                }
            }
        };
        let call = Call {
            name,
            open_line,
            args,
            close_line,
            file: self.file,
        };
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match (self.hook)(&path, &call, &mut self.vars)? {
            HookAction::Keep => items.push(Item::Call(call)),
            HookAction::Consumed => {}
            #[cfg(feature = "create")]
            HookAction::Include(text) => {
                if self.stack.len() >= MAX_INCLUDE_DEPTH {
                    return Err(syntax_error(close_line, "includes nested too deeply"));
                }
                let outer = std::mem::replace(&mut self.lexer, Lexer::new(text));
                self.stack.push((outer, self.file));
                self.file = self.files_opened;
                self.files_opened += 1;
            }
        }
        Ok(())
    }

    fn section(
        &mut self,
        name: String,
        title: Option<Spanned>,
        open_line: u32,
        name_token: usize,
        items: &mut Vec<Item>,
        depth: usize,
    ) -> crate::Result<()> {
        if depth + 1 > MAX_DEPTH {
            return Err(syntax_error(open_line, "sections nested too deeply"));
        }
        self.path.push(name.clone());
        let mut section = Section {
            name,
            title,
            open_line,
            close_line: open_line,
            file: self.file,
            name_token,
            items: Vec::new(),
        };
        let mut result = self.items(&mut section.items, depth + 1).map(|line| {
            section.close_line = line;
        });
        self.path.pop();
        if result.is_ok()
            && let Some(hook) = self.section_hook.as_mut()
        {
            let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
            result = hook(&path, &section, &self.tokens, &mut self.vars);
        }
        // Keep the (possibly partial) section so earlier schema errors inside it still win.
        items.push(Item::Section(section));
        result
    }
}

/// Result of replaying libconfuse's "ignore unknown section" states over the tokens.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IgnoreOutcome {
    /// libconfuse fails with this error.
    Error(u32, String),
    /// libconfuse skips the section and goes on parsing (rare; we do not follow it).
    Recovered,
    /// The recorded tokens ran out (the parse had stopped with an error of its own).
    OutOfTokens,
}

enum Frame {
    Continue,
    Done(IgnoreOutcome),
}

/// Replays what libconfuse 3.3 does after reading the name of an unknown option or section
/// at `tokens[name_token]` with `CFGF_IGNORE_UNKNOWN`. Its section skipping is buggy (it
/// drops one token too many), which is why fwup reports `premature end of file` for an
/// unknown section at the end of meta.conf. This reproduces the error and its line.
pub(crate) fn replay_ignore(tokens: &[Token], name_token: usize) -> IgnoreOutcome {
    let mut pos = name_token + 1;
    match ignore_frame(tokens, &mut pos, false, 0) {
        Frame::Done(outcome) => outcome,
        Frame::Continue => IgnoreOutcome::Recovered,
    }
}

fn ignore_frame(tokens: &[Token], pos: &mut usize, nested: bool, depth: usize) -> Frame {
    if depth > MAX_DEPTH * 4 {
        return Frame::Done(IgnoreOutcome::OutOfTokens);
    }
    let mut state = 10u8;
    let mut ignore = TokKind::Eof;
    loop {
        let Some(tok) = tokens.get(*pos) else {
            return Frame::Done(IgnoreOutcome::OutOfTokens);
        };
        *pos += 1;
        if tok.kind == TokKind::Eof {
            return Frame::Done(IgnoreOutcome::Error(
                tok.line,
                "premature end of file".into(),
            ));
        }
        let unexpected = || {
            Frame::Done(IgnoreOutcome::Error(
                tok.line,
                format!("unexpected token '{}'", tok.text),
            ))
        };
        match state {
            10 => match tok.kind {
                TokKind::PlusEquals => {
                    ignore = TokKind::Equals;
                    state = 13;
                }
                TokKind::Equals => state = 14,
                TokKind::LParen => {
                    ignore = TokKind::RParen;
                    state = 13;
                }
                TokKind::LBrace => state = 12,
                TokKind::Str => state = 11,
                TokKind::RBrace if nested => return Frame::Continue,
                _ => {}
            },
            11 => {
                if tok.kind != TokKind::LBrace {
                    return unexpected();
                }
                state = 12;
            }
            12 => {
                // libconfuse drops the token it just read and starts a nested frame.
                match ignore_frame(tokens, pos, true, depth + 1) {
                    Frame::Continue => {}
                    done @ Frame::Done(_) => return done,
                }
                ignore = TokKind::RBrace;
                state = 13;
            }
            13 => {
                if tok.kind != ignore {
                    continue;
                }
                if ignore == TokKind::Equals {
                    state = 14;
                    continue;
                }
                if nested {
                    return Frame::Continue;
                }
                return Frame::Done(IgnoreOutcome::Recovered);
            }
            14 => match tok.kind {
                TokKind::LBrace => {
                    ignore = TokKind::RBrace;
                    state = 13;
                }
                TokKind::Str if nested => state = 15,
                TokKind::Str => return Frame::Done(IgnoreOutcome::Recovered),
                _ => return unexpected(),
            },
            _ => state = 10,
        }
    }
}
