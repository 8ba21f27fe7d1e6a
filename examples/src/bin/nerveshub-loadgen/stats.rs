//! What the simulated fleet measured: counters shared by every device task, per-phase connect
//! latencies and the summary written at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Why a connection attempt did not end in a joined `device` channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// TCP connect failed (refused, reset, no port left…).
    Tcp(String),
    /// The TLS handshake failed.
    Tls(String),
    /// The WebSocket upgrade was answered with this HTTP status (and NervesHub's reason header).
    Http(u16, Option<String>),
    /// The WebSocket upgrade failed otherwise.
    WebSocket(String),
    /// The server refused the `device` join.
    JoinRefused(String),
    /// The connection closed before the join was answered.
    ClosedBeforeJoin,
    /// No answer within the attempt's time limit.
    Timeout,
}

impl Failure {
    fn label(&self) -> String {
        match self {
            Failure::Tcp(e) => format!("tcp: {e}"),
            Failure::Tls(e) => format!("tls: {e}"),
            Failure::Http(status, Some(reason)) => format!("http {status}: {reason}"),
            Failure::Http(status, None) => format!("http {status}"),
            Failure::WebSocket(e) => format!("websocket: {e}"),
            Failure::JoinRefused(r) => format!("join refused: {r}"),
            Failure::ClosedBeforeJoin => "closed before the join reply".to_owned(),
            Failure::Timeout => "timeout".to_owned(),
        }
    }
}

/// One phase of a run (the cold start, a storm): who joined, how fast, what failed.
#[derive(Debug, Default)]
struct Phase {
    name: String,
    started: Option<Instant>,
    /// Connect-to-joined latency of each successful attempt, in microseconds.
    latencies_us: Vec<u64>,
    /// When the last device of the phase joined, from the phase's start.
    last_join: Option<Duration>,
    failures: BTreeMap<String, u64>,
}

/// Counters every device task updates.
#[derive(Debug)]
pub(crate) struct Stats {
    origin: Instant,
    phases: Mutex<Vec<Phase>>,
    /// Devices whose channel is joined right now.
    pub(crate) joined_now: AtomicU64,
    /// Devices that joined at least once in the current phase.
    pub(crate) joined_in_phase: AtomicU64,
    /// `update` messages received.
    pub(crate) updates_received: AtomicU64,
    /// Devices that reported an update done and rejoined on the new firmware.
    pub(crate) updates_done: AtomicU64,
    /// Downloads that failed their size or SHA-256 check, or failed outright.
    pub(crate) downloads_failed: AtomicU64,
    /// Bytes downloaded.
    pub(crate) downloaded_bytes: AtomicU64,
    /// When the first and the last `update` arrived, as microseconds since `origin` + 1
    /// (0 = none yet).
    first_update_us: AtomicU64,
    last_update_us: AtomicU64,
    /// Heartbeats sent.
    pub(crate) heartbeats: AtomicU64,
    /// Connections the server closed while joined (outside a storm).
    pub(crate) dropped: AtomicU64,
    /// TLS handshakes that resumed an earlier session.
    pub(crate) resumed_handshakes: AtomicU64,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            origin: Instant::now(),
            phases: Mutex::new(Vec::new()),
            joined_now: AtomicU64::new(0),
            joined_in_phase: AtomicU64::new(0),
            updates_received: AtomicU64::new(0),
            updates_done: AtomicU64::new(0),
            downloads_failed: AtomicU64::new(0),
            downloaded_bytes: AtomicU64::new(0),
            first_update_us: AtomicU64::new(0),
            last_update_us: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            resumed_handshakes: AtomicU64::new(0),
        }
    }

    /// Starts a phase; later joins and failures count toward it.
    pub(crate) fn begin_phase(&self, name: &str) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        self.joined_in_phase.store(0, Ordering::SeqCst);
        phases.push(Phase {
            name: name.to_owned(),
            started: Some(Instant::now()),
            ..Phase::default()
        });
    }

    /// A device joined `device`, `latency` after its attempt began.
    pub(crate) fn joined(&self, latency: Duration) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        self.joined_now.fetch_add(1, Ordering::SeqCst);
        self.joined_in_phase.fetch_add(1, Ordering::SeqCst);
        if let Some(phase) = phases.last_mut() {
            phase
                .latencies_us
                .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            phase.last_join = phase.started.map(|s| s.elapsed());
        }
    }

    /// A joined device's connection ended.
    pub(crate) fn left(&self) {
        self.joined_now.fetch_sub(1, Ordering::SeqCst);
    }

    /// An attempt failed.
    pub(crate) fn failed(&self, failure: &Failure) {
        let mut phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(phase) = phases.last_mut() {
            *phase.failures.entry(failure.label()).or_default() += 1;
        }
    }

    /// An `update` arrived.
    pub(crate) fn update_received(&self) {
        let now = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1;
        self.updates_received.fetch_add(1, Ordering::SeqCst);
        let _ = self
            .first_update_us
            .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        self.last_update_us.fetch_max(now, Ordering::SeqCst);
    }

    /// The summary: one object per phase, the updates, and the process's peak memory.
    pub(crate) fn summary(&self, devices: u64) -> Value {
        let phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        let phases: Vec<Value> = phases.iter().map(|p| phase_summary(p, devices)).collect();
        let first = self.first_update_us.load(Ordering::SeqCst);
        let last = self.last_update_us.load(Ordering::SeqCst);
        let updates = json!({
            "received": self.updates_received.load(Ordering::SeqCst),
            "done": self.updates_done.load(Ordering::SeqCst),
            "downloads_failed": self.downloads_failed.load(Ordering::SeqCst),
            "downloaded_bytes": self.downloaded_bytes.load(Ordering::SeqCst),
            // From the first `update` any device received to the last.
            "spread_ms": if first == 0 { Value::Null } else { json!((last - first) / 1000) },
        });
        json!({
            "devices": devices,
            "phases": phases,
            "updates": updates,
            "heartbeats": self.heartbeats.load(Ordering::SeqCst),
            "dropped_by_server": self.dropped.load(Ordering::SeqCst),
            "resumed_tls_handshakes": self.resumed_handshakes.load(Ordering::SeqCst),
            "loadgen_peak_rss_kib": peak_rss_kib(),
        })
    }
}

fn phase_summary(phase: &Phase, devices: u64) -> Value {
    let mut sorted = phase.latencies_us.clone();
    sorted.sort_unstable();
    let percentile = |p: f64| -> Value {
        if sorted.is_empty() {
            return Value::Null;
        }
        // Nearest rank: the smallest value with at least p % of the samples at or below it.
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let v = sorted[rank.clamp(1, sorted.len()) - 1];
        json!(v as f64 / 1000.0)
    };
    let joins = sorted.len() as u64;
    let all_ms = phase.last_join.map(|d| d.as_secs_f64() * 1000.0);
    json!({
        "name": phase.name,
        "joins": joins,
        "all_joined": joins >= devices,
        "failed_attempts": phase.failures.values().sum::<u64>(),
        "failures": phase.failures,
        "time_to_last_join_ms": all_ms,
        "joins_per_second": match all_ms {
            Some(ms) if ms > 0.0 => json!((joins as f64 / (ms / 1000.0)).round()),
            _ => Value::Null,
        },
        "connect_to_join_ms": {
            "p50": percentile(50.0),
            "p90": percentile(90.0),
            "p99": percentile(99.0),
            "max": percentile(100.0),
        },
    })
}

/// The process's peak resident memory (Linux `VmHWM`), when it can be read.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_reports_percentiles_failures_and_whether_all_joined() {
        let stats = Stats::new();
        stats.begin_phase("cold_start");
        for ms in 1..=100 {
            stats.joined(Duration::from_millis(ms));
        }
        stats.failed(&Failure::Http(503, Some("overloaded".into())));
        stats.failed(&Failure::Timeout);
        stats.failed(&Failure::Timeout);
        let s = stats.summary(100);
        let phase = &s["phases"][0];
        assert_eq!(phase["joins"], 100);
        assert_eq!(phase["all_joined"], true);
        assert_eq!(phase["failed_attempts"], 3);
        assert_eq!(phase["failures"]["timeout"], 2);
        assert_eq!(phase["failures"]["http 503: overloaded"], 1);
        assert_eq!(phase["connect_to_join_ms"]["p50"], 50.0);
        assert_eq!(phase["connect_to_join_ms"]["p99"], 99.0);
        assert_eq!(phase["connect_to_join_ms"]["max"], 100.0);
        assert_eq!(stats.summary(101)["phases"][0]["all_joined"], false);
    }

    #[test]
    fn the_update_spread_runs_from_the_first_update_to_the_last() {
        let stats = Stats::new();
        assert_eq!(stats.summary(1)["updates"]["spread_ms"], Value::Null);
        stats.update_received();
        stats.update_received();
        assert_eq!(stats.summary(1)["updates"]["received"], 2);
        assert!(stats.summary(1)["updates"]["spread_ms"].is_u64());
    }
}
