//! Resumable uploads and downloads (docs/PROTOCOL.md §17): an endpoint-layer convention on top of
//! ordinary requests, with no change to the frame or session layers. A download (§17.6) needs no
//! state on the serving side: the receiver knows its offset and asks for the next window from it.
//!
//! ```text
//!  sender                                   receiver (a resumable route)
//!  ──────                                   ────────────────────────────
//!  [resumed only] REQUEST /_netcore/resume ─▶ looks up the token
//!        nc-resume: <token>                 ◀─ RESPONSE nc-offset: K (bytes it holds), nc-total
//!  REQUEST <route>, payload = body[K..]     ─▶ appends to the partial file held under the token;
//!        nc-resume, nc-offset: K, nc-total    cut short, the file stays, K grows to what was written
//! ```
//!
//! The receiver's partial files live in a [`ResumeStore`] of the endpoint, not of a connection, so
//! they survive the link: a replug or a peer restart makes a new connection that finds them. The
//! I/O is here, in the endpoint layer: creating a file, appending each chunk as it is read from the
//! streamed payload, keeping the open file between attempts, and deleting it when the upload is
//! handed over, expires or is replaced.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tempfile::NamedTempFile;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{BodyStream, ErrorCode, HandlerError, Headers, Request, Response};
use crate::session::Payload;

/// The route a sender asks for the offset the receiver holds (§17.2).
pub const RESUME_QUERY_ROUTE: &str = "/_netcore/resume";
/// Header naming the upload's resume token (§17.1).
pub const HEADER_TOKEN: &str = "nc-resume";
/// Header giving the offset of the payload's first byte in the whole body (§17.1).
pub const HEADER_OFFSET: &str = "nc-offset";
/// Header giving the whole body's length (§17.1).
pub const HEADER_TOTAL: &str = "nc-total";
/// Header of a download request: the most bytes the answer may carry (§17.6).
pub const HEADER_LENGTH: &str = "nc-length";

/// The bytes [`Connection::download`](crate::Connection::download) asks for in one request
/// (§17.6): what a cut link can cost it, at most, and 64 KiB is 0.1 % of header overhead.
pub const DOWNLOAD_WINDOW: u64 = 64 * 1024;

/// How long a resumed upload waits for an earlier attempt under the same token, still running on
/// a connection that has not noticed its peer is gone, to let go of the partial file.
const SUPERSEDE_WAIT: Duration = Duration::from_secs(5);

/// Names one upload across attempts: 16 random bytes, written as 32 lowercase hex digits (§17.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResumeToken(pub [u8; 16]);

impl ResumeToken {
    /// A new token from the operating system's random source (through std's `RandomState`).
    pub fn random() -> Self {
        let (a, b) = (crate::connection::draw_nonce(), crate::connection::draw_nonce());
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        Self(bytes)
    }
}

impl fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A resume token that is not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resume token {0:?} is not 32 lowercase hex digits")]
pub struct BadResumeToken(pub String);

impl FromStr for ResumeToken {
    type Err = BadResumeToken;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadResumeToken(text.chars().take(40).collect());
        let digits = text.as_bytes();
        if digits.len() != 32 || !digits.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in digits.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            bytes[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

/// A §17.1 decimal: ASCII digits, no leading zero, at most 2^64−1.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty() && (text == "0" || !text.starts_with('0'));
    let digits = text.bytes().all(|c| c.is_ascii_digit());
    (canonical && digits).then(|| text.parse().ok()).flatten()
}

/// Bounds on the partial uploads an endpoint keeps for resumption (docs/PROTOCOL.md §17.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeLimits {
    /// Most uploads held at once, running or waiting to be resumed (default 8).
    pub max_partials: usize,
    /// Most bytes they may add up to, counted by each upload's announced total (default 4 GiB:
    /// four uploads of the default `max_message`).
    pub max_bytes: u64,
    /// How long a partial upload is kept after its last byte arrived (default 15 min).
    pub keep_for: Duration,
}

impl Default for ResumeLimits {
    fn default() -> Self {
        Self { max_partials: 8, max_bytes: 4 << 30, keep_for: Duration::from_secs(15 * 60) }
    }
}

impl ResumeLimits {
    /// Sets the most uploads held at once.
    pub fn with_max_partials(mut self, max: usize) -> Self {
        self.max_partials = max;
        self
    }

    /// Sets the most bytes the held uploads may add up to.
    pub fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets how long a partial upload is kept after its last byte.
    pub fn with_keep_for(mut self, keep_for: Duration) -> Self {
        self.keep_for = keep_for;
        self
    }
}

enum Entry {
    /// Waiting to be resumed: the file holds the first `held` bytes of a `total`-byte body.
    Idle { file: NamedTempFile, held: u64, total: u64, since: Instant },
    /// An attempt is appending to it; cancelling `stop` makes it let go.
    Busy { total: u64, stop: CancellationToken },
}

impl Entry {
    fn total(&self) -> u64 {
        match self {
            Entry::Idle { total, .. } | Entry::Busy { total, .. } => *total,
        }
    }
}

struct State {
    limits: ResumeLimits,
    entries: HashMap<ResumeToken, Entry>,
}

/// The partial uploads of one endpoint, by token; shared by all its connections.
pub(crate) struct ResumeStore {
    dir: Mutex<Option<PathBuf>>,
    state: Mutex<State>,
    /// Bumped whenever an attempt lets go of its entry, for those waiting to supersede it.
    released: watch::Sender<u64>,
}

impl Default for ResumeStore {
    fn default() -> Self {
        Self {
            dir: Mutex::new(None),
            state: Mutex::new(State { limits: ResumeLimits::default(), entries: HashMap::new() }),
            released: watch::channel(0).0,
        }
    }
}

/// What a lookup found: bytes held and the body's total, if anything is held.
type Held = Option<(u64, u64)>;

impl ResumeStore {
    pub(crate) fn set_limits(&self, limits: ResumeLimits) {
        self.lock().limits = limits;
    }

    pub(crate) fn set_dir(&self, dir: PathBuf) {
        *self.dir.lock().expect("never poisoned") = Some(dir);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("never poisoned: no panics under the lock")
    }

    /// Drops partial uploads idle for longer than `keep_for` (§17.4).
    fn prune(state: &mut State, now: Instant) {
        let keep_for = state.limits.keep_for;
        state.entries.retain(|_, entry| !matches!(entry, Entry::Idle { since, .. } if *since + keep_for <= now));
    }

    /// Waits until no attempt holds `token`, telling a running one to stop; what is then held.
    async fn settle(&self, token: ResumeToken) -> Result<Held, HandlerError> {
        let mut released = self.released.subscribe();
        let wait = async {
            loop {
                {
                    let mut state = self.lock();
                    Self::prune(&mut state, Instant::now());
                    match state.entries.get(&token) {
                        None => return None,
                        Some(Entry::Idle { held, total, .. }) => return Some((*held, *total)),
                        Some(Entry::Busy { stop, .. }) => stop.cancel(),
                    }
                    released.borrow_and_update();
                }
                if released.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(SUPERSEDE_WAIT, wait).await.map_err(|_| {
            HandlerError::new(
                ErrorCode::UNAVAILABLE,
                format!("an earlier attempt of upload {token} did not stop within {SUPERSEDE_WAIT:?}"),
            )
        })
    }

    /// Starts or resumes the upload `token` at `offset` of `total` bytes (§17.3, §17.4).
    async fn begin(self: &Arc<Self>, token: ResumeToken, offset: u64, total: u64) -> Result<Lease, HandlerError> {
        self.settle(token).await?;
        let mut state = self.lock();
        match state.entries.remove(&token) {
            Some(Entry::Idle { file, held, total: t, .. }) if held == offset && t == total => {
                let stop = CancellationToken::new();
                state.entries.insert(token, Entry::Busy { total, stop: stop.clone() });
                return Ok(Lease::new(self.clone(), Some(token), file, held, total, stop));
            }
            Some(busy @ Entry::Busy { .. }) => {
                state.entries.insert(token, busy);
                let message = format!("upload {token} is being received on another connection");
                return Err(HandlerError::new(ErrorCode::UNAVAILABLE, message));
            }
            // A fresh start replaces what was held.
            Some(Entry::Idle { .. }) if offset == 0 => {}
            Some(Entry::Idle { file, held, total: t, since }) => {
                state.entries.insert(token, Entry::Idle { file, held, total: t, since });
                return Err(mismatch(token, offset, total, Some((held, t))));
            }
            None if offset == 0 => {}
            None => return Err(mismatch(token, offset, total, None)),
        }
        let limits = state.limits;
        if state.entries.len() >= limits.max_partials {
            return Err(HandlerError::new(
                ErrorCode::UNAVAILABLE,
                format!(
                    "the endpoint already holds {} partial uploads (ResumeLimits::max_partials {})",
                    state.entries.len(),
                    limits.max_partials
                ),
            ));
        }
        let reserved: u64 = state.entries.values().map(Entry::total).sum();
        if reserved.saturating_add(total) > limits.max_bytes {
            return Err(HandlerError::new(
                ErrorCode::UNAVAILABLE,
                format!(
                    "an upload of {total} bytes would make the partial uploads {} bytes, over \
                     ResumeLimits::max_bytes of {}",
                    reserved.saturating_add(total),
                    limits.max_bytes
                ),
            ));
        }
        let file = self.create()?;
        let stop = CancellationToken::new();
        state.entries.insert(token, Entry::Busy { total, stop: stop.clone() });
        Ok(Lease::new(self.clone(), Some(token), file, 0, total, stop))
    }

    fn create(&self) -> Result<NamedTempFile, HandlerError> {
        let dir = self.dir.lock().expect("never poisoned").clone().unwrap_or_else(std::env::temp_dir);
        NamedTempFile::with_prefix_in(".netcore-resume-", &dir).map_err(|err| {
            HandlerError::new(
                ErrorCode::INTERNAL,
                format!("cannot create a partial upload in {}: {err}", dir.display()),
            )
        })
    }

    /// An attempt let go of its entry: keep what it wrote, or forget the entry.
    fn release(&self, token: ResumeToken, kept: Option<(NamedTempFile, u64, u64)>) {
        let mut state = self.lock();
        if let Some((file, held, total)) = kept {
            state.entries.insert(token, Entry::Idle { file, held, total, since: Instant::now() });
        } else {
            state.entries.remove(&token);
        }
        drop(state);
        self.released.send_modify(|n| *n += 1);
    }
}

/// The ERROR code 7 RESUME answer: the offset does not match what the receiver holds.
fn mismatch(token: ResumeToken, offset: u64, total: u64, held: Held) -> HandlerError {
    let holds = match held {
        Some((held, t)) => format!("holds {held} of {t} bytes"),
        None => "holds nothing (never started, expired after ResumeLimits::keep_for, or replaced)".to_owned(),
    };
    HandlerError::new(
        ErrorCode::RESUME,
        format!("cannot resume upload {token} at offset {offset} of {total} bytes: the endpoint {holds}"),
    )
}

/// One attempt's hold on a partial upload; dropped unfinished (a cut link, an aborted handler),
/// it puts back the file with the bytes written so far.
struct Lease {
    store: Arc<ResumeStore>,
    token: Option<ResumeToken>,
    file: Option<NamedTempFile>,
    written: u64,
    total: u64,
    stop: CancellationToken,
    /// The payload being stored; what it already received is stored even when cut short.
    body: Option<BodyStream>,
}

impl Lease {
    fn new(
        store: Arc<ResumeStore>,
        token: Option<ResumeToken>,
        file: NamedTempFile,
        written: u64,
        total: u64,
        stop: CancellationToken,
    ) -> Self {
        Self { store, token, file: Some(file), written, total, stop, body: None }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), HandlerError> {
        let file = self.file.as_mut().expect("held until finished").as_file_mut();
        if let Err(err) = file.write_all(bytes) {
            // Keep the partial at its last whole chunk: that is the confirmed offset.
            let _ = file.set_len(self.written).and_then(|()| file.seek(SeekFrom::Start(self.written)).map(drop));
            return Err(HandlerError::new(ErrorCode::INTERNAL, format!("cannot store the upload: {err}")));
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<NamedTempFile, HandlerError> {
        let mut file = self.file.take().expect("held until finished");
        if let Some(token) = self.token.take() {
            self.store.release(token, None);
        }
        file.as_file_mut().flush()?;
        file.as_file_mut().rewind()?;
        Ok(file)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(mut body) = self.body.take() {
            while let Some(chunk) = body.try_chunk() {
                if self.append(&chunk).is_err() {
                    break;
                }
            }
        }
        if let (Some(token), Some(file)) = (self.token, self.file.take()) {
            self.store.release(token, Some((file, self.written, self.total)));
        }
    }
}

/// The resume headers of a request, checked (§17.1): `None` for a request without a token.
fn resume_headers(headers: &Headers, len: u64) -> Result<Option<(ResumeToken, u64, u64)>, HandlerError> {
    let Some(token) = headers.get(HEADER_TOKEN) else { return Ok(None) };
    let token = token.parse::<ResumeToken>().map_err(|err| HandlerError::bad_request(err.to_string()))?;
    let number = |name: &str| {
        let value =
            headers.get(name).ok_or_else(|| HandlerError::bad_request(format!("{HEADER_TOKEN} without {name}")))?;
        parse_decimal(value).ok_or_else(|| HandlerError::bad_request(format!("{name}: {value:?} is not a decimal")))
    };
    let (offset, total) = (number(HEADER_OFFSET)?, number(HEADER_TOTAL)?);
    if offset.checked_add(len) != Some(total) {
        return Err(HandlerError::bad_request(format!(
            "a payload of {len} bytes at offset {offset} does not end at {HEADER_TOTAL} {total}"
        )));
    }
    Ok(Some((token, offset, total)))
}

/// Stores a resumable route's payload as it arrives, then hands the whole file to the handler as
/// [`Payload::File`].
pub(crate) async fn receive(
    store: Arc<ResumeStore>,
    mut request: Request,
    body: BodyStream,
) -> Result<Request, HandlerError> {
    let mut lease = match resume_headers(request.headers(), body.len())? {
        Some((token, offset, total)) => store.begin(token, offset, total).await?,
        // No token: stored like any upload, and dropped if it does not complete.
        None => Lease::new(store.clone(), None, store.create()?, 0, body.len(), CancellationToken::new()),
    };
    let stop = lease.stop.clone();
    lease.body = Some(body);
    loop {
        let body = lease.body.as_mut().expect("taken after the loop");
        let chunk = tokio::select! {
            chunk = body.chunk() => chunk,
            () = stop.cancelled() => {
                return Err(HandlerError::new(ErrorCode::UNAVAILABLE, "superseded by a newer attempt of this upload"));
            }
        };
        match chunk? {
            Some(chunk) => lease.append(&chunk)?,
            None => break,
        }
    }
    lease.body = None;
    let file = lease.finish()?;
    request.payload = super::PayloadSlot::new(Payload::File(file));
    Ok(request)
}

/// The query route's handler (§17.2): the offset held under the request's token.
pub(crate) async fn query(store: Arc<ResumeStore>, request: Request) -> Result<Response, HandlerError> {
    let token = request
        .headers()
        .get(HEADER_TOKEN)
        .ok_or_else(|| HandlerError::bad_request(format!("{RESUME_QUERY_ROUTE} needs a {HEADER_TOKEN} header")))?;
    let token = token.parse::<ResumeToken>().map_err(|err| HandlerError::bad_request(err.to_string()))?;
    let response = match store.settle(token).await? {
        Some((held, total)) => {
            Response::empty().with_header(HEADER_OFFSET, held.to_string()).with_header(HEADER_TOTAL, total.to_string())
        }
        None => Response::empty().with_header(HEADER_OFFSET, "0"),
    };
    Ok(response)
}

/// The window a download request asks for (§17.6): `nc-offset` (default 0) and `nc-length`
/// (default: to the end).
pub(crate) fn download_window(headers: &Headers) -> Result<(u64, u64), HandlerError> {
    let number = |name: &str| match headers.get(name) {
        None => Ok(None),
        Some(value) => parse_decimal(value)
            .map(Some)
            .ok_or_else(|| HandlerError::bad_request(format!("{name}: {value:?} is not a decimal"))),
    };
    Ok((number(HEADER_OFFSET)?.unwrap_or(0), number(HEADER_LENGTH)?.unwrap_or(u64::MAX)))
}

/// A download route's answer (§17.6): bytes `offset` to at most `offset + length` of `body`, with
/// `nc-offset` and `nc-total`.
pub(crate) fn serve_window(body: &Resumable, offset: u64, length: u64) -> Result<Response, HandlerError> {
    let total = body.len();
    if offset > total {
        let message = format!("cannot serve offset {offset} of a body of {total} bytes");
        return Err(HandlerError::new(ErrorCode::RESUME, message));
    }
    let len = length.min(total - offset);
    let reader = body
        .open_at(offset)
        .map_err(|err| HandlerError::new(ErrorCode::INTERNAL, format!("cannot read the body: {err}")))?;
    Ok(Response::body(crate::session::Body::Reader { reader: Box::new(reader.take(len)), len })
        .with_header(HEADER_OFFSET, offset.to_string())
        .with_header(HEADER_TOTAL, total.to_string()))
}

type OpenAt = dyn Fn(u64) -> std::io::Result<Box<dyn Read + Send>> + Send + Sync;

/// A body that can be sent again from any offset, named by a [`ResumeToken`]: upload it with
/// [`Connection::upload`](crate::Connection::upload) and, after an interruption
/// ([`CallError::Interrupted`](super::CallError::Interrupted)), upload the same value again (on any
/// connection to the same endpoint, a new one after a replug) to send only what the receiver lacks.
#[derive(Clone)]
pub struct Resumable {
    token: ResumeToken,
    len: u64,
    open: Arc<OpenAt>,
    /// Whether the receiver may hold part of it: ask before sending.
    tried: Arc<AtomicBool>,
    /// The offset the last attempt started from.
    offset: Arc<AtomicU64>,
}

impl fmt::Debug for Resumable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumable").field("token", &self.token).field("len", &self.len).finish_non_exhaustive()
    }
}

impl Resumable {
    /// The file at `path`, reopened and positioned at each attempt's offset.
    pub fn file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_owned();
        let len = std::fs::metadata(&path)?.len();
        Ok(Self::reader_at(len, move |offset| {
            let mut file = std::fs::File::open(&path)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(std::io::BufReader::with_capacity(64 * 1024, file))
        }))
    }

    /// Bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        let len = bytes.len() as u64;
        Self::reader_at(len, move |offset| Ok(std::io::Cursor::new(bytes.slice(offset as usize..))))
    }

    /// A `len`-byte body that `open(offset)` yields from `offset` to its end.
    pub fn reader_at<R, F>(len: u64, open: F) -> Self
    where
        R: Read + Send + 'static,
        F: Fn(u64) -> std::io::Result<R> + Send + Sync + 'static,
    {
        let open: Arc<OpenAt> = Arc::new(move |offset| Ok(Box::new(open(offset)?) as Box<dyn Read + Send>));
        let (tried, offset) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        Self { token: ResumeToken::random(), len, open, tried, offset }
    }

    /// Continues an upload started under `token`, for instance by a previous run of this program.
    pub fn with_token(mut self, token: ResumeToken) -> Self {
        self.token = token;
        self.tried = Arc::new(AtomicBool::new(true));
        self
    }

    /// The upload's token.
    pub fn token(&self) -> ResumeToken {
        self.token
    }

    /// The body's whole length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The offset the last attempt started from: what the receiver held then.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Whether an attempt may have left part of it with the receiver; marks it so.
    pub(crate) fn start_attempt(&self, offset: u64) -> bool {
        self.offset.store(offset, Ordering::Relaxed);
        self.tried.swap(true, Ordering::Relaxed)
    }

    pub(crate) fn was_tried(&self) -> bool {
        self.tried.load(Ordering::Relaxed)
    }

    pub(crate) fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        (self.open)(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_lowercase_hex_digits() {
        let token = ResumeToken(*b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff");
        assert_eq!(token.to_string(), "00112233445566778899aabbccddeeff");
        assert_eq!("00112233445566778899aabbccddeeff".parse::<ResumeToken>(), Ok(token));
        for bad in [
            "",
            "00112233445566778899AABBCCDDEEFF",
            "00112233445566778899aabbccddeef",
            "+0112233445566778899aabbccddeeff",
        ] {
            assert!(bad.parse::<ResumeToken>().is_err(), "{bad}");
        }
        assert_ne!(ResumeToken::random(), ResumeToken::random());
    }

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("16777216"), Some(16 << 20));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "01", "+1", "-1", "1 ", "18446744073709551616", "0x10"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }

    /// The metadata of §17.5's examples, as the endpoint encodes it.
    #[test]
    fn headers_encode_as_the_spec_shows() {
        let token = "00112233445566778899aabbccddeeff";
        let query: Headers = [(HEADER_TOKEN.to_owned(), token.to_owned())].into();
        let meta = super::super::wire::encode_headers(&query).unwrap();
        assert_eq!(meta[..], [&[1, 9][..], b"nc-resume", &[32], token.as_bytes()].concat()[..]);
        let upload: Headers = [(HEADER_TOKEN, token), (HEADER_OFFSET, "6"), (HEADER_TOTAL, "10")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .into();
        let meta = super::super::wire::encode_headers(&upload).unwrap();
        let want = [
            &[3, 9][..],
            b"nc-offset",
            &[1],
            b"6",
            &[9],
            b"nc-resume",
            &[32],
            token.as_bytes(),
            &[8],
            b"nc-total",
            &[2],
            b"10",
        ]
        .concat();
        assert_eq!(meta[..], want[..]);
        assert_eq!(resume_headers(&upload, 4).unwrap(), Some((token.parse().unwrap(), 6, 10)));
        assert!(resume_headers(&upload, 5).is_err());
    }
}
