//! Tests for the meta.conf parser: syntax corner cases, the schema, and fwup's verdicts on
//! the fixture archives.

mod fixtures;
mod schema;
mod syntax;

use super::lexer::{Lexer, TokKind};
use super::*;
use crate::{Error, MetaConfError};

pub(super) fn parse(text: &str) -> crate::Result<MetaConf> {
    MetaConf::parse(text.as_bytes(), &Variables::new())
}

pub(super) fn parse_with(text: &str, vars: &[(&str, &str)]) -> crate::Result<MetaConf> {
    let vars: Variables = vars
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    MetaConf::parse(text.as_bytes(), &vars)
}

/// The value `meta-misc` gets from `text` (a meta.conf value expression).
pub(super) fn misc(value: &str) -> Option<String> {
    parse(&format!("meta-misc = {value}\n"))
        .unwrap()
        .metadata()
        .misc
        .clone()
}

pub(super) fn misc_with(value: &str, vars: &[(&str, &str)]) -> Option<String> {
    parse_with(&format!("meta-misc = {value}\n"), vars)
        .unwrap()
        .metadata()
        .misc
        .clone()
}

pub(super) fn syntax_err(text: &str) -> (u32, String) {
    match parse(text) {
        Err(Error::MetaConf(MetaConfError::Syntax { line, message })) => (line, message),
        other => panic!("expected a syntax error for {text:?}, got {other:?}"),
    }
}

pub(super) fn tokens(text: &str) -> Vec<(TokKind, String)> {
    let vars = Variables::new();
    let mut lexer = Lexer::new(text.as_bytes());
    let mut out = Vec::new();
    loop {
        let tok = lexer.next_token(&vars).unwrap();
        if tok.kind == TokKind::Eof {
            return out;
        }
        out.push((tok.kind, tok.text));
    }
}
