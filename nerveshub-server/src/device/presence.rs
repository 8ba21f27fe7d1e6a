//! The presence writer: device disconnections and "last seen" times, written in batches by
//! one task instead of one statement per device.
//!
//! A socket that closes hands its disconnection here and ends at once (its descriptor is
//! released before any database work); a socket that hears from its device marks it seen in
//! memory. The writer keeps at most one pending change per device, coalesced, and writes them
//! every [`FLUSH_INTERVAL`] (sooner when many disconnections wait) with one statement per
//! [`BATCH_ROWS`] devices and kind. A failed write keeps its changes and is retried with
//! backoff: a disconnection is never dropped while the server runs, and the shutdown writes
//! what is pending within its grace period.
//!
//! Order does not matter between batches: a disconnection only applies to the connections
//! established up to its socket's own join (`connection_established_at <= up_to`, and joins
//! write a per-device strictly increasing value), so an old socket's late disconnection
//! cannot mark a newer connection offline; "last seen" only applies to connected devices and
//! never moves backwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::db::{Db, now_ms};

/// How often pending changes are written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Devices per statement: far under SQLite's 32,766 and PostgreSQL's 65,535 bind variables
/// (a disconnection binds three).
pub(crate) const BATCH_ROWS: usize = 1000;
/// The longest wait between retries while the database fails.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Between retries of the shutdown's last writes.
const SHUTDOWN_RETRY: Duration = Duration::from_millis(200);

/// A pending disconnection: the device's connections established up to `up_to` (ms) ended;
/// the last one at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Disconnect {
    pub(crate) up_to: i64,
    pub(crate) at: i64,
}

/// What waits to be written for one device.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Change {
    /// The latest time the device was heard from.
    seen_at: Option<i64>,
    disconnect: Option<Disconnect>,
}

impl Change {
    /// Folds a later (or retried) change of the same device into this one. Disconnections
    /// cover each other's connections (the widest `up_to`), seen times keep the latest.
    fn merge(&mut self, other: Change) {
        self.seen_at = self.seen_at.max(other.seen_at);
        self.disconnect = match (self.disconnect, other.disconnect) {
            (Some(a), Some(b)) => Some(Disconnect {
                up_to: a.up_to.max(b.up_to),
                at: a.at.max(b.at),
            }),
            (a, b) => a.or(b),
        };
    }
}

/// The pending changes, at most one per device.
#[derive(Debug, Default)]
struct Pending {
    changes: HashMap<i64, Change>,
    disconnects: usize,
}

/// One flush's share of the pending changes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Batch {
    /// `(device id, disconnection)`.
    disconnects: Vec<(i64, Disconnect)>,
    /// `(device id, seen at)`.
    seen: Vec<(i64, i64)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.disconnects.is_empty() && self.seen.is_empty()
    }
}

impl Pending {
    fn merge(&mut self, device_id: i64, change: Change) {
        let entry = self.changes.entry(device_id).or_default();
        let had = entry.disconnect.is_some();
        entry.merge(change);
        if !had && entry.disconnect.is_some() {
            self.disconnects += 1;
        }
    }

    fn seen(&mut self, device_id: i64, at: i64) {
        self.merge(
            device_id,
            Change {
                seen_at: Some(at),
                disconnect: None,
            },
        );
    }

    fn disconnected(&mut self, device_id: i64, up_to: i64, at: i64) {
        self.merge(
            device_id,
            Change {
                seen_at: None,
                disconnect: Some(Disconnect { up_to, at }),
            },
        );
        // What the closed socket saw is written with its disconnection; a seen time after
        // it can only come from a newer connection and stays.
        if let Some(entry) = self.changes.get_mut(&device_id)
            && entry.seen_at.is_some_and(|seen| seen <= at)
        {
            entry.seen_at = None;
        }
    }

    /// Takes everything pending. A seen time kept beside a disconnection is a newer
    /// connection's; it is written after the disconnections, and only if connected.
    fn take(&mut self) -> Batch {
        let mut batch = Batch::default();
        for (id, change) in self.changes.drain() {
            if let Some(d) = change.disconnect {
                batch.disconnects.push((id, d));
            }
            if let Some(at) = change.seen_at {
                batch.seen.push((id, at));
            }
        }
        self.disconnects = 0;
        batch
    }

    /// Puts back what a failed flush did not write; changes made meanwhile are kept.
    fn restore(&mut self, batch: Batch) {
        for (id, d) in batch.disconnects {
            self.merge(
                id,
                Change {
                    seen_at: None,
                    disconnect: Some(d),
                },
            );
        }
        for (id, at) in batch.seen {
            self.seen(id, at);
        }
    }

    fn len(&self) -> usize {
        self.changes.len()
    }
}

/// A flush's batch: what is not written when it drops goes back to the pending changes
/// (a write that failed, or a flush abandoned at a deadline; writing a row twice is harmless).
struct Taken<'a> {
    presence: &'a Presence,
    batch: Batch,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.presence.lock().restore(batch);
        }
    }
}

struct Inner {
    db: Db,
    pending: Mutex<Pending>,
    /// Wakes the writer early when many disconnections wait.
    wake: Notify,
    /// One flush at a time (the writer's and the shutdown's).
    flushing: tokio::sync::Mutex<()>,
    /// Test-only fault injection: writes fail as if the database were down.
    failing: AtomicBool,
    failed_writes: AtomicU64,
}

/// The presence writer's handle; cheap to clone. Recording never waits on the database.
#[derive(Clone)]
pub(crate) struct Presence {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("pending", &self.pending_count())
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// A writer of presence changes into `db`; [`run`](Self::run) drives it.
    pub(crate) fn new(db: Db) -> Self {
        Presence {
            inner: Arc::new(Inner {
                db,
                pending: Mutex::new(Pending::default()),
                wake: Notify::new(),
                flushing: tokio::sync::Mutex::new(()),
                failing: AtomicBool::new(false),
                failed_writes: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Each change is one map update: consistent even after a panic elsewhere.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The device (connected) was heard from now.
    pub(crate) fn seen(&self, device_id: i64) {
        let now = self.inner.db.now_ms();
        self.lock().seen(device_id, now);
    }

    /// A socket of the device closed: its connections established up to `up_to` (its join's
    /// `connection_established_at`, or the close's time if it never joined) are over.
    pub(crate) fn disconnected(&self, device_id: i64, up_to: i64) {
        let now = self.inner.db.now_ms();
        let many = {
            let mut pending = self.lock();
            pending.disconnected(device_id, up_to, now);
            pending.disconnects >= BATCH_ROWS
        };
        if many {
            self.inner.wake.notify_one();
        }
    }

    /// Devices with a change not yet written.
    pub(crate) fn pending_count(&self) -> usize {
        self.lock().len()
    }

    /// Batch writes that failed (and were kept to retry) since the start.
    pub(crate) fn failed_writes(&self) -> u64 {
        self.inner.failed_writes.load(Ordering::Relaxed)
    }

    /// Test-only: while `fail` is true every write fails as if the database were down.
    pub(crate) fn set_failing(&self, fail: bool) {
        self.inner.failing.store(fail, Ordering::Relaxed);
    }

    /// Writes what is pending. On an error the unwritten changes are kept for the next flush;
    /// so they are when this future is dropped half-way (a shutdown's deadline).
    pub(crate) async fn flush(&self) -> Result<(), sqlx::Error> {
        let _one = self.inner.flushing.lock().await;
        let mut taken = Taken {
            presence: self,
            batch: self.lock().take(),
        };
        if taken.batch.is_empty() {
            return Ok(());
        }
        let written = self.write(&mut taken.batch).await;
        if written.is_err() {
            self.inner.failed_writes.fetch_add(1, Ordering::Relaxed);
        }
        // Whatever is left in the batch goes back as `taken` drops.
        written
    }

    /// Writes `batch`, removing from it each chunk once written: what is left on an error is
    /// what still needs writing. Disconnections go first.
    async fn write(&self, batch: &mut Batch) -> Result<(), sqlx::Error> {
        let db = &self.inner.db;
        while !batch.disconnects.is_empty() {
            self.check_failing()?;
            let n = batch.disconnects.len().min(BATCH_ROWS);
            let rows: Vec<(i64, i64, i64)> = batch.disconnects[..n]
                .iter()
                .map(|(id, d)| (*id, d.up_to, d.at))
                .collect();
            db.write_disconnects(&rows).await?;
            batch.disconnects.drain(..n);
        }
        while !batch.seen.is_empty() {
            self.check_failing()?;
            let n = batch.seen.len().min(BATCH_ROWS);
            let chunk = &batch.seen[..n];
            // One time per statement: the earliest in the chunk, so none is claimed seen
            // later than it was.
            let at = chunk.iter().map(|(_, at)| *at).min().unwrap_or_else(now_ms);
            let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
            db.write_last_seen(at, &ids).await?;
            batch.seen.drain(..n);
        }
        Ok(())
    }

    fn check_failing(&self) -> Result<(), sqlx::Error> {
        if self.inner.failing.load(Ordering::Relaxed) {
            return Err(sqlx::Error::PoolTimedOut);
        }
        Ok(())
    }

    /// The writer: flushes every [`FLUSH_INTERVAL`] (or when woken) until `stop`, backing off
    /// while the database fails. The last writes are the shutdown's ([`drain`](Self::drain)).
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut delay = FLUSH_INTERVAL;
        loop {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.inner.wake.notified(), if delay == FLUSH_INTERVAL => {}
                () = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
            // A flush stuck on an unreachable database must not hold the shutdown up: it is
            // abandoned (its changes kept) for the shutdown's own.
            let flushed = tokio::select! {
                flushed = self.flush() => flushed,
                () = async { let _ = stop.wait_for(|s| *s).await; } => return,
            };
            match flushed {
                Ok(()) => delay = FLUSH_INTERVAL,
                Err(e) => {
                    delay = (delay * 2).min(MAX_BACKOFF);
                    tracing::warn!(
                        error = %e,
                        pending = self.pending_count(),
                        retry_in = ?delay,
                        "writing device presence failed; kept for a retry"
                    );
                }
            }
        }
    }

    /// Writes what is pending, retrying until it is written or `deadline` passes.
    pub(crate) async fn drain(&self, deadline: tokio::time::Instant) {
        loop {
            let flushed = tokio::time::timeout_at(deadline, self.flush()).await;
            match flushed {
                Ok(Ok(())) if self.pending_count() == 0 => return,
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "writing device presence at shutdown failed")
                }
                Err(_) => break,
            }
            if tokio::time::Instant::now() + SHUTDOWN_RETRY >= deadline {
                break;
            }
            tokio::time::sleep(SHUTDOWN_RETRY).await;
        }
        let left = self.pending_count();
        if left > 0 {
            // Devices left "connected" are marked disconnected by the stale-connection sweep.
            tracing::warn!(
                devices = left,
                "device presence not written within the shutdown grace period"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_device_and_the_widest_disconnection_wins() {
        let mut p = Pending::default();
        p.seen(1, 100);
        p.seen(1, 200);
        p.disconnected(2, 50, 300);
        // An old socket's disconnection arriving after a newer socket's covers nothing new.
        p.disconnected(2, 40, 310);
        p.disconnected(2, 60, 305);
        assert_eq!(p.len(), 2);
        assert_eq!(p.disconnects, 1);
        let mut batch = p.take();
        batch.seen.sort_unstable();
        assert_eq!(
            batch,
            Batch {
                disconnects: vec![(2, Disconnect { up_to: 60, at: 310 })],
                seen: vec![(1, 200)],
            }
        );
        assert_eq!(p.len(), 0);
        assert_eq!(p.disconnects, 0);
    }

    #[test]
    fn a_disconnection_absorbs_what_its_socket_saw_but_not_a_newer_connection() {
        let mut p = Pending::default();
        p.seen(1, 100);
        p.disconnected(1, 90, 150);
        assert_eq!(
            p.changes[&1],
            Change {
                seen_at: None,
                disconnect: Some(Disconnect { up_to: 90, at: 150 })
            }
        );
        // A fast reconnect: the new connection (joined at 160) is heard from at 170. Both
        // are kept; the disconnection's `up_to` leaves connection 160 alone.
        p.seen(1, 170);
        assert_eq!(
            p.changes[&1],
            Change {
                seen_at: Some(170),
                disconnect: Some(Disconnect { up_to: 90, at: 150 })
            }
        );
    }

    #[test]
    fn a_failed_batch_is_restored_and_merged_with_newer_changes() {
        let mut p = Pending::default();
        p.disconnected(1, 10, 20);
        p.seen(2, 30);
        let batch = p.take();
        // Meanwhile: device 1 reconnected and closed again, device 3 disconnected.
        p.disconnected(1, 40, 50);
        p.disconnected(3, 5, 55);
        p.restore(batch);
        assert_eq!(p.len(), 3);
        assert_eq!(p.disconnects, 2);
        assert_eq!(
            p.changes[&1].disconnect,
            Some(Disconnect { up_to: 40, at: 50 })
        );
        assert_eq!(p.changes[&2].seen_at, Some(30));
        assert_eq!(
            p.changes[&3].disconnect,
            Some(Disconnect { up_to: 5, at: 55 })
        );
    }

    #[test]
    fn many_devices_take_one_entry_each() {
        let mut p = Pending::default();
        for round in 0..3 {
            for id in 0..2_500 {
                p.seen(id, round);
                p.disconnected(id, round, round + 1);
            }
        }
        assert_eq!(p.len(), 2_500);
        let batch = p.take();
        assert_eq!(batch.disconnects.len(), 2_500);
        assert!(batch.seen.is_empty());
    }

    /// The writer's SQL on a real database: SQLite always, PostgreSQL too when
    /// `NERVESHUB_TEST_DATABASE_URL` is set (in a database made for the test).
    mod on_a_database {
        use super::*;
        use crate::db::{self, NewDevice};

        async fn status(db: &Db, id: i64) -> (String, Option<i64>, Option<i64>) {
            sqlx::query_as(
                "SELECT connection_status, connection_last_seen_at, connection_disconnected_at
                 FROM devices WHERE id = $1",
            )
            .bind(id)
            .fetch_one(db.pool())
            .await
            .unwrap()
        }

        async fn join(db: &Db, id: i64) -> i64 {
            let mut conn = db.pool().acquire().await.unwrap();
            let join = crate::db::DeviceJoin::bare("test-node");
            crate::db::record_device_join(&mut conn, db.now_ms(), id, &join)
                .await
                .unwrap()
        }

        #[tokio::test]
        async fn batches_are_written_retried_and_guarded() {
            let dir = tempfile::tempdir().unwrap();
            for (db, pg) in crate::db::test_databases(dir.path(), "nhunit_presence").await {
                // One more device than a statement takes.
                let count = BATCH_ROWS + 1;
                let mut tx = db.begin().await.unwrap();
                let org = db::insert_org(&mut tx, "acme").await.unwrap();
                let product = db::insert_product(&mut tx, org.id, "hub").await.unwrap();
                let mut ids = Vec::with_capacity(count);
                for i in 0..count {
                    let identifier = format!("dev-{i}");
                    let device = NewDevice {
                        org_id: org.id,
                        product_id: product.id,
                        identifier: &identifier,
                        description: "",
                        tags: &[],
                    };
                    ids.push(db::insert_device(&mut tx, &device).await.unwrap());
                }
                tx.commit().await.unwrap();
                let (a, b) = (ids[0], ids[1]);

                // Two joins in one millisecond still name two connections.
                let first = join(&db, a).await;
                let second = join(&db, a).await;
                assert!(second > first);
                // The first socket's disconnection does not end the second connection.
                db.write_disconnects(&[(a, first, first + 5)])
                    .await
                    .unwrap();
                assert_eq!(status(&db, a).await.0, "connected");
                db.write_disconnects(&[(a, second, second + 7)])
                    .await
                    .unwrap();
                assert_eq!(
                    status(&db, a).await,
                    ("disconnected".into(), Some(second + 7), Some(second + 7))
                );

                // "Last seen": connected devices only, never backwards.
                let joined_b = join(&db, b).await;
                db.write_last_seen(joined_b + 1_000, &[a, b]).await.unwrap();
                db.write_last_seen(joined_b + 10, &[b]).await.unwrap();
                assert_eq!(status(&db, a).await.1, Some(second + 7));
                assert_eq!(status(&db, b).await.1, Some(joined_b + 1_000));

                // The writer: held while writes fail, nothing lost, written once they work.
                let presence = Presence::new(db.clone());
                for id in &ids {
                    join(&db, *id).await;
                }
                presence.set_failing(true);
                for id in &ids {
                    presence.disconnected(*id, now_ms());
                }
                presence.seen(b);
                assert!(presence.flush().await.is_err());
                assert_eq!(presence.pending_count(), count);
                assert_eq!(presence.failed_writes(), 1);
                assert_eq!(status(&db, a).await.0, "connected");
                presence.set_failing(false);
                presence.flush().await.unwrap();
                assert_eq!(presence.pending_count(), 0);
                let online: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM devices WHERE connection_status = 'connected'",
                )
                .fetch_one(db.pool())
                .await
                .unwrap();
                assert_eq!(online, 0);

                db.close().await;
                crate::db::drop_test_database(pg).await;
            }
        }
    }
}
