//! Progress as fwup reports it: units of work (mostly bytes) turned into percentages
//! within a range (`--progress-low`/`--progress-high`).

/// Work done so far out of the task's total, in fwup's units (bytes written for data,
/// 512 per MBR, and so on; see fwup's progress computation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units done.
    pub done: u64,
    /// Units the whole task needs (0 for a task with nothing to count).
    pub total: u64,
}

/// Turns [`Progress`] into fwup's percentages: `low` at the start, at most `high - 1` while
/// working, and `high` only once the apply succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentScale {
    low: u8,
    high: u8,
}

impl Default for PercentScale {
    fn default() -> Self {
        Self { low: 0, high: 100 }
    }
}

impl PercentScale {
    /// A scale from `low` to `high` (clamped to 0–100; `high` at least `low`).
    pub fn new(low: u8, high: u8) -> Self {
        let low = low.min(100);
        Self {
            low,
            high: high.clamp(low, 100),
        }
    }

    /// The first value reported.
    pub fn start(&self) -> u8 {
        self.low
    }

    /// The value reported on success.
    pub fn end(&self) -> u8 {
        self.high
    }

    /// The percentage for `progress` while working: fwup keeps 1 % back for the end, so
    /// 25 % of the work in the 0–100 range reads 24.
    pub fn percent(&self, progress: Progress) -> u8 {
        if progress.total == 0 {
            return self.low;
        }
        let range = u128::from(self.high - self.low);
        let done = u128::from(progress.done.min(progress.total));
        let scaled = range * done * 99 / (u128::from(progress.total) * 100);
        self.low + u8::try_from(scaled).unwrap_or(self.high - self.low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_fwups_recorded_sequences() {
        let quarters = |scale: PercentScale| -> Vec<u8> {
            (1..=4)
                .map(|q| {
                    scale.percent(Progress {
                        done: q * 16384,
                        total: 65536,
                    })
                })
                .collect()
        };
        assert_eq!(quarters(PercentScale::default()), [24, 49, 74, 99]);
        assert_eq!(quarters(PercentScale::new(20, 50)), [27, 34, 42, 49]);
    }
}
