//! Connections: one driver task per link owns the sans-IO [`Session`](crate::session::Session);
//! [`Connection`] is the cloneable handle the application calls through.
//!
//! The layer sits between the sans-IO core and the endpoint and does not use the endpoint: the
//! call-level types are its own ([`Request`], [`Response`], [`Reply`], [`CallError`],
//! [`HandlerError`], headers, body streams and the sender's side of resumable uploads; the
//! `endpoint` module names them), and a driver hands incoming requests and its events to its
//! owner through a dispatch interface, which the [`Endpoint`](crate::Endpoint) implements.
//!
//! # Observability
//!
//! [`Connection::stats`] returns a [`ConnectionStats`] snapshot (the session's counters, its
//! credit and queues, the driver's pending calls and handlers), [`Connection::ping`] measures a
//! round trip, and [`Endpoint::stats`](crate::Endpoint::stats) adds up every connection of an
//! endpoint. Each driver runs in a `tracing` span `connection{id, label, peer}` and reports the
//! handshake (both HELLOs), GOAWAYs, cancels, timeouts, retransmissions, resynchronisations,
//! limits hit and handler failures as `tracing` events; the table of levels is in the README's
//! "Observability" section. With no subscriber installed none of it formats or allocates.

mod bodies;
pub(crate) mod call;
mod driver;
pub(crate) mod error;
pub(crate) mod headers;
mod open;
#[cfg(feature = "json")]
pub(crate) mod py;
pub(crate) mod resume;
mod standalone;
mod stats;
pub(crate) mod storage;
pub(crate) mod stream;
mod streamed;
pub(crate) mod trace;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::frame::{CancelReason, Hello, Priority, Route};
use crate::session::{Body, CloseReason, Payload, Progress};

// The call-level types are this layer's; the endpoint layer makes them public under its own
// paths (`endpoint::Request`, `endpoint::CallError`, ...), where users name them.
pub(crate) use call::{PayloadSlot, Reply, Request, Response};
pub(crate) use driver::{draw_nonce, spawn, ConnectionEvent, Dispatch};
pub(crate) use error::{CallError, ErrorCode, ErrorSource, HandlerError};
pub(crate) use headers::Headers;
pub(crate) use open::reader_chunks;
pub use open::{Closed, OpenBody, OpenBodySender};
pub(crate) use resume::{Resumable, ResumeToken, RESUME_QUERY_ROUTE};
pub(crate) use stats::Retired;
pub use stats::{ConnectionStats, EndpointStats};
pub(crate) use stream::BodyStream;
pub(crate) use streamed::AnswerGuard;
pub use streamed::StreamedReply;

/// Identifies a connection within its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Waiting for the peer's HELLO.
    Connecting,
    /// The handshake completed; the peer's HELLO.
    Open(Hello),
    /// Closed, and why.
    Closed(CloseReason),
}

/// Options of one call.
#[derive(Debug, Default, Clone)]
pub struct CallOptions {
    /// Scheduling class of the request (the response usually takes the same).
    pub priority: Priority,
    /// How long to wait for the reply; on expiry the exchange is cancelled on both sides.
    pub timeout: Option<Duration>,
    /// Headers sent with the request.
    pub headers: Headers,
    /// Receives the transfer's progress: the request's bytes sent, then the reply's bytes received.
    pub progress: Option<watch::Sender<Progress>>,
    /// Whether [`priority`](Self::priority) was called: a generated client then uses it instead
    /// of the method's declared priority.
    priority_set: bool,
    /// Set by [`Connection::call_stream`]: the answer is streamed into this channel.
    pub(crate) stream_answer: Option<streamed::AnswerFeed>,
}

impl CallOptions {
    /// Options with nothing set: the default priority, no timeout, no headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the priority (a [`Priority`] or a class 0..=7; larger values are clamped to 7).
    pub fn priority(mut self, priority: impl Into<Priority>) -> Self {
        self.priority = priority.into();
        self.priority_set = true;
        self
    }

    /// The priority, if one was chosen: set with [`priority`](Self::priority), or a value other
    /// than the default written into the field. A generated client falls back to the method's
    /// declared priority otherwise.
    pub fn chosen_priority(&self) -> Option<Priority> {
        (self.priority_set || self.priority != Priority::default()).then_some(self.priority)
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Reports progress into a watch channel.
    pub fn progress(mut self, progress: watch::Sender<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }
}

pub(crate) enum Command {
    Call { token: u64, route: Route, body: Body, opts: CallOptions, reply: oneshot::Sender<Result<Reply, CallError>> },
    Notify { route: Route, body: Body, opts: CallOptions, done: oneshot::Sender<Result<(), CallError>> },
    Close,
    Stats(oneshot::Sender<ConnectionStats>),
    Ping(oneshot::Sender<Result<Duration, CallError>>),
}

pub(crate) struct Shared {
    id: ConnectionId,
    label: String,
    commands: mpsc::Sender<Command>,
    /// Calls whose futures were dropped or timed out, for the driver to cancel.
    dropped: Mutex<Vec<(u64, CancelReason)>>,
    wake: Notify,
    /// Bytes of streamed chunks the application has read, whose credit the driver returns.
    consumed: AtomicU64,
    next_token: AtomicU64,
    state: watch::Receiver<LinkState>,
    /// Becomes true (or its sender is dropped) once the driver has let go of the transport.
    released: watch::Receiver<bool>,
    /// Whether the open session uses reliable delivery (docs/PROTOCOL.md §16).
    reliable: std::sync::atomic::AtomicBool,
    /// The timeout of calls that set none: `Some` on a Python Netcore link (docs/COMPAT.md §4),
    /// whose peer never answers an error.
    py_timeout: Option<Duration>,
    /// The last statistics, set by the driver when its loop ends, for
    /// [`Connection::stats`] after that.
    final_stats: Mutex<Option<ConnectionStats>>,
}

impl Shared {
    /// The state both drivers share with their handles: nothing dropped, consumed or sent yet.
    pub(crate) fn new(
        id: ConnectionId,
        label: String,
        commands: mpsc::Sender<Command>,
        state: watch::Receiver<LinkState>,
        released: watch::Receiver<bool>,
        py_timeout: Option<Duration>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            id,
            label,
            commands,
            dropped: Default::default(),
            consumed: Default::default(),
            wake: Default::default(),
            next_token: Default::default(),
            state,
            released,
            reliable: Default::default(),
            py_timeout,
            final_stats: Default::default(),
        })
    }

    /// Keeps a closed link's last statistics; its driver no longer answers.
    pub(crate) fn set_final_stats(&self, stats: ConnectionStats) {
        *self.final_stats.lock().expect("never poisoned: no panics under the lock") = Some(stats);
    }
}

/// A handle to one connection: call the peer, send it one-way messages, watch or close the link.
/// Cheap to clone; the connection lives until it closes, whoever holds handles.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("id", &self.shared.id).field("label", &self.shared.label).finish()
    }
}

impl Connection {
    /// This connection's id within its endpoint.
    pub fn id(&self) -> ConnectionId {
        self.shared.id
    }

    /// What the connection runs over, e.g. `tcp 127.0.0.1:4000`.
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// The link's state now.
    pub fn state(&self) -> LinkState {
        self.shared.state.borrow().clone()
    }

    /// Whether the open session uses reliable delivery (docs/PROTOCOL.md §16): both sides offered
    /// it on the lossy framing. `false` while handshaking, and when either side did not offer it
    /// (the link then works with the plain lossy framing).
    pub fn is_reliable(&self) -> bool {
        self.shared.reliable.load(Ordering::Relaxed)
    }

    /// Whether the link is closed (its task may still be writing its last bytes).
    pub fn is_closed(&self) -> bool {
        matches!(*self.shared.state.borrow(), LinkState::Closed(_))
    }

    /// Waits for the handshake; the peer's HELLO, or why the link closed first.
    pub async fn ready(&self) -> Result<Hello, CallError> {
        let mut state = self.shared.state.clone();
        let result = match state.wait_for(|s| !matches!(s, LinkState::Connecting)).await.as_deref() {
            Ok(LinkState::Open(hello)) => Ok(hello.clone()),
            Ok(LinkState::Closed(reason)) => Err(CallError::Disconnected(reason.clone())),
            _ => Err(CallError::Disconnected(CloseReason::Disconnected)),
        };
        result
    }

    /// Waits until the link is closed and its transport released, and says why.
    ///
    /// [`state`](Self::state) turns [`LinkState::Closed`] as soon as the session closes, when
    /// pending calls fail; this waits longer, until the driver has written and flushed its last
    /// bytes (the GOAWAY) and shut the writer down, or given up on them (a write error, or a peer
    /// that does not take them within a few seconds). A process may exit once it returns.
    pub async fn closed(&self) -> CloseReason {
        let mut state = self.shared.state.clone();
        let reason = match state.wait_for(|s| matches!(s, LinkState::Closed(_))).await.as_deref() {
            Ok(LinkState::Closed(reason)) => reason.clone(),
            _ => CloseReason::Disconnected,
        };
        // An error means the driver is gone (its task ended or was aborted): released as well.
        let _ = self.shared.released.clone().wait_for(|released| *released).await;
        reason
    }

    /// Calls `route` with a payload and waits for the reply. The route is a name (`"/echo"`, a
    /// `String`) or a [`Route`] (`Route::Id(id)` for a bare route id), as in
    /// [`call_with`](Self::call_with).
    pub async fn call(&self, route: impl Into<Route>, body: impl Into<Body>) -> Result<Reply, CallError> {
        self.call_with(route, body, CallOptions::default()).await
    }

    /// Calls a route with options. Dropping the future cancels the call on both sides (§5.4).
    pub async fn call_with(
        &self,
        route: impl Into<Route>,
        body: impl Into<Body>,
        opts: CallOptions,
    ) -> Result<Reply, CallError> {
        self.call_named(route.into(), None, body.into(), opts).await
    }

    /// [`call_with`](Self::call_with), naming the route `name` in a timeout error: typed calls
    /// send a bare route id.
    pub(crate) async fn call_named(
        &self,
        route: Route,
        name: Option<&str>,
        body: Body,
        opts: CallOptions,
    ) -> Result<Reply, CallError> {
        let token = self.shared.next_token.fetch_add(1, Ordering::Relaxed);
        self.call_token(token, route, name, body, opts).await
    }

    /// [`call_named`](Self::call_named) as call `token` (drawn from `next_token`).
    pub(crate) async fn call_token(
        &self,
        token: u64,
        route: Route,
        name: Option<&str>,
        body: Body,
        opts: CallOptions,
    ) -> Result<Reply, CallError> {
        let route_id = route.id();
        let timeout = opts.timeout.or(self.shared.py_timeout);
        // Named before the route moves into the command, and only for a call that can time out.
        let label = timeout.map(|_| name.map_or_else(|| route_label(&route), Arc::from));
        let (reply, rx) = oneshot::channel();
        let mut guard = CancelOnDrop { shared: &self.shared, token, reason: Some(CancelReason::CANCELLED) };
        self.send(Command::Call { token, route, body, opts, reply }).await?;
        let result = match timeout {
            None => rx.await,
            Some(limit) => match tokio::time::timeout(limit, rx).await {
                Ok(result) => result,
                Err(_) => {
                    guard.reason = Some(CancelReason::TIMED_OUT);
                    let route = label.unwrap_or_default();
                    if self.shared.py_timeout.is_some() {
                        return Err(CallError::NoAnswerFromPython { route, after: limit });
                    }
                    return Err(CallError::TimedOut { route, after: limit });
                }
            },
        };
        guard.reason = None;
        match result {
            Ok(Err(CallError::Remote(err))) if err.code == ErrorCode::NOT_FOUND => {
                Err(CallError::Remote(name_unknown_route(err, route_id, name)))
            }
            Ok(result) => result,
            Err(_) => Err(CallError::Disconnected(self.closed_reason())),
        }
    }

    /// Uploads a [`Resumable`] body to a resumable route
    /// (`EndpointBuilder::resumable_route`, see [`Endpoint::builder`](crate::Endpoint::builder)),
    /// sending only what the receiver lacks (docs/PROTOCOL.md §17). The first attempt sends it
    /// all; a later one (after [`CallError::Interrupted`], on this connection or a new one) first
    /// asks the receiver which offset it holds, then sends the rest. An offset the receiver no
    /// longer holds (expired, replaced) is asked again once, and the upload starts from there.
    ///
    /// A cut link or a cancelled exchange fails with [`CallError::Interrupted`], carrying the
    /// token and the offsets; other errors are the call's own.
    pub async fn upload(&self, route: &str, body: &Resumable, opts: CallOptions) -> Result<Reply, CallError> {
        let token = body.token();
        let mut offset = match body.was_tried() {
            true => self.resume_offset(token, body.len()).await?,
            false => 0,
        };
        for asked_again in [false, true] {
            body.start_attempt(offset);
            let reader =
                body.open_at(offset).map_err(|e| CallError::Io(ErrorSource::context("cannot read the body", e)))?;
            let mut opts = opts.clone();
            opts.headers.insert(resume::HEADER_TOKEN.into(), token.to_string());
            opts.headers.insert(resume::HEADER_OFFSET.into(), offset.to_string());
            opts.headers.insert(resume::HEADER_TOTAL.into(), body.len().to_string());
            let progress =
                opts.progress.get_or_insert_with(|| watch::channel(Progress { done: 0, total: 0 }).0).clone();
            let len = body.len() - offset;
            let result = self.call_with(Route::Name(route.into()), Body::Reader { reader, len }, opts).await;
            match result {
                Err(CallError::Remote(err)) if err.code == ErrorCode::RESUME && !asked_again => {
                    offset = self.resume_offset(token, body.len()).await?;
                }
                Err(cause @ CallError::Disconnected(_)) | Err(cause @ CallError::Cancelled(_))
                    if cause != CallError::Cancelled(CancelReason::TOO_LARGE) =>
                {
                    let done = progress.borrow().done.min(len);
                    let (sent, total) = (offset + done, body.len());
                    return Err(CallError::Interrupted {
                        token,
                        confirmed: offset,
                        sent,
                        total,
                        cause: Box::new(cause),
                    });
                }
                other => return other,
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Downloads the body a download route
    /// (`EndpointBuilder::download_route`, see [`Endpoint::builder`](crate::Endpoint::builder))
    /// serves, from `offset` to its end, into `writer`, and returns the body's whole length
    /// (docs/PROTOCOL.md §17.6). It asks for one window of
    /// [`DOWNLOAD_WINDOW`](resume::DOWNLOAD_WINDOW) bytes at a time and writes each as it
    /// is answered, so the offset it reached is exact.
    ///
    /// A cut link, a cancelled or timed-out window fails with [`CallError::DownloadInterrupted`],
    /// carrying the offset reached: call again from there (on this connection or a new one) for
    /// the rest. `opts` apply to each window's request (a timeout is per window).
    pub async fn download<W: std::io::Write + Send>(
        &self,
        route: &str,
        offset: u64,
        writer: &mut W,
        opts: CallOptions,
    ) -> Result<u64, CallError> {
        use resume::{parse_decimal, DOWNLOAD_WINDOW, HEADER_LENGTH, HEADER_OFFSET, HEADER_TOTAL};
        let (mut received, mut total) = (offset, None);
        let write_error = |err: std::io::Error| CallError::Io(ErrorSource::context("cannot write the download", err));
        loop {
            let mut opts = opts.clone();
            opts.headers.insert(HEADER_OFFSET.into(), received.to_string());
            opts.headers.insert(HEADER_LENGTH.into(), DOWNLOAD_WINDOW.to_string());
            let reply = match self.call_with(Route::Name(route.into()), bytes::Bytes::new(), opts).await {
                Ok(reply) => reply,
                Err(cause @ (CallError::Disconnected(_) | CallError::Cancelled(_) | CallError::TimedOut { .. })) => {
                    return Err(CallError::DownloadInterrupted { received, total, cause: Box::new(cause) });
                }
                Err(err) => return Err(err),
            };
            let header = |name| reply.headers().get(name).and_then(|v: &String| parse_decimal(v));
            let (at, whole) = (header(HEADER_OFFSET), header(HEADER_TOTAL));
            let whole = match (at, whole) {
                (Some(at), Some(whole)) if at == received && total.is_none_or(|t| t == whole) => whole,
                _ => {
                    return Err(CallError::Codec(ErrorSource::message(format!(
                        "{route} answered offset {at:?} of {whole:?} bytes to a download from offset {received} \
                         (of {total:?}): not a download route, or its body changed"
                    ))))
                }
            };
            total = Some(whole);
            let written = match reply.into_payload() {
                Payload::Memory(bytes) => writer.write_all(&bytes).map(|()| bytes.len() as u64),
                Payload::File(file) => std::fs::File::open(file.path()).and_then(|mut f| std::io::copy(&mut f, writer)),
                // The driver hands replies over stored or in memory, never streamed.
                Payload::Stored { .. } | Payload::Streamed { .. } => unreachable!("replies are never streamed"),
            };
            let written = written.map_err(write_error)?;
            received += written;
            if received >= whole {
                writer.flush().map_err(write_error)?;
                return Ok(whole);
            }
            if written == 0 {
                return Err(CallError::Codec(ErrorSource::message(format!(
                    "{route} answered an empty window at offset {received} of {whole}"
                ))));
            }
        }
    }

    /// The offset the receiver holds of upload `token` of `total` bytes (§17.2): 0 if it holds
    /// none, a different total, or does not know resumption.
    async fn resume_offset(&self, token: ResumeToken, total: u64) -> Result<u64, CallError> {
        use resume::{parse_decimal, HEADER_OFFSET, HEADER_TOKEN, HEADER_TOTAL};
        let opts = CallOptions::default().header(HEADER_TOKEN, token.to_string());
        let route = Route::Name(RESUME_QUERY_ROUTE.into());
        let reply = match self.call_with(route, bytes::Bytes::new(), opts).await {
            Ok(reply) => reply,
            Err(CallError::Remote(err)) if err.code == ErrorCode::NOT_FOUND => return Ok(0),
            Err(err) => return Err(err),
        };
        let header = |name| reply.headers().get(name).and_then(|v: &String| parse_decimal(v));
        Ok(match (header(HEADER_OFFSET), header(HEADER_TOTAL)) {
            (Some(offset), Some(t)) if t == total && offset <= total => offset,
            _ => 0,
        })
    }

    /// Sends a one-way message; resolves once its last byte is handed to the transport. The
    /// route is a name or a [`Route`], as in [`call`](Self::call).
    pub async fn notify(&self, route: impl Into<Route>, body: impl Into<Body>) -> Result<(), CallError> {
        self.notify_with(route, body, CallOptions::default()).await
    }

    /// Sends a one-way message with options (the timeout and progress options are not used).
    pub async fn notify_with(
        &self,
        route: impl Into<Route>,
        body: impl Into<Body>,
        opts: CallOptions,
    ) -> Result<(), CallError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Notify { route: route.into(), body: body.into(), opts, done }).await?;
        rx.await.unwrap_or_else(|_| Err(CallError::Disconnected(self.closed_reason())))
    }

    /// Closes gracefully: new calls are refused, calls and handlers in flight finish, then a
    /// GOAWAY is sent. Returns once the GOAWAY is flushed and the transport released, as
    /// [`closed`](Self::closed) does.
    pub async fn close(&self) -> CloseReason {
        let _ = self.shared.commands.send(Command::Close).await;
        self.closed().await
    }

    /// A snapshot of this connection's counters, credit and queues (see [`ConnectionStats`]).
    /// Answered by the connection's task between two of its steps; once the link has ended, its
    /// last snapshot.
    pub async fn stats(&self) -> ConnectionStats {
        let (reply, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Stats(reply)).await.is_ok() {
            if let Ok(stats) = rx.await {
                return stats;
            }
        }
        let last = self.shared.final_stats.lock().expect("never poisoned: no panics under the lock").clone();
        last.unwrap_or_else(|| ConnectionStats { running: false, ..ConnectionStats::empty(self.id(), self.label()) })
    }

    /// Sends a PING (docs/PROTOCOL.md §5.6), once the handshake is done, and returns the time
    /// until its PONG arrived; [`ConnectionStats::counters`]' `last_rtt` keeps it. It does not
    /// time out by itself: a peer that never answers is found dead by keepalive, and the ping
    /// then fails like a call, or wrap it in [`tokio::time::timeout`]. A Python Netcore link
    /// has no PING: [`CallError::Io`].
    pub async fn ping(&self) -> Result<Duration, CallError> {
        self.ready().await?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Ping(reply)).await?;
        rx.await.unwrap_or_else(|_| Err(CallError::Disconnected(self.closed_reason())))
    }

    async fn send(&self, command: Command) -> Result<(), CallError> {
        self.shared.commands.send(command).await.map_err(|_| CallError::Disconnected(self.closed_reason()))
    }

    fn closed_reason(&self) -> CloseReason {
        match &*self.shared.state.borrow() {
            LinkState::Closed(reason) => reason.clone(),
            _ => CloseReason::Disconnected,
        }
    }
}

/// A NOT_FOUND answer to a call sent by route id names only the id (`no route #4b8223ef`): the
/// caller knows the name it called, so say it.
fn name_unknown_route(mut err: HandlerError, id: u32, name: Option<&str>) -> HandlerError {
    let Some(name) = name else { return err };
    let bare = format!("#{id:08x}");
    if err.message.contains(&bare) && !err.message.contains(name) {
        err.message =
            err.message.replacen(&bare, &format!("{name} (route id {bare})"), 1) + "; the peer does not serve it";
    }
    err
}

/// A route as a timeout error names it: its name, or its id for a bare [`Route::Id`].
fn route_label(route: &Route) -> Arc<str> {
    match route {
        Route::Name(name) => name.as_str().into(),
        Route::Id(id) => format!("route {id:#010x}").into(),
    }
}

/// How a [`BodyStream`] hands the credit of the chunks it read back
/// to its connection's driver.
#[derive(Clone)]
pub(crate) struct CreditReturn(pub(crate) Arc<Shared>);

impl CreditReturn {
    pub(crate) fn give(&self, bytes: u64) {
        self.0.consumed.fetch_add(bytes, Ordering::Relaxed);
        self.0.wake.notify_one();
    }
}

impl fmt::Debug for CreditReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CreditReturn").field(&self.0.id).finish()
    }
}

/// Cancels a call whose future is dropped (or timed out) before its reply arrived.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    token: u64,
    reason: Option<CancelReason>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(reason) = self.reason {
            self.shared.dropped.lock().expect("never poisoned: no panics under the lock").push((self.token, reason));
            self.shared.wake.notify_one();
        }
    }
}
