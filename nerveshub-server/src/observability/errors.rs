//! The one place server errors are logged: a response that ends in 5xx because something
//! failed carries that error in a [`Cause`] extension (put there by the error's
//! `IntoResponse`, see [`attach_cause`]), and [`log_server_errors`] logs it once, with the
//! request's method and path and the error's whole `source()` chain.
//!
//! Handlers and error types never log their own 5xx: logging at the boundary keeps one line
//! per failure, with the request it failed, instead of a line without it deep inside and
//! another with a status in the access log. The query is never logged (it can carry URL
//! signatures). A 5xx without a cause (a refusal under load, say) is in the access log only.

use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// The error behind a 5xx response, on its way to [`log_server_errors`]. Response extensions
/// must be `Clone`, hence the `Arc`.
#[derive(Debug, Clone)]
pub(crate) struct Cause(Arc<dyn Error + Send + Sync + 'static>);

/// Attaches `error` to `response` for [`log_server_errors`].
pub(crate) fn attach_cause(response: &mut Response, error: impl Error + Send + Sync + 'static) {
    response.extensions_mut().insert(Cause(Arc::new(error)));
}

/// `error`, then each of its sources, joined by `: `. A source whose text the line already
/// ends with is not repeated (many errors print their source as well as returning it).
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let part = source.to_string();
        if !text.ends_with(&part) {
            let _ = write!(text, ": {part}");
        }
        next = source.source();
    }
    text
}

/// Logs each 5xx response that carries a [`Cause`] (and removes the extension, so nothing
/// outside this middleware sees it).
pub(crate) async fn log_server_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if let Some(Cause(error)) = response.extensions_mut().remove::<Cause>()
        && response.status().is_server_error()
    {
        tracing::error!(
            %method,
            %path,
            status = response.status().as_u16(),
            error = %chain(error.as_ref()),
            "request failed"
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("repeats: {0}")]
    struct Repeats(#[source] Outer);

    #[test]
    fn the_chain_names_every_source_once() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&error), "outer: inner");
        assert_eq!(
            chain(&Repeats(Outer(std::io::Error::other("inner")))),
            "repeats: outer: inner"
        );
    }
}
