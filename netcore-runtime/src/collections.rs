//! The maps the core keeps: std's hash maps with the `std` feature, B-trees from `alloc`
//! without it (no hasher to seed on a board; every map here is bounded by a limit such as
//! `max_in_flight`, so a logarithmic lookup costs little).

#[cfg(feature = "std")]
pub(crate) use std::collections::{HashMap, HashSet};

#[cfg(not(feature = "std"))]
pub(crate) type HashMap<K, V> = alloc::collections::BTreeMap<K, V>;
#[cfg(not(feature = "std"))]
pub(crate) type HashSet<T> = alloc::collections::BTreeSet<T>;
