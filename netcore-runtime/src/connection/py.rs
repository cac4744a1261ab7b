//! The driver of a link to a Python Netcore 0.1.3 peer (docs/COMPAT.md §4): a loop around the
//! sans-IO [`compat::py::Peer`](crate::compat::py::Peer). Its messages become [`Request`]s for
//! the endpoint's [`Dispatch`], our calls become missions matched by `message_id`.
//!
//! A writer task takes one whole frame at a time and, on TCP, waits until the kernel has sent
//! it before taking the next: Python's reader loses the stream on a short read (COMPAT.md §3,
//! defect D1), and pacing is what keeps its reads whole.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use super::{
    CallError, Command, Connection, ConnectionEvent, ConnectionId, ConnectionStats, Dispatch, ErrorCode, ErrorSource,
    HandlerError, Headers, LinkState, PayloadSlot, Reply, Request, Response, Shared,
};
use crate::compat::py::{Event, Info, Limits, Peer};
use crate::frame::{Hello, Priority};
use crate::session::{Body, CloseReason, Payload};

/// Calls to a Python peer that set no timeout wait this long (docs/COMPAT.md §4): Python
/// answers nothing for unknown routes and failing handlers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Handlers running at once; beyond it the link is not read (backpressure on the peer).
const MAX_HANDLERS: usize = 256;
/// How long a closing link keeps trying to write its last frames.
const LINGER: Duration = Duration::from_secs(2);
/// Info keys that are not headers (Python's `Request` takes the same out).
const RESERVED: [&str; 5] = ["route", "message_id", "pipe_safe_code", "is_response", "is_cancel"];

/// How the writer waits for a frame to leave before the next (COMPAT.md §3).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pacing {
    /// Not at all: serial lines and blocking functions whose reads are exact anyway.
    None,
    /// Until the TCP socket's unsent queue is empty (Linux `SIOCOUTQNSD`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Tcp(i32),
}

impl Pacing {
    #[cfg(target_os = "linux")]
    fn unsent(self) -> usize {
        const SIOCOUTQNSD: libc::c_ulong = 0x894B;
        match self {
            Pacing::None => 0,
            Pacing::Tcp(fd) => {
                let mut unsent: libc::c_int = 0;
                // SAFETY: `fd` is the socket the writer owns (it outlives every call here), and
                // the ioctl writes one c_int through the pointer.
                let rc = unsafe { libc::ioctl(fd, SIOCOUTQNSD as _, &mut unsent) };
                if rc == 0 {
                    unsent.max(0) as usize
                } else {
                    0
                }
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn unsent(self) -> usize {
        0
    }

    /// Waits until what was written has left. The kernel signals no readiness for "send queue
    /// empty", so this looks again every millisecond, and only while a frame is still queued:
    /// on an idle or keeping-up link the first look finds 0.
    async fn wait(self) {
        let mut waited = Duration::ZERO;
        while self.unsent() > 0 && waited < LINGER {
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += Duration::from_millis(1);
        }
    }
}

/// Options of a Python link.
#[derive(Debug, Clone)]
pub(crate) struct PyOptions {
    pub(crate) limits: Limits,
    pub(crate) timeout: Duration,
    pub(crate) pacing: Pacing,
}

struct Pending {
    token: u64,
    extension: String,
    reply: oneshot::Sender<Result<Reply, CallError>>,
}

/// A finished handler: its exchange, the request's route and `message_id`, and its result.
type Done = (u32, Arc<str>, String, Result<Response, HandlerError>);

/// Starts the driver of a Python link over `io`.
pub(crate) fn spawn_py<IO>(
    io: IO,
    id: ConnectionId,
    label: String,
    dispatch: Arc<dyn Dispatch>,
    options: PyOptions,
) -> Connection
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (commands, command_rx) = mpsc::channel(64);
    // No handshake on this wire: the link is open from the first byte (COMPAT.md §1). Its HELLO
    // is a stand-in: version 0, fingerprint 0.
    let hello = Hello::new(0, 0, 0, crate::frame::Limits::default());
    let (state_tx, state) = watch::channel(LinkState::Open(hello));
    let (released_tx, released) = watch::channel(false);
    let shared = Shared::new(id, label, commands, state, released, Some(options.timeout));
    let connection = Connection { shared: shared.clone() };
    let (done_tx, done_rx) = mpsc::channel(MAX_HANDLERS);
    let driver = PyDriver {
        peer: Peer::new(options.limits, super::draw_nonce()),
        shared,
        dispatch,
        state: state_tx,
        pending: HashMap::new(),
        tokens: HashMap::new(),
        notifies: HashMap::new(),
        handlers: HashMap::new(),
        next_exchange: 0,
        done_tx,
        closing: false,
    };
    dispatch_connect(&driver);
    tokio::spawn(driver.run(io, options.pacing, command_rx, done_rx, released_tx));
    connection
}

fn dispatch_connect(driver: &PyDriver) {
    driver.dispatch.emit(ConnectionEvent::Connect { connection: driver.connection() });
}

struct PyDriver {
    peer: Peer,
    shared: Arc<Shared>,
    dispatch: Arc<dyn Dispatch>,
    state: watch::Sender<LinkState>,
    /// Our calls awaiting their reply, by `message_id`.
    pending: HashMap<String, Pending>,
    tokens: HashMap<u64, String>,
    /// Our one-way messages until their last frame is written, by extension.
    notifies: HashMap<String, oneshot::Sender<Result<(), CallError>>>,
    /// Running handlers, by exchange.
    handlers: HashMap<u32, AbortHandle>,
    next_exchange: u32,
    done_tx: mpsc::Sender<Done>,
    closing: bool,
}

impl PyDriver {
    async fn run<IO>(
        mut self,
        io: IO,
        pacing: Pacing,
        mut commands: mpsc::Receiver<Command>,
        mut done: mpsc::Receiver<Done>,
        released: watch::Sender<bool>,
    ) where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, writer) = tokio::io::split(io);
        // Depth 1: at most one frame waits while one is written, so the round robin decides late.
        let (frames, frame_rx) = mpsc::channel::<Bytes>(1);
        let writer = tokio::spawn(write_frames(writer, frame_rx, pacing));
        let reason = loop {
            self.drain_events();
            if self.closing && self.pending.is_empty() && self.handlers.is_empty() && !self.peer.has_output() {
                break CloseReason::Local;
            }
            let can_read = self.handlers.len() < MAX_HANDLERS;
            tokio::select! {
                permit = frames.reserve(), if self.peer.has_output() => match permit {
                    Ok(permit) => {
                        let frame = self.peer.poll_transmit().expect("has output");
                        permit.send(frame.to_bytes());
                    }
                    Err(_) => break CloseReason::Disconnected,
                },
                read = read_into(&mut reader, self.peer.input_buffer()), if can_read => match read {
                    Ok(n) if n > 0 => {
                        if let Err(err) = self.peer.handle_buffered() {
                            tracing::warn!(label = %self.shared.label, error = %err, "python peer broke the framing");
                            break CloseReason::Disconnected;
                        }
                    }
                    _ => break CloseReason::Disconnected,
                },
                Some(command) = commands.recv() => self.handle_command(command),
                Some((exchange, route, message_id, result)) = done.recv() => {
                    if self.handlers.remove(&exchange).is_some() {
                        self.answer(route, message_id, result);
                    }
                }
                () = self.shared.wake.notified() => {
                    while let Ok(command) = commands.try_recv() {
                        self.handle_command(command);
                    }
                    self.cancel_dropped();
                }
            }
        };
        self.fail_everything(reason);
        drop(frames);
        // The writer flushes what it was given, then shuts the link down; bounded by LINGER.
        let _ = tokio::time::timeout(LINGER, writer).await;
        let last = ConnectionStats { running: false, ..self.snapshot() };
        self.shared.set_final_stats(last.clone());
        self.dispatch.detach(self.shared.id, &last);
        let _ = released.send(true);
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Call { token, route, body, opts, reply } => {
                let route: Arc<str> = route_name(&route);
                if self.closing {
                    let _ = reply.send(Err(CallError::Disconnected(CloseReason::Local)));
                    return;
                }
                let payload = match body_bytes(body) {
                    Ok(payload) if payload.is_empty() => {
                        let _ = reply.send(Err(CallError::EmptyForPython { route }));
                        return;
                    }
                    Ok(payload) => payload,
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        return;
                    }
                };
                let message_id = self.peer.message_id();
                let mut info = Info::default();
                info.push("route", &*route);
                info.push("message_id", message_id.as_str());
                add_headers(&mut info, &opts.headers);
                let extension = self.peer.send(&info, payload);
                self.tokens.insert(token, message_id.clone());
                self.pending.insert(message_id, Pending { token, extension, reply });
            }
            Command::Notify { route, body, opts, done } => {
                let payload = match body_bytes(body) {
                    Ok(payload) => payload,
                    Err(err) => {
                        let _ = done.send(Err(err));
                        return;
                    }
                };
                let mut info = Info::default();
                info.push("route", &*route_name(&route));
                info.push("message_id", self.peer.message_id());
                add_headers(&mut info, &opts.headers);
                let extension = self.peer.send(&info, payload);
                self.notifies.insert(extension, done);
            }
            Command::Close => self.closing = true,
            Command::Stats(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Ping(reply) => {
                let _ = reply.send(Err(CallError::Io(ErrorSource::message("a Python Netcore 0.1.3 link has no PING"))));
            }
        }
    }

    /// Calls whose futures were dropped or timed out: forgotten, and their missions cancelled
    /// if still being sent (Python drops what it received of them).
    /// What a Python link counts: its queues (its wire has no session counters here).
    fn snapshot(&self) -> ConnectionStats {
        ConnectionStats {
            pending_calls: self.pending.len(),
            running_handlers: self.handlers.len(),
            ..ConnectionStats::empty(self.shared.id, &self.shared.label)
        }
    }

    fn cancel_dropped(&mut self) {
        let dropped = std::mem::take(&mut *self.shared.dropped.lock().expect("never poisoned"));
        for (token, _) in dropped {
            if let Some(message_id) = self.tokens.remove(&token) {
                if let Some(call) = self.pending.remove(&message_id) {
                    self.peer.cancel(&call.extension);
                }
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(event) = self.peer.poll_event() {
            match event {
                Event::Message { info, payload, .. } => self.handle_message(info, payload),
                Event::Sent { extension } => {
                    if let Some(done) = self.notifies.remove(&extension) {
                        let _ = done.send(Ok(()));
                    }
                }
                Event::Cancelled { extension } => {
                    tracing::debug!(label = %self.shared.label, %extension, "python peer cancelled a mission");
                }
                Event::Dropped { extension, reason } => {
                    tracing::debug!(label = %self.shared.label, ?extension, %reason, "dropped from python peer");
                }
            }
        }
    }

    /// COMPAT.md §4.3: a `message_id` we wait for completes that call, whatever else the info
    /// says; an unsolicited response is never routed (Python's D9); anything else is a request.
    fn handle_message(&mut self, info: Info, payload: Bytes) {
        let message_id = info.get("message_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let route = info.get("route").and_then(Value::as_str).unwrap_or_default().to_owned();
        let headers = headers_of(&info);
        if let Some(call) = self.pending.remove(&message_id) {
            self.tokens.remove(&call.token);
            let mut headers = headers;
            headers.insert("route".into(), route);
            let _ = call.reply.send(Ok(Reply { headers, payload: PayloadSlot::new(Payload::Memory(payload)) }));
            return;
        }
        if info.get("is_response").is_some_and(|v| v.as_bool() == Some(true)) {
            tracing::debug!(label = %self.shared.label, %message_id, "unsolicited response from python peer dropped");
            return;
        }
        let exchange = self.next_exchange;
        self.next_exchange = self.next_exchange.wrapping_add(1);
        let route: Arc<str> = route.into();
        let request = Request {
            route: route.clone(),
            route_id: crate::frame::route_id(&route),
            exchange: Some(exchange),
            headers,
            payload: PayloadSlot::new(Payload::Memory(payload)),
            body: None,
            priority: Priority::default(),
            connection: self.connection(),
            extensions: Default::default(),
            #[cfg(feature = "cache")]
            cache: None,
        };
        let handler = self.dispatch.clone().handle(request);
        let done = self.done_tx.clone();
        let task = tokio::spawn(async move {
            let result = match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(handler)).await {
                Ok(result) => result,
                Err(_) => Err(HandlerError::new(ErrorCode::INTERNAL, "handler panicked")),
            };
            let _ = done.send((exchange, route, message_id, result)).await;
        });
        self.handlers.insert(exchange, task.abort_handle());
    }

    /// Python's way: a response goes back with the request's `message_id` and `is_response`;
    /// an error or an empty response sends nothing (what a Python handler that raises or
    /// returns no `Response` does; an empty payload would never be delivered anyway, D7).
    fn answer(&mut self, route: Arc<str>, message_id: String, result: Result<Response, HandlerError>) {
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                tracing::debug!(label = %self.shared.label, %route, error = %err, "no answer to python peer");
                return;
            }
        };
        let payload = match response.body.map(body_bytes) {
            Some(Ok(payload)) if !payload.is_empty() => payload,
            _ => return,
        };
        let mut info = Info::default();
        info.push("route", response.headers.get("route").map_or(&*route, String::as_str));
        info.push("is_response", true);
        info.push("message_id", message_id);
        let mut headers = response.headers;
        headers.remove("route");
        add_headers(&mut info, &headers);
        self.peer.send(&info, payload);
    }

    fn fail_everything(&mut self, reason: CloseReason) {
        for (_, call) in self.pending.drain() {
            let _ = call.reply.send(Err(CallError::Disconnected(reason.clone())));
        }
        for (_, done) in self.notifies.drain() {
            let _ = done.send(Err(CallError::Disconnected(reason.clone())));
        }
        for (_, handler) in self.handlers.drain() {
            handler.abort();
        }
        self.tokens.clear();
        self.state.send_replace(LinkState::Closed(reason.clone()));
        self.dispatch.emit(ConnectionEvent::Disconnect { connection: self.shared.id, reason });
    }

    fn connection(&self) -> Connection {
        Connection { shared: self.shared.clone() }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut writer: W, mut frames: mpsc::Receiver<Bytes>, pacing: Pacing) {
    while let Some(frame) = frames.recv().await {
        // One write per frame: Python's reader must find whole frames (COMPAT.md §3).
        if writer.write_all(&frame).await.is_err() || writer.flush().await.is_err() {
            return;
        }
        pacing.wait().await;
    }
    let _ = writer.shutdown().await;
}

async fn read_into<R: AsyncRead + Unpin>(reader: &mut R, buffer: &mut BytesMut) -> std::io::Result<usize> {
    buffer.reserve(64 * 1024);
    reader.read_buf(buffer).await
}

fn route_name(route: &crate::frame::Route) -> Arc<str> {
    match route {
        crate::frame::Route::Name(name) => name.as_str().into(),
        crate::frame::Route::Id(id) => format!("#{id:08x}").into(),
    }
}

/// A body's bytes: a Python mission announces its length up front and is sent from memory.
fn body_bytes(body: Body) -> Result<Bytes, CallError> {
    match body {
        Body::Bytes(bytes) => Ok(bytes),
        Body::Chain(head, rest) => Ok([head, rest].concat().into()),
        Body::Reader { mut reader, len } => {
            let mut out = Vec::with_capacity(len.min(64 << 20) as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut reader, len), &mut out)
                .map_err(|e| CallError::Io(ErrorSource::context("cannot read the body", e)))?;
            Ok(out.into())
        }
        Body::Supplied { len } => Err(CallError::Io(ErrorSource::message(format!(
            "a supplied body of {len} bytes has no source on a Python link: send bytes"
        )))),
        Body::Open(_) => Err(CallError::Io(ErrorSource::message(
            "the peer did not offer open-length messages (HELLO option OPEN): a Python link takes bytes".to_string(),
        ))),
    }
}

/// Extra info keys are Python's `request.headers`; values that are not strings come as JSON.
fn headers_of(info: &Info) -> Headers {
    info.0
        .iter()
        .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key.clone(), value)
        })
        .collect()
}

fn add_headers(info: &mut Info, headers: &Headers) {
    for (name, value) in headers {
        if !RESERVED.contains(&name.as_str()) {
            info.push(name.as_str(), value.as_str());
        }
    }
}
