//! The time of day as the server reads it: the system clock in production, a clock a test
//! sets and moves forward in tests ([`ManualClock`]), so rules with lifetimes (a CA
//! verification token's hour, the stale-connection sweep, web session expiry) are tested
//! without sleeping. Pacing and timeouts measure elapsed time with `Instant` instead, which
//! this clock does not replace.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the server reads the time of day; cheap to clone. [`Clock::system`] (the default)
/// reads the system clock; a clock from [`ManualClock::clock`] reads what its test set.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: Unix milliseconds a [`ManualClock`] sets.
    manual: Option<Arc<AtomicI64>>,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::system"),
            Some(ms) => write!(f, "Clock::manual({} ms)", ms.load(Ordering::Relaxed)),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Now.
    pub fn now(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(ms) => {
                let ms = u64::try_from(ms.load(Ordering::Relaxed)).unwrap_or(0);
                UNIX_EPOCH + Duration::from_millis(ms)
            }
        }
    }

    /// Now in Unix milliseconds, the unit of every time column (0 before 1970).
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.manual {
            None => unix_ms(SystemTime::now()),
            Some(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Now as certificate checks take it.
    pub(crate) fn now_unix(&self) -> nerveshub_pki::UnixTime {
        nerveshub_pki::UnixTime::since_unix_epoch(
            self.now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        )
    }
}

/// A clock for tests: it stands still until the test moves it. Give the server
/// [`ManualClock::clock`] (`Config::clock`) and keep this handle to move it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let manual = nerveshub_server::ManualClock::new(SystemTime::now());
/// let clock = manual.clock();
/// let before = clock.now();
/// manual.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start` (to the millisecond).
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock {
            ms: Arc::new(AtomicI64::new(unix_ms(start))),
        }
    }

    /// The [`Clock`] this handle moves.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.ms.clone()),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(by, Ordering::Relaxed);
    }
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let manual = ManualClock::new(start);
        let clock = manual.clock();
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now_ms(), 1_700_000_000_123);
        manual.advance(Duration::from_secs(61));
        assert_eq!(clock.now_ms(), 1_700_000_061_123);
        assert_eq!(clock.clone().now(), start + Duration::from_secs(61));
        assert_eq!(clock.now_unix().as_secs(), 1_700_000_061);
    }

    #[test]
    fn the_system_clock_reads_the_time_of_day() {
        let before = SystemTime::now();
        let read = Clock::system().now();
        assert!(read >= before);
        assert!(Clock::system().now_ms() >= unix_ms(before));
    }
}
