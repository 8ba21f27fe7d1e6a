//! What can go wrong talking to the management API, one variant per case a user acts on
//! differently (sign in again, ask for a role, fix a field …).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// An error from [`Client`](crate::Client).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached (connection refused, DNS, TLS handshake, timeout).
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        /// The URL that was called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// 401: no token, or a wrong, expired or revoked one.
    #[error("not signed in, or the token or certificate is no longer valid (HTTP 401)")]
    Unauthorized,
    /// 403: the caller is a member of the org but its role is too low.
    #[error("forbidden (HTTP 403): {detail}")]
    Forbidden {
        /// The server's message.
        detail: String,
    },
    /// 404: the thing does not exist, or the caller is not a member of its org.
    #[error("not found (HTTP 404): {detail}")]
    NotFound {
        /// The server's message.
        detail: String,
    },
    /// 409: the request conflicts with the resource's state (e.g. the device is offline).
    #[error("conflict (HTTP 409): {detail}")]
    Conflict {
        /// The server's message.
        detail: String,
    },
    /// 422: invalid fields, with the server's messages per field.
    #[error("invalid input (HTTP 422): {}", FieldErrors(.fields))]
    Validation {
        /// Field name → messages.
        fields: BTreeMap<String, Vec<String>>,
    },
    /// Any other unsuccessful status.
    #[error("HTTP {status}: {detail}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The server's message, or the start of the body.
        detail: String,
    },
    /// The server answered something that is not the API's JSON.
    #[error("unexpected answer from the server: {0}")]
    InvalidResponse(String),
    /// The client could not be set up (bad URL, unreadable CA or certificate).
    #[error("client setup: {0}")]
    Setup(String),
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status the server answered, when the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::Validation { .. } => Some(422),
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The error for an unsuccessful answer with this status and body.
    pub(crate) fn from_answer(status: u16, body: &[u8]) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let detail = json
            .as_ref()
            .and_then(|v| {
                v.pointer("/errors/detail")
                    .or_else(|| v.get("status"))
                    .or_else(|| v.get("message"))
            })
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    "(no message)".to_owned()
                } else {
                    text.chars().take(300).collect()
                }
            });
        match status {
            401 => Error::Unauthorized,
            403 => Error::Forbidden { detail },
            404 => Error::NotFound { detail },
            409 => Error::Conflict { detail },
            422 => match json.as_ref().and_then(|v| v.get("errors")).and_then(fields) {
                Some(fields) => Error::Validation { fields },
                None => Error::Status { status, detail },
            },
            _ => Error::Status { status, detail },
        }
    }
}

/// `{"field": ["message", …], …}` as a map; `None` when the shape differs.
fn fields(errors: &Value) -> Option<BTreeMap<String, Vec<String>>> {
    let object = errors.as_object()?;
    let mut out = BTreeMap::new();
    for (field, messages) in object {
        let messages = match messages {
            Value::Array(items) => items
                .iter()
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                .collect(),
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        out.insert(field.clone(), messages);
    }
    Some(out)
}

/// `field: message; field: message`.
struct FieldErrors<'a>(&'a BTreeMap<String, Vec<String>>);

impl fmt::Display for FieldErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, messages) in self.0 {
            for message in messages {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{field} {message}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_typed_errors() {
        let e = Error::from_answer(409, br#"{"errors":{"detail":"device is offline"}}"#);
        assert_eq!(e.to_string(), "conflict (HTTP 409): device is offline");
        let e = Error::from_answer(422, br#"{"errors":{"name":["can't be blank"]}}"#);
        assert_eq!(
            e.to_string(),
            "invalid input (HTTP 422): name can't be blank"
        );
        assert!(matches!(Error::from_answer(401, b""), Error::Unauthorized));
        let e = Error::from_answer(500, b"<html>oops</html>");
        assert_eq!(e.to_string(), "HTTP 500: <html>oops</html>");
        let e = Error::from_answer(403, br#"{"status":"Unauthorized"}"#);
        assert_eq!(e.status(), Some(403));
        assert_eq!(e.to_string(), "forbidden (HTTP 403): Unauthorized");
    }

    proptest::proptest! {
        /// Any status and body: a typed error carrying that status, never a panic.
        #[test]
        fn any_answer_becomes_an_error(status in 400u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let e = Error::from_answer(status, &body);
            proptest::prop_assert_eq!(e.status(), Some(status));
            proptest::prop_assert!(!e.to_string().is_empty());
        }
    }
}
