//! What commands print: aligned tables and `key: value` lines for people, the API's JSON
//! with `--json` for scripts. Everything goes to stdout; progress and errors to stderr.

use std::io::Write as _;

use serde_json::Value;

/// The output mode of this run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) json: bool,
}

/// A column: its header and the member of each row object it shows (`a.b` for a nested one).
pub(crate) type Column = (&'static str, &'static str);

impl Out {
    /// Prints a list: the JSON as is, or a table of `columns`.
    pub(crate) fn list(&self, value: &Value, columns: &[Column]) {
        if self.json {
            self.raw(value);
            return;
        }
        let rows: Vec<Vec<String>> = value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| {
                        columns
                            .iter()
                            .map(|(_, key)| cell(member(item, key)))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if rows.is_empty() {
            line("(none)");
            return;
        }
        line(&table(columns, &rows));
    }

    /// Prints one object: the JSON as is, or its members as aligned `key: value` lines.
    pub(crate) fn object(&self, value: &Value) {
        if self.json {
            self.raw(value);
            return;
        }
        line(&details(value));
    }

    /// Prints a sentence for people, or `value` as JSON.
    pub(crate) fn done(&self, message: &str, value: &Value) {
        if self.json {
            self.raw(value);
        } else {
            line(message);
        }
    }

    /// Prints JSON, pretty.
    pub(crate) fn raw(&self, value: &Value) {
        line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
    }
}

/// Writes one line to stdout; a closed pipe (`| head`) ends quietly.
pub(crate) fn line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{text}").is_err() {
        std::process::exit(0);
    }
}

/// `value.a.b` for the key `a.b` (null when missing).
pub(crate) fn member<'a>(value: &'a Value, key: &str) -> &'a Value {
    key.split('.').fold(value, |v, k| &v[k])
}

/// A JSON value as a table cell: strings bare, arrays comma-joined, null empty.
pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
        other => other.to_string(),
    }
}

/// Aligned columns, headers in capitals.
pub(crate) fn table(columns: &[Column], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(text.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        for (i, (text, width)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(text);
            if i < last {
                out.extend(std::iter::repeat_n(' ', width - text.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    push_row(columns.iter().map(|(h, _)| h.to_uppercase()).collect());
    for row in rows {
        push_row(row.clone());
    }
    out.pop();
    out
}

/// `key: value` lines, keys aligned, nested objects flattened as `outer.inner`.
pub(crate) fn details(value: &Value) -> String {
    let mut pairs = Vec::new();
    flatten("", value, &mut pairs);
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k}:{}{v}", " ".repeat(width - k.chars().count() + 1)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), cell(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align() {
        let text = table(
            &[("name", "name"), ("role", "role")],
            &[
                vec!["acme".into(), "admin".into()],
                vec!["a".into(), "view".into()],
            ],
        );
        assert_eq!(text, "NAME  ROLE\nacme  admin\na     view");
    }

    #[test]
    fn details_flatten() {
        let text =
            details(&json!({"name": "x", "jitp": {"product_name": "p", "tags": ["a", "b"]}}));
        assert_eq!(
            text,
            "jitp.product_name: p\njitp.tags:         a,b\nname:              x"
        );
    }
}
