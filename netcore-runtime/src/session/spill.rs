//! The storage budget for large incoming messages (docs/PROTOCOL.md §8.4).
//!
//! Each message above `inline_limit` is written to a spill file as it arrives: one descriptor and
//! up to its announced total on disk. A [`SpillBudget`] bounds both over every session that shares
//! it. A HEAD that would go beyond it is refused with CANCEL STORAGE_FULL before a file exists.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// The bytes counter: 64 bits where the target has 64-bit atomics, else a pointer-sized count
/// (a board's budget is far below 4 GiB; a reservation beyond the counter's range is refused).
#[cfg(target_has_atomic = "64")]
type ByteCount = core::sync::atomic::AtomicU64;
#[cfg(not(target_has_atomic = "64"))]
type ByteCount = core::sync::atomic::AtomicUsize;

/// Default most spill files at once: far below the descriptors an endpoint keeps for connections
/// (`EndpointBuilder::max_connections`, 512, of a default 1024), so spill files are never the
/// reason `accept()` fails.
pub const DEFAULT_SPILL_FILES: u32 = 64;
/// Default most bytes claimed by spill files at once: 1 GiB, what a laptop's temporary directory
/// survives, and one message of the default `max_message`.
pub const DEFAULT_SPILL_BYTES: u64 = 1 << 30;

/// Spill files and bytes that partly received messages may hold, shared by every session whose
/// [`Config`](super::Config) was cloned from the same one (an endpoint's connections all draw from
/// its budget). A message reserves its whole announced total at its HEAD, so the bytes on disk
/// never exceed the budget whatever the peer claims; the reservation ends when the message
/// completes (its file is then the application's), is cancelled, or the session closes.
#[derive(Clone)]
pub struct SpillBudget {
    inner: Arc<Inner>,
}

struct Inner {
    max_files: u32,
    max_bytes: u64,
    /// Files reserved now. Reserved first and given back if the bytes do not fit, so that
    /// neither count ever exceeds its maximum (no lock: this also builds without std).
    files: AtomicU32,
    /// Bytes reserved now.
    bytes: ByteCount,
}

impl SpillBudget {
    /// A budget of at most `max_files` spill files holding at most `max_bytes` together.
    pub fn new(max_files: u32, max_bytes: u64) -> Self {
        Self { inner: Arc::new(Inner { max_files, max_bytes, files: AtomicU32::new(0), bytes: ByteCount::new(0) }) }
    }

    /// Most spill files at once.
    pub fn max_files(&self) -> u32 {
        self.inner.max_files
    }

    /// Most bytes reserved by spill files at once.
    pub fn max_bytes(&self) -> u64 {
        self.inner.max_bytes
    }

    /// Spill files and bytes reserved now.
    #[allow(clippy::unnecessary_cast)] // the counter is `u64` or `usize` by target
    pub fn in_use(&self) -> (u32, u64) {
        (self.inner.files.load(Ordering::Acquire), self.inner.bytes.load(Ordering::Acquire) as u64)
    }

    /// Reserves one file of `bytes`, or `None` if that would exceed the budget.
    #[allow(clippy::useless_conversion)] // the counter is `u64` or `usize` by target
    pub(super) fn reserve(&self, bytes: u64) -> Option<SpillTicket> {
        let inner = &self.inner;
        let max_files = inner.max_files;
        inner.files.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_files).then_some(n + 1)).ok()?;
        let fits = |n| {
            let total = u64::try_from(n).ok()?.checked_add(bytes).filter(|total| *total <= inner.max_bytes)?;
            total.try_into().ok()
        };
        if inner.bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits).is_err() {
            inner.files.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SpillTicket { budget: self.clone(), bytes })
    }
}

impl Default for SpillBudget {
    fn default() -> Self {
        Self::new(DEFAULT_SPILL_FILES, DEFAULT_SPILL_BYTES)
    }
}

impl fmt::Debug for SpillBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (files, bytes) = self.in_use();
        f.debug_struct("SpillBudget")
            .field("max_files", &self.inner.max_files)
            .field("max_bytes", &self.inner.max_bytes)
            .field("files", &files)
            .field("bytes", &bytes)
            .finish()
    }
}

/// `64 files, 1 GiB`: the budget as an error message names it.
impl fmt::Display for SpillBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} files, {}", self.inner.max_files, Size(self.inner.max_bytes))
    }
}

/// A byte count as people read it: `1 GiB`, `16 MiB`, `300 bytes`.
pub(crate) struct Size(pub(crate) u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if n >= 1 << shift && n % (1 << shift) == 0 {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        write!(f, "{n} bytes")
    }
}

/// One spill file's share of a [`SpillBudget`], given back when dropped.
pub(super) struct SpillTicket {
    budget: SpillBudget,
    bytes: u64,
}

impl Drop for SpillTicket {
    fn drop(&mut self) {
        // Reserved through `fits`, so it is in the counter's range.
        self.budget.inner.bytes.fetch_sub(self.bytes as _, Ordering::AcqRel);
        self.budget.inner.files.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_budget_and_come_back() {
        let budget = SpillBudget::new(2, 100);
        let a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none(), "bytes");
        let b = budget.reserve(40).unwrap();
        assert!(budget.reserve(0).is_none(), "files");
        assert_eq!(budget.in_use(), (2, 100));
        drop(a);
        assert_eq!(budget.clone().in_use(), (1, 40), "clones share the budget");
        drop(b);
        assert_eq!(budget.in_use(), (0, 0));
        assert_eq!(SpillBudget::default().to_string(), "64 files, 1 GiB");
        assert_eq!(Size(300).to_string(), "300 bytes");
        assert_eq!(Size(16 << 20).to_string(), "16 MiB");
    }
}
