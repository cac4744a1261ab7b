//! The wire of Python Netcore 0.1.3 (PyPI `netcore`, its `LsoProtocol` and `Pipe`), sans-IO:
//! bytes in, bytes and events out; no clock, no socket, no task (STYLE §1). docs/COMPAT.md
//! describes the wire byte for byte; this module is its only implementation in netcore.
//!
//! ```text
//!   Peer::send(info, payload) ─▶ heads queue (mission, cancel) ─┐
//!                                missions, one 4096-byte chunk ─┴▶ poll_transmit: one whole frame
//!   poll_event ◀── reassembly per extension ◀── Decoder ◀── handle_input ◀── bytes from the link
//!                  (early data kept, length 0 complete at once)
//! ```
//!
//! The endpoint runs it as a connection kind of its own: [`Endpoint::connect_py`] and
//! [`Endpoint::serve_tcp_py`] (docs/COMPAT.md §4). The module needs `serde_json`, so it builds
//! with the `tokio` feature.
//!
//! [`Endpoint::connect_py`]: crate::Endpoint::connect_py
//! [`Endpoint::serve_tcp_py`]: crate::Endpoint::serve_tcp_py

mod json;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::Value;

pub use json::{to_python_json, Info};

/// Bytes of a data chunk: Python's own (`create_mission(buff=4096)`), and the largest payload its
/// reader takes whole whatever its length (COMPAT.md §2.3).
pub const CHUNK: usize = 4096;
/// Python reads payloads in steps of this many bytes; a payload longer than [`CHUNK`] is read
/// right only if it is a multiple of this (COMPAT.md §2.3).
pub const READ_STEP: usize = 2048;
/// Characters of a mission extension, as Python draws them (`Utils.safe_code(6)`).
pub const EXTENSION_LEN: usize = 6;
/// Characters of a message id, as Python draws them (`Utils.safe_code(8)`).
pub const MESSAGE_ID_LEN: usize = 8;

/// What a [`Peer`] accepts from the other side. Python announces every length and checks none:
/// these bounds are ours (docs/COMPAT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest `ext` (frame header JSON); Python writes at most 41 bytes.
    pub max_ext: usize,
    /// Largest `meta` of one frame; Python writes at most 4096-byte chunks and small heads.
    pub max_frame: usize,
    /// Largest message (the mission's `length`).
    pub max_message: u64,
    /// Missions being received at once.
    pub max_missions: usize,
    /// Bytes of data frames kept for extensions whose head has not arrived yet (Python defect D4).
    pub max_early: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_ext: 4096, max_frame: 1 << 20, max_message: 64 << 20, max_missions: 1024, max_early: 1 << 20 }
    }
}

/// The stream cannot be read on: a length no Python peer writes. Malformed JSON inside a frame
/// is not an error of this kind (the frame is skipped, [`Event::Dropped`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A length field is negative (Python packs signed `i32`s and checks nothing).
    #[error("negative {field} length {value}")]
    Negative {
        /// `ext` or `meta`.
        field: &'static str,
        /// The value read.
        value: i32,
    },
    /// A length field exceeds its [`Limits`] bound.
    #[error("{field} of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// `ext` or `meta`.
        field: &'static str,
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// One frame: `i32le ext_len | ext | i32le meta_len | meta` (COMPAT.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The frame header, UTF-8 JSON text.
    pub ext: Bytes,
    /// The payload.
    pub meta: Bytes,
}

impl RawFrame {
    /// Bytes on the wire.
    pub fn encoded_len(&self) -> usize {
        8 + self.ext.len() + self.meta.len()
    }

    /// Appends the frame to `out`, in one piece (COMPAT.md §3: whole frames in one write).
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_i32_le(self.ext.len() as i32);
        out.put_slice(&self.ext);
        out.put_i32_le(self.meta.len() as i32);
        out.put_slice(&self.meta);
    }

    /// The frame as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.freeze()
    }

    /// Takes one whole frame from the front of `buf`: `Ok(None)` until it is all there. Lengths
    /// are checked against `limits` before anything is buffered (STYLE §2).
    pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RawFrame>, WireError> {
        let Some(ext_len) = read_len(buf, 0, "ext", limits.max_ext)? else { return Ok(None) };
        let Some(meta_len) = read_len(buf, 4 + ext_len, "meta", limits.max_frame)? else { return Ok(None) };
        if buf.len() < 8 + ext_len + meta_len {
            return Ok(None);
        }
        buf.advance(4);
        let ext = buf.split_to(ext_len).freeze();
        buf.advance(4);
        let meta = buf.split_to(meta_len).freeze();
        Ok(Some(RawFrame { ext, meta }))
    }
}

fn read_len(buf: &[u8], at: usize, field: &'static str, max: usize) -> Result<Option<usize>, WireError> {
    let Some(raw) = buf.get(at..at + 4) else { return Ok(None) };
    let value = i32::from_le_bytes(raw.try_into().expect("4 bytes"));
    let len = usize::try_from(value).map_err(|_| WireError::Negative { field, value })?;
    if len > max {
        return Err(WireError::TooLong { field, len, max });
    }
    Ok(Some(len))
}

/// `ext` of a mission head, as Python writes it.
pub const MISSION_EXT: &str = r#"{"type": "mission"}"#;

/// The `ext` of a data frame of mission `extension`.
pub fn data_ext(extension: &str) -> String {
    format!(r#"{{"type": "data", "extension": {}}}"#, to_python_json(&Value::from(extension)))
}

/// The mission head frame announcing `length` bytes under `extension`, with `info` (a JSON
/// object, Python-formatted). A head longer than [`CHUNK`] is padded with spaces to a multiple
/// of [`READ_STEP`], the only lengths Python reads whole (COMPAT.md §2.3).
pub fn mission_frame(extension: &str, length: u64, info: &Info) -> RawFrame {
    let ext = to_python_json(&Value::from(extension));
    let mut meta = format!(r#"{{"extension": {ext}, "length": {length}, "info": {}}}"#, info.to_python_json());
    if meta.len() > CHUNK {
        let padded = meta.len().div_ceil(READ_STEP) * READ_STEP;
        meta.extend(std::iter::repeat_n(' ', padded - meta.len()));
    }
    RawFrame { ext: Bytes::from_static(MISSION_EXT.as_bytes()), meta: meta.into() }
}

/// A data frame carrying `chunk` of mission `extension`.
pub fn data_frame(extension: &str, chunk: Bytes) -> RawFrame {
    RawFrame { ext: data_ext(extension).into(), meta: chunk }
}

/// The cancel frame of mission `extension`.
pub fn cancel_frame(extension: &str) -> RawFrame {
    let e = to_python_json(&Value::from(extension));
    RawFrame {
        ext: format!(r#"{{"type": "cancel", "extension": {e}}}"#).into(),
        meta: format!(r#"{{"extension": {e}}}"#).into(),
    }
}

/// A frame as the reader understood it.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A mission head.
    Mission {
        /// The mission's extension.
        extension: String,
        /// Its payload's total length.
        length: u64,
        /// The info dictionary (a JSON object).
        info: Info,
    },
    /// A data chunk.
    Data {
        /// The mission's extension.
        extension: String,
        /// The chunk.
        chunk: Bytes,
    },
    /// A cancel.
    Cancel {
        /// The mission's extension.
        extension: String,
    },
}

impl RawFrame {
    /// What the frame says, or why it means nothing (Python would stop its endpoint, D13).
    /// Like Python, any `type` other than `mission` and `cancel` is data.
    pub fn parse(&self) -> Result<Parsed, &'static str> {
        let ext: Value = serde_json::from_slice(&self.ext).map_err(|_| "ext is not JSON")?;
        let kind = ext.get("type").and_then(Value::as_str).ok_or("ext has no \"type\"")?;
        let extension_of = |v: &Value| v.get("extension").and_then(Value::as_str).map(str::to_owned);
        match kind {
            "mission" => {
                let Head { extension, length, info } =
                    serde_json::from_slice(&self.meta).map_err(|_| "mission head lacks extension, length or info")?;
                Ok(Parsed::Mission { extension, length, info })
            }
            "cancel" => Ok(Parsed::Cancel { extension: extension_of(&ext).ok_or("cancel has no \"extension\"")? }),
            _ => Ok(Parsed::Data {
                extension: extension_of(&ext).ok_or("data frame has no \"extension\"")?,
                chunk: self.meta.clone(),
            }),
        }
    }
}

/// A mission head's meta: all three keys required, any order, others ignored.
#[derive(serde::Deserialize)]
struct Head {
    extension: String,
    length: u64,
    info: Info,
}

/// What a [`Peer`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A complete message.
    Message {
        /// Its mission's extension.
        extension: String,
        /// The info dictionary of its head.
        info: Info,
        /// The payload.
        payload: Bytes,
    },
    /// The peer cancelled a mission it had announced.
    Cancelled {
        /// The mission's extension.
        extension: String,
    },
    /// The last frame of one of our missions left in [`Peer::poll_transmit`].
    Sent {
        /// The mission's extension.
        extension: String,
    },
    /// Something received was thrown away, and why (never fatal: the framing is intact).
    Dropped {
        /// The mission concerned, if known.
        extension: Option<String>,
        /// Why.
        reason: String,
    },
}

struct Assembly {
    length: u64,
    data: BytesMut,
    info: Info,
}

struct Outgoing {
    extension: String,
    rest: Bytes,
}

/// One side of a Python Netcore link, sans-IO: missions out, missions in.
pub struct Peer {
    limits: Limits,
    input: BytesMut,
    incoming: HashMap<String, Assembly>,
    /// Data that came before its head (D4), by extension, in order.
    early: HashMap<String, Vec<Bytes>>,
    early_bytes: usize,
    /// Heads and cancels, sent before any data (unlike Python, also while no data waits: D5).
    heads: VecDeque<RawFrame>,
    /// Missions with data left; the front sends one chunk and goes to the back (round robin).
    /// Invariant: a mission is in here iff it has unsent bytes.
    missions: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    ids: Ids,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("incoming", &self.incoming.len())
            .field("missions", &self.missions.len())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer drawing its ids from `seed` (give each link a random one).
    pub fn new(limits: Limits, seed: u64) -> Self {
        Self {
            limits,
            input: BytesMut::new(),
            incoming: HashMap::new(),
            early: HashMap::new(),
            early_bytes: 0,
            heads: VecDeque::new(),
            missions: VecDeque::new(),
            events: VecDeque::new(),
            ids: Ids(seed),
        }
    }

    /// A fresh message id: 8 characters of `[A-Za-z0-9]`, like Python's.
    pub fn message_id(&mut self) -> String {
        self.ids.draw(MESSAGE_ID_LEN)
    }

    /// Queues a message: its head, then its payload in [`CHUNK`]-byte data frames. Returns its
    /// extension, unique among our missions in flight. An empty payload is a head alone, which
    /// Python never delivers (D7): the caller decides whether to send one.
    pub fn send(&mut self, info: &Info, payload: Bytes) -> String {
        let extension = loop {
            let candidate = self.ids.draw(EXTENSION_LEN);
            if !self.missions.iter().any(|m| m.extension == candidate) {
                break candidate;
            }
        };
        self.heads.push_back(mission_frame(&extension, payload.len() as u64, info));
        if payload.is_empty() {
            self.events.push_back(Event::Sent { extension: extension.clone() });
        } else {
            self.missions.push_back(Outgoing { extension: extension.clone(), rest: payload });
        }
        extension
    }

    /// Stops sending mission `extension` and tells the peer, if any of it is still unsent.
    /// Whether it was.
    pub fn cancel(&mut self, extension: &str) -> bool {
        let before = self.missions.len();
        self.missions.retain(|m| m.extension != extension);
        let cancelled = self.missions.len() != before;
        if cancelled {
            self.heads.push_back(cancel_frame(extension));
        }
        cancelled
    }

    /// Whether frames wait in [`poll_transmit`](Self::poll_transmit).
    pub fn has_output(&self) -> bool {
        !self.heads.is_empty() || !self.missions.is_empty()
    }

    /// The next whole frame to write: heads and cancels first, then one chunk of the mission at
    /// the front, which goes to the back.
    pub fn poll_transmit(&mut self) -> Option<RawFrame> {
        if let Some(head) = self.heads.pop_front() {
            return Some(head);
        }
        let mut mission = self.missions.pop_front()?;
        let chunk = mission.rest.split_to(mission.rest.len().min(CHUNK));
        let frame = data_frame(&mission.extension, chunk);
        if mission.rest.is_empty() {
            self.events.push_back(Event::Sent { extension: mission.extension });
        } else {
            self.missions.push_back(mission);
        }
        Some(frame)
    }

    /// Where to read into; then call [`handle_buffered`](Self::handle_buffered).
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Takes the bytes appended to [`input_buffer`](Self::input_buffer).
    pub fn handle_buffered(&mut self) -> Result<(), WireError> {
        while let Some(frame) = RawFrame::decode(&mut self.input, &self.limits)? {
            self.handle_frame(frame);
        }
        Ok(())
    }

    /// Takes bytes from the link, in any split.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.input.extend_from_slice(bytes);
        self.handle_buffered()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn drop_with(&mut self, extension: Option<String>, reason: impl Into<String>) {
        self.events.push_back(Event::Dropped { extension, reason: reason.into() });
    }

    fn handle_frame(&mut self, frame: RawFrame) {
        match frame.parse() {
            Err(reason) => self.drop_with(None, reason),
            Ok(Parsed::Mission { extension, length, info }) => self.start_mission(extension, length, info),
            Ok(Parsed::Data { extension, chunk }) => self.add_data(extension, chunk),
            Ok(Parsed::Cancel { extension }) => {
                let early = self.early.remove(&extension).map_or(0, |e| e.iter().map(Bytes::len).sum());
                self.early_bytes -= early;
                if self.incoming.remove(&extension).is_some() {
                    self.events.push_back(Event::Cancelled { extension });
                }
                // A cancel for an unknown or finished mission: nothing to do.
            }
        }
    }

    fn start_mission(&mut self, extension: String, length: u64, info: Info) {
        if length > self.limits.max_message {
            let max = self.limits.max_message;
            return self.drop_with(Some(extension), format!("message of {length} bytes exceeds {max}"));
        }
        if self.incoming.len() >= self.limits.max_missions && !self.incoming.contains_key(&extension) {
            return self.drop_with(Some(extension), "too many missions in progress");
        }
        // Reserve what is announced only up to one chunk: the rest grows as it arrives.
        let data = BytesMut::with_capacity((length as usize).min(CHUNK));
        self.incoming.insert(extension.clone(), Assembly { length, data, info });
        let early = self.early.remove(&extension).unwrap_or_default();
        self.early_bytes -= early.iter().map(Bytes::len).sum::<usize>();
        for chunk in early {
            self.add_data(extension.clone(), chunk);
        }
        // A head announcing 0 bytes is complete at once (Python never completes it, D7).
        self.complete_if_done(&extension);
    }

    fn add_data(&mut self, extension: String, chunk: Bytes) {
        let Some(assembly) = self.incoming.get_mut(&extension) else {
            // D4: data may come before its head; keep a bounded amount for it.
            if self.early_bytes + chunk.len() > self.limits.max_early {
                return self.drop_with(Some(extension), "data for an unknown mission");
            }
            self.early_bytes += chunk.len();
            self.early.entry(extension).or_default().push(chunk);
            return;
        };
        if assembly.data.len() as u64 + chunk.len() as u64 > assembly.length {
            self.incoming.remove(&extension);
            return self.drop_with(Some(extension), "more data than the mission announced");
        }
        assembly.data.extend_from_slice(&chunk);
        self.complete_if_done(&extension);
    }

    fn complete_if_done(&mut self, extension: &str) {
        let done = self.incoming.get(extension).is_some_and(|a| a.data.len() as u64 == a.length);
        if done {
            let assembly = self.incoming.remove(extension).expect("present");
            self.events.push_back(Event::Message {
                extension: extension.to_owned(),
                info: assembly.info,
                payload: assembly.data.freeze(),
            });
        }
    }
}

/// Ids from a counter mixed with a seed (splitmix64), in Python's alphabet. Not for secrets:
/// Python's are not either (`random.choices`).
struct Ids(u64);

impl Ids {
    fn draw(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (0..len)
            .map(|_| {
                let c = ALPHABET[(z % 62) as usize] as char;
                z /= 62;
                c
            })
            .collect()
    }
}
