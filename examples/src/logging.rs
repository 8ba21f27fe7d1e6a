//! Logging setup shared by the binaries: to stderr, filtered by `RUST_LOG` (default `info`),
//! as text (colours only when stderr is a terminal) or as one JSON object per line.

use std::io::IsTerminal as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines; ANSI colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`/`spans`).
    Json,
}

/// Installs the global subscriber. `RUST_LOG` (e.g. `info,nerveshub_server=debug`) filters;
/// an invalid value falls back to `info` with a warning rather than silencing everything.
pub(crate) fn init(format: LogFormat) {
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            match tracing_subscriber::EnvFilter::try_new(&spec) {
                Ok(filter) => (filter, None),
                Err(e) => (
                    tracing_subscriber::EnvFilter::new("info"),
                    Some(format!("{spec:?}: {e}")),
                ),
            }
        }
        _ => (tracing_subscriber::EnvFilter::new("info"), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    if let Some(bad) = bad_filter {
        tracing::warn!(rust_log = %bad, "RUST_LOG is not a valid filter; logging at info");
    }
}
