//! The core's clock type. The session never reads a clock: every call takes `now` from the
//! caller, who reads whatever monotonic clock it has.
//!
//! With the `std` feature [`Instant`] is `std::time::Instant` (what the tokio drivers and the
//! tests pass). Without it, for a board, it is a plain monotonic count of microseconds since
//! any fixed start the caller chooses (boot, say): build it from a hardware timer with
//! `Instant::from_micros`. The core uses only what both offer: adding and subtracting a
//! [`Duration`], the difference of two instants, and comparison.

pub use core::time::Duration;

#[cfg(feature = "std")]
pub use std::time::Instant;

#[cfg(not(feature = "std"))]
pub use self::micros::Instant;

#[cfg(not(feature = "std"))]
mod micros {
    use core::ops::{Add, AddAssign, Sub, SubAssign};
    use core::time::Duration;

    /// A point on the caller's monotonic clock: microseconds since a start of its choosing.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct Instant(u64);

    impl Instant {
        /// The instant `micros` microseconds after the clock's start.
        pub const fn from_micros(micros: u64) -> Self {
            Instant(micros)
        }

        /// Microseconds since the clock's start.
        pub const fn as_micros(self) -> u64 {
            self.0
        }

        /// Time from `earlier` to `self`, zero if `earlier` is later.
        pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
            Duration::from_micros(self.0.saturating_sub(earlier.0))
        }

        /// Time from `earlier` to `self` (zero if `earlier` is later, as std's does today).
        pub fn duration_since(self, earlier: Instant) -> Duration {
            self.saturating_duration_since(earlier)
        }

        /// `self + by`, or `None` past the clock's range.
        pub fn checked_add(self, by: Duration) -> Option<Instant> {
            u64::try_from(by.as_micros()).ok().and_then(|by| self.0.checked_add(by)).map(Instant)
        }

        /// `self - by`, or `None` before the clock's start.
        pub fn checked_sub(self, by: Duration) -> Option<Instant> {
            u64::try_from(by.as_micros()).ok().and_then(|by| self.0.checked_sub(by)).map(Instant)
        }
    }

    impl Add<Duration> for Instant {
        type Output = Instant;
        /// Saturates at the end of the clock's range (584 000 years of microseconds).
        fn add(self, by: Duration) -> Instant {
            self.checked_add(by).unwrap_or(Instant(u64::MAX))
        }
    }

    impl AddAssign<Duration> for Instant {
        fn add_assign(&mut self, by: Duration) {
            *self = *self + by;
        }
    }

    impl Sub<Duration> for Instant {
        type Output = Instant;
        /// Saturates at the clock's start.
        fn sub(self, by: Duration) -> Instant {
            self.checked_sub(by).unwrap_or(Instant(0))
        }
    }

    impl SubAssign<Duration> for Instant {
        fn sub_assign(&mut self, by: Duration) {
            *self = *self - by;
        }
    }

    impl Sub<Instant> for Instant {
        type Output = Duration;
        fn sub(self, earlier: Instant) -> Duration {
            self.saturating_duration_since(earlier)
        }
    }
}
