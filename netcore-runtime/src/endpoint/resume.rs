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
//! The sender's side (the token, [`Resumable`], the header names) is the connection layer's
//! (`connection::resume`), which uploads and downloads; the receiver's partial files live in a [`ResumeStore`] of the endpoint, not of a connection, so
//! they survive the link: a replug or a peer restart makes a new connection that finds them. The
//! I/O is here, in the endpoint layer: creating a file, appending each chunk as it is read from the
//! streamed payload, keeping the open file between attempts, and deleting it when the upload is
//! handed over, expires or is replaced.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::NamedTempFile;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{BodyStream, ErrorCode, HandlerError, Headers, Request, Response};
use crate::connection::resume::{
    parse_decimal, Resumable, ResumeToken, HEADER_LENGTH, HEADER_OFFSET, HEADER_TOKEN, HEADER_TOTAL, RESUME_QUERY_ROUTE,
};
use crate::session::Payload;

/// How long a resumed upload waits for an earlier attempt under the same token, still running on
/// a connection that has not noticed its peer is gone, to let go of the partial file.
const SUPERSEDE_WAIT: Duration = Duration::from_secs(5);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata of §17.5's examples, as the endpoint encodes it.
    #[test]
    fn headers_encode_as_the_spec_shows() {
        let token = "00112233445566778899aabbccddeeff";
        let query: Headers = [(HEADER_TOKEN.to_owned(), token.to_owned())].into();
        let meta = crate::connection::headers::encode_headers(&query).unwrap();
        assert_eq!(meta[..], [&[1, 9][..], b"nc-resume", &[32], token.as_bytes()].concat()[..]);
        let upload: Headers = [(HEADER_TOKEN, token), (HEADER_OFFSET, "6"), (HEADER_TOTAL, "10")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .into();
        let meta = crate::connection::headers::encode_headers(&upload).unwrap();
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
