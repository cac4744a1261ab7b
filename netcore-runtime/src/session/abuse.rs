//! Budgets for work a peer makes us do that does nothing (docs/PROTOCOL.md §8.5): requests it
//! cancels before they are answered, and frames that need no answer. Counted in fixed windows of
//! the caller's clock (the session reads none).

#[allow(unused_imports)]
use crate::prelude::*;

use crate::time::{Duration, Instant};

/// A count of events per fixed window, against a limit raised by what this side earned.
#[derive(Debug)]
pub(super) struct Budget {
    limit: u32,
    window: Duration,
    /// Start of the current window; `None` before the first event.
    start: Option<Instant>,
    count: u32,
    /// Allowance earned in the current and the previous window (what the peer's frames answer
    /// may have been sent in either).
    earned: u64,
    earned_before: u64,
}

impl Budget {
    pub(super) fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, start: None, count: 0, earned: 0, earned_before: 0 }
    }

    /// Raises the current window's allowance by `n`.
    pub(super) fn earn(&mut self, n: u64) {
        self.earned = self.earned.saturating_add(n);
    }

    /// Counts one event at `now`: `Err(count)` once the window's count exceeds its allowance.
    pub(super) fn spend(&mut self, now: Instant) -> Result<(), u32> {
        match self.start {
            Some(start) if now.saturating_duration_since(start) < self.window => {}
            Some(start) => {
                // A window with no event in it earns the next one nothing.
                let next_due = now.saturating_duration_since(start) < self.window * 2;
                self.earned_before = if next_due { self.earned } else { 0 };
                self.earned = 0;
                self.start = Some(now);
                self.count = 0;
            }
            None => self.start = Some(now),
        }
        self.count = self.count.saturating_add(1);
        let allowance = u64::from(self.limit).saturating_add(self.earned).saturating_add(self.earned_before);
        match u64::from(self.count) > allowance {
            true => Err(self.count),
            false => Ok(()),
        }
    }

    pub(super) fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_window_and_earns() {
        let t0 = Instant::now();
        let mut budget = Budget::new(3, Duration::from_secs(1));
        for _ in 0..3 {
            budget.spend(t0).unwrap();
        }
        assert_eq!(budget.spend(t0), Err(4), "the fourth in one window is over");
        let t1 = t0 + Duration::from_secs(1);
        budget.spend(t1).unwrap();
        budget.earn(2);
        for _ in 0..4 {
            budget.spend(t1).unwrap();
        }
        assert_eq!(budget.spend(t1), Err(6), "3 plus 2 earned");
        let t2 = t1 + Duration::from_millis(1500);
        for _ in 0..5 {
            budget.spend(t2).unwrap();
        }
        assert!(budget.spend(t2).is_err(), "what the previous window earned still counts, once");
        budget.spend(t2 + Duration::from_secs(5)).unwrap();
        for _ in 0..2 {
            budget.spend(t2 + Duration::from_secs(5)).unwrap();
        }
        assert!(budget.spend(t2 + Duration::from_secs(5)).is_err(), "an idle window earned nothing");
    }
}
