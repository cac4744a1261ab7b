//! Fault injection: damage a byte stream the way serial lines, pulled cables and buggy peers do,
//! deterministically from a seed.
//!
//! - [`FaultPlan`] says what goes wrong: per-byte rates of bit flips, drops, insertions and
//!   duplicates, and (for [`FaultyIo`]) how reads are split, delayed or stalled and when the stream
//!   is truncated, half-closed or reset.
//! - [`Mangler`] applies a plan's byte faults to buffers, for the sans-IO [`sim::Pair`]
//!   (see [`FaultPlan::link_filter`]) or any other use; [`mangle`] and [`single_fault`] are one-shot
//!   forms.
//! - `FaultyIo` (with the `tokio` feature) wraps any `AsyncRead + AsyncWrite` and applies a plan to
//!   what is read through it; a [`Cable`] pulls and replugs it at will.
//!
//! The faults are a pure function of the seed and the bytes: the same seed on the same traffic
//! damages the same bytes, however the reads happen to be cut. Every test that loops over seeds
//! should hold a [`SeedGuard`], which prints the seed of a failing case; [`seeds`] honours
//! `NETCORE_FAULT_SEED` to rerun just that one.
//!
//! ```
//! # use netcore_runtime as netcore;
//! use netcore::faults::FaultPlan;
//! use netcore::session::Config;
//! use netcore::sim::Pair;
//!
//! let mut pair = Pair::new(Config::lossy(), Config::lossy());
//! // 1 % of bytes lost, 0.1 % of bits flipped, 0.1 % of bytes duplicated, from seed 7.
//! pair.a_to_b.filter = Some(FaultPlan::serial_noise(7).link_filter());
//! pair.run();
//! ```
//!
//! [`sim::Pair`]: crate::sim::Pair

#[cfg(feature = "tokio")]
mod io;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use io::{Cable, FaultyIo};

use std::time::Duration;

/// Environment variable that makes [`seeds`] yield only the seed it names.
pub const SEED_VAR: &str = "NETCORE_FAULT_SEED";

/// What goes wrong on a faulty link. Built from a seed with no faults; add them with the `with_*`
/// methods. Rates are probabilities from 0 to 1.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FaultPlan {
    /// Seed of every random choice.
    pub seed: u64,
    /// Probability that a bit is inverted.
    pub flip_bit: f64,
    /// Probability that a byte is lost.
    pub drop_byte: f64,
    /// Probability that a random byte is inserted after a byte.
    pub insert_byte: f64,
    /// Probability that a byte is delivered twice.
    pub duplicate_byte: f64,
    /// Largest piece a read returns (a random size from 1 to this); 0 leaves reads whole.
    pub split_reads: usize,
    /// Probability that a read returns `Pending` first (the task is woken at once).
    pub pending: f64,
    /// Probability and length of a pause before a read.
    pub delay: Option<(f64, Duration)>,
    /// After this many bytes read, the link goes silent: reads wait forever, writes vanish.
    pub stall_after: Option<u64>,
    /// After this many bytes read, reads end (EOF) while writes go on.
    pub truncate_after: Option<u64>,
    /// After this many bytes written, the write side is shut down (the peer reads EOF).
    pub half_close_after: Option<u64>,
    /// After this many bytes read and written together, every operation fails with
    /// `ConnectionReset`.
    pub reset_after: Option<u64>,
}

impl FaultPlan {
    /// A plan that does nothing yet.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            flip_bit: 0.0,
            drop_byte: 0.0,
            insert_byte: 0.0,
            duplicate_byte: 0.0,
            split_reads: 0,
            pending: 0.0,
            delay: None,
            stall_after: None,
            truncate_after: None,
            half_close_after: None,
            reset_after: None,
        }
    }

    /// A noisy serial line: 1 % of bytes lost, 0.1 % of bits flipped, 0.1 % of bytes duplicated.
    pub fn serial_noise(seed: u64) -> Self {
        Self::new(seed).with_drop_bytes(0.01).with_flip_bits(0.001).with_duplicate_bytes(0.001)
    }

    /// The same plan from another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Inverts each bit with probability `p`.
    pub fn with_flip_bits(mut self, p: f64) -> Self {
        self.flip_bit = p;
        self
    }

    /// Loses each byte with probability `p`.
    pub fn with_drop_bytes(mut self, p: f64) -> Self {
        self.drop_byte = p;
        self
    }

    /// Inserts a random byte after each byte with probability `p`.
    pub fn with_insert_bytes(mut self, p: f64) -> Self {
        self.insert_byte = p;
        self
    }

    /// Delivers each byte twice with probability `p`.
    pub fn with_duplicate_bytes(mut self, p: f64) -> Self {
        self.duplicate_byte = p;
        self
    }

    /// Cuts reads into random pieces of 1 to `max` bytes.
    pub fn with_split_reads(mut self, max: usize) -> Self {
        self.split_reads = max;
        self
    }

    /// Makes a read return `Pending` first with probability `p`.
    pub fn with_pending(mut self, p: f64) -> Self {
        self.pending = p;
        self
    }

    /// Pauses for `pause` before a read with probability `p`.
    pub fn with_delay(mut self, p: f64, pause: Duration) -> Self {
        self.delay = Some((p, pause));
        self
    }

    /// Goes silent after `n` bytes read: a cable pulled, no EOF.
    pub fn with_stall_after(mut self, n: u64) -> Self {
        self.stall_after = Some(n);
        self
    }

    /// Ends reads after `n` bytes.
    pub fn with_truncate_after(mut self, n: u64) -> Self {
        self.truncate_after = Some(n);
        self
    }

    /// Shuts the write side down after `n` bytes written.
    pub fn with_half_close_after(mut self, n: u64) -> Self {
        self.half_close_after = Some(n);
        self
    }

    /// Fails everything with `ConnectionReset` after `n` bytes read and written.
    pub fn with_reset_after(mut self, n: u64) -> Self {
        self.reset_after = Some(n);
        self
    }

    /// A mangler applying this plan's byte faults.
    pub fn mangler(&self) -> Mangler {
        Mangler::new(self)
    }

    /// A filter for a [`sim::Link`](crate::sim::Link) applying this plan's byte faults to every
    /// transmission on it.
    pub fn link_filter(&self) -> crate::sim::LinkFilter {
        let mut mangler = self.mangler();
        Box::new(move |bytes: &mut Vec<u8>| mangler.mangle(bytes))
    }
}

/// Faults applied so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultCounts {
    /// Bytes seen.
    pub bytes: u64,
    /// Bits inverted.
    pub flipped_bits: u64,
    /// Bytes lost.
    pub dropped: u64,
    /// Bytes inserted.
    pub inserted: u64,
    /// Bytes delivered twice.
    pub duplicated: u64,
}

impl FaultCounts {
    /// Bytes that suffered at least one fault (a byte with two flipped bits counts twice).
    pub fn total(&self) -> u64 {
        self.flipped_bits + self.dropped + self.inserted + self.duplicated
    }
}

/// A small, fast, seedable generator (SplitMix64): good enough to spread faults, and the same on
/// every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value from 0 to `n - 1` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < p
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// Applies a plan's byte faults to a stream of buffers. The damage depends only on the seed and
/// the sequence of bytes, not on how they are cut into buffers.
#[derive(Debug, Clone)]
pub struct Mangler {
    rng: Rng,
    flip_bit: f64,
    drop_byte: f64,
    insert_byte: f64,
    duplicate_byte: f64,
    counts: FaultCounts,
}

impl Mangler {
    /// A mangler for `plan`'s byte faults.
    pub fn new(plan: &FaultPlan) -> Self {
        Self {
            rng: Rng::new(plan.seed),
            flip_bit: plan.flip_bit,
            drop_byte: plan.drop_byte,
            insert_byte: plan.insert_byte,
            duplicate_byte: plan.duplicate_byte,
            counts: FaultCounts::default(),
        }
    }

    /// Whether this mangler never changes anything.
    pub fn is_clean(&self) -> bool {
        self.flip_bit <= 0.0 && self.drop_byte <= 0.0 && self.insert_byte <= 0.0 && self.duplicate_byte <= 0.0
    }

    /// Damages `bytes` in place.
    pub fn mangle(&mut self, bytes: &mut Vec<u8>) {
        if self.is_clean() {
            self.counts.bytes += bytes.len() as u64;
            return;
        }
        let input = std::mem::take(bytes);
        bytes.reserve(input.len() + input.len() / 16);
        self.mangle_into(&input, bytes);
    }

    /// Appends a damaged copy of `input` to `out`.
    pub fn mangle_into(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.counts.bytes += input.len() as u64;
        if self.is_clean() {
            out.extend_from_slice(input);
            return;
        }
        for &byte in input {
            if self.rng.chance(self.drop_byte) {
                self.counts.dropped += 1;
                continue;
            }
            let mut byte = byte;
            if self.flip_bit > 0.0 {
                for bit in 0..8 {
                    if self.rng.chance(self.flip_bit) {
                        byte ^= 1 << bit;
                        self.counts.flipped_bits += 1;
                    }
                }
            }
            out.push(byte);
            if self.rng.chance(self.duplicate_byte) {
                out.push(byte);
                self.counts.duplicated += 1;
            }
            if self.rng.chance(self.insert_byte) {
                out.push(self.rng.byte());
                self.counts.inserted += 1;
            }
        }
    }

    /// Faults applied so far.
    pub fn counts(&self) -> FaultCounts {
        self.counts
    }
}

/// Damages `bytes` like a noisy serial line ([`FaultPlan::serial_noise`]) from `seed`.
pub fn mangle(seed: u64, bytes: &mut Vec<u8>) -> FaultCounts {
    let mut mangler = FaultPlan::serial_noise(seed).mangler();
    mangler.mangle(bytes);
    mangler.counts()
}

/// One fault injected by [`single_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bit `bit` of the byte at `at` was inverted.
    Flip {
        /// Byte position.
        at: usize,
        /// Bit number, 0 to 7.
        bit: u8,
    },
    /// The byte at `at` was removed.
    Delete {
        /// Byte position.
        at: usize,
    },
    /// `byte` was inserted before position `at`.
    Insert {
        /// Byte position.
        at: usize,
        /// The new byte.
        byte: u8,
    },
    /// The byte at `at` was repeated.
    Duplicate {
        /// Byte position.
        at: usize,
    },
}

/// Injects exactly one fault, chosen from `seed`, into a non-empty buffer: a bit flip, a deleted,
/// an inserted or a duplicated byte, at a random position.
pub fn single_fault(seed: u64, bytes: &mut Vec<u8>) -> Fault {
    assert!(!bytes.is_empty(), "single_fault needs a byte to damage");
    let mut rng = Rng::new(seed);
    let len = bytes.len() as u64;
    match rng.below(4) {
        0 => {
            let (at, bit) = (rng.below(len) as usize, rng.below(8) as u8);
            bytes[at] ^= 1 << bit;
            Fault::Flip { at, bit }
        }
        1 => {
            let at = rng.below(len) as usize;
            bytes.remove(at);
            Fault::Delete { at }
        }
        2 => {
            let (at, byte) = (rng.below(len + 1) as usize, rng.byte());
            bytes.insert(at, byte);
            Fault::Insert { at, byte }
        }
        _ => {
            let at = rng.below(len) as usize;
            bytes.insert(at, bytes[at]);
            Fault::Duplicate { at }
        }
    }
}

/// Seeds `0..count`, or only the one in `NETCORE_FAULT_SEED` when it is set.
pub fn seeds(count: u64) -> impl Iterator<Item = u64> {
    let only = std::env::var(SEED_VAR).ok().and_then(|s| s.trim().parse::<u64>().ok());
    match only {
        Some(seed) => seed..seed + 1,
        None => 0..count,
    }
}

/// Prints its seed if the thread panics while it is alive, so that a failing randomized case can
/// be rerun alone (with `NETCORE_FAULT_SEED`).
#[derive(Debug)]
pub struct SeedGuard {
    what: &'static str,
    seed: u64,
}

impl SeedGuard {
    /// Guards the case `what` run with `seed`.
    pub fn new(what: &'static str, seed: u64) -> Self {
        Self { what, seed }
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{} failed with fault seed {}: rerun with {SEED_VAR}={}", self.what, self.seed, self.seed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_damages_the_same_bytes_however_they_are_cut() {
        let input: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let plan = FaultPlan::serial_noise(42).with_insert_bytes(0.001);
        let mut whole = input.clone();
        plan.mangler().mangle(&mut whole);
        let mut mangler = plan.mangler();
        let mut pieces = Vec::new();
        for piece in input.chunks(37) {
            mangler.mangle_into(piece, &mut pieces);
        }
        assert_eq!(whole, pieces);
        assert_ne!(whole, input);
        let counts = mangler.counts();
        assert_eq!(counts.bytes, 10_000);
        // 1 % of 10 000 bytes, give or take.
        assert!((50..200).contains(&counts.dropped), "{counts:?}");
        assert!((20..130).contains(&counts.flipped_bits), "{counts:?}");
        assert_eq!(whole.len() as u64, 10_000 - counts.dropped + counts.duplicated + counts.inserted);
    }

    #[test]
    fn a_clean_plan_changes_nothing() {
        let mut bytes = b"unchanged".to_vec();
        FaultPlan::new(1).mangler().mangle(&mut bytes);
        assert_eq!(bytes, b"unchanged");
    }

    #[test]
    fn single_faults_do_what_they_say() {
        for seed in 0..200 {
            let original: Vec<u8> = (0..50).collect();
            let mut bytes = original.clone();
            match single_fault(seed, &mut bytes) {
                Fault::Flip { at, bit } => {
                    assert_eq!(bytes.len(), 50);
                    assert_eq!(bytes[at], original[at] ^ (1 << bit));
                }
                Fault::Delete { at } => assert_eq!([&original[..at], &original[at + 1..]].concat(), bytes),
                Fault::Insert { at, byte } => {
                    assert_eq!([&original[..at], &[byte][..], &original[at..]].concat(), bytes)
                }
                Fault::Duplicate { at } => {
                    assert_eq!([&original[..=at], &original[at..]].concat(), bytes)
                }
            }
        }
    }

    #[test]
    fn below_and_chance_stay_in_range() {
        let mut rng = Rng::new(3);
        assert!((0..1000).all(|_| rng.below(7) < 7));
        assert!(!(0..1000).any(|_| rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
    }
}
