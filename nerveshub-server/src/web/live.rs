//! Live fragments: a page section that re-renders on the server every second and is sent to
//! the browser by Server-Sent Events only when its HTML changed (htmx's SSE extension swaps
//! it in). Each render calls the API as the user again, so a user who loses access stops
//! receiving data at the next tick.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use maud::{Markup, html};

use super::page::WebError;

/// How often a live fragment is rendered again.
const TICK: Duration = Duration::from_secs(1);
/// A stream ends after this long; the browser's EventSource reconnects, so a forgotten tab
/// does not hold a connection and a render loop forever without the session being checked.
const MAX_STREAM: Duration = Duration::from_secs(15 * 60);
/// The SSE event the fragment's element swaps in.
pub(crate) const EVENT: &str = "update";

/// The SSE answer for a fragment made by `render`.
pub(crate) fn stream<F, Fut>(render: F) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Markup, WebError>> + Send,
{
    struct State<F> {
        render: F,
        last: Option<String>,
        started: tokio::time::Instant,
        first: bool,
        done: bool,
    }
    let start = State {
        render,
        last: None,
        started: tokio::time::Instant::now(),
        first: true,
        done: false,
    };
    let events = futures_util::stream::unfold(start, |mut state| async move {
        loop {
            if state.done || state.started.elapsed() > MAX_STREAM {
                return None;
            }
            if !state.first {
                tokio::time::sleep(TICK).await;
            }
            state.first = false;
            let html = match (state.render)().await {
                Ok(markup) => markup.into_string(),
                // Access gone or the thing deleted: say so once, then end the stream.
                Err(error) => {
                    state.done = true;
                    let gone = html! { p.error { (error.message()) } }.into_string();
                    return Some((Ok(Event::default().event(EVENT).data(gone)), state));
                }
            };
            if state.last.as_deref() != Some(html.as_str()) {
                let event = Event::default().event(EVENT).data(html.clone());
                state.last = Some(html);
                return Some((Ok(event), state));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The element a live fragment lives in: rendered with the page (so it works without
/// JavaScript), then replaced by each event from `source`.
pub(crate) fn region(source: &str, initial: Markup) -> Markup {
    html! {
        div.live hx-ext="sse" sse-connect=(source) sse-swap=(EVENT) aria-live="polite" {
            (initial)
        }
    }
}
