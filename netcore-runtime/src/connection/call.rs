use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::headers::Headers;
use super::{BodyStream, HandlerError};
use super::{Connection, ConnectionId};
#[cfg(feature = "cache")]
use crate::cache::Cache;
use crate::codec;
use crate::frame::Priority;
use crate::session::{Body, Payload};

/// Values that middleware and hooks attach to a request for the handler (the per-request context).
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl Extensions {
    /// Stores a value, replacing one of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map.insert(TypeId::of::<T>(), Box::new(value)).and_then(|old| old.downcast().ok().map(|b| *b))
    }

    /// The value of type `T`, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>()).and_then(|b| b.downcast_ref())
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions").field("len", &self.map.len()).finish()
    }
}

/// A request (or one-way message) as a handler sees it: route, headers, payload and the
/// connection it came on, which handlers can also call back on.
#[derive(Debug)]
pub struct Request {
    pub(crate) route: Arc<str>,
    pub(crate) route_id: u32,
    pub(crate) exchange: Option<u32>,
    pub(crate) headers: Headers,
    pub(crate) payload: PayloadSlot,
    /// The payload's chunks, for a streaming route.
    pub(crate) body: Option<BodyStream>,
    pub(crate) priority: Priority,
    pub(crate) connection: Connection,
    pub(crate) extensions: Extensions,
    /// The endpoint's cache, set when the endpoint takes the request.
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<Cache>,
}

impl Request {
    /// The route: the registered name, the name sent by the peer, or `#xxxxxxxx` for an unknown id.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The route's wire id.
    pub fn route_id(&self) -> u32 {
        self.route_id
    }

    /// The peer's exchange id; `None` for one-way messages (no response is sent).
    pub fn exchange(&self) -> Option<u32> {
        self.exchange
    }

    /// The request's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The sender's priority, also the response's unless the handler sets another
    /// ([`Response::with_priority`]).
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The connection the request came on; call the peer back through it.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Which connection of the endpoint this is.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection.id()
    }

    /// The endpoint's TTL cache ([`Endpoint::cache`](crate::Endpoint::cache)), shared by every
    /// handler, hook and connection of the endpoint.
    ///
    /// ```
    /// # use netcore_runtime as netcore;
    /// use netcore::{Endpoint, Response};
    /// use std::time::Duration;
    ///
    /// let endpoint = Endpoint::builder()
    ///     .route("/visits", |req| async move {
    ///         let visits = req.cache().get::<u64>("visits").unwrap_or(0) + 1;
    ///         req.cache().insert("visits", visits, Some(Duration::from_secs(60)));
    ///         Ok(Response::text(visits.to_string()))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(endpoint);
    /// ```
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache(&self) -> &Cache {
        static NONE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
        // Every request an endpoint hands to a handler has its cache; this is for the others.
        self.cache.as_ref().unwrap_or_else(|| NONE.get_or_init(|| Cache::with_capacity(0)))
    }

    /// Values attached by middleware and hooks.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Values attached by middleware and hooks, to add to.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The payload as received (in memory, or in a file for large messages; for a streaming
    /// route, [`Payload::Streamed`]: read it with [`body_stream`](Self::body_stream)).
    pub fn payload(&self) -> &Payload {
        self.payload.get()
    }

    /// The payload as a stream of chunks: for a streaming route, the chunks as they arrive (taken
    /// once; a second call gives an empty stream); otherwise the stored payload as one chunk.
    pub fn body_stream(&mut self) -> Result<BodyStream, HandlerError> {
        if let Some(body) = self.body.take() {
            return Ok(body);
        }
        match self.payload.get() {
            Payload::Streamed { .. } => Ok(BodyStream::from_bytes(Bytes::new())),
            stored => Ok(BodyStream::from_bytes(payload_bytes(stored)?)),
        }
    }

    /// Takes the payload, for example to persist a received file.
    pub fn into_payload(mut self) -> Payload {
        self.payload.take()
    }

    /// The payload's bytes (read back from the file if it was stored in one).
    pub fn bytes(&self) -> Result<Bytes, HandlerError> {
        payload_bytes(self.payload()).map_err(HandlerError::from)
    }

    /// The payload as UTF-8 text.
    pub fn text(&self) -> Result<String, HandlerError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| HandlerError::bad_request("payload is not UTF-8"))
    }

    /// The payload decoded from JSON. A payload above [`codec::DECODE_LIMIT`] (16 MiB) is
    /// refused with ERROR TOO_LARGE before it is read (§8.4).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        self.check_decode_limit()?;
        serde_json::from_slice(&self.bytes()?).map_err(|e| HandlerError::bad_request(e.to_string()))
    }

    /// The payload decoded with the netcore codec (postcard, or bincode with the `bincode`
    /// feature; see [`codec`](crate::codec)). A
    /// payload above [`codec::DECODE_LIMIT`] (16 MiB) is refused with ERROR TOO_LARGE before it is
    /// read (§8.4).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        self.check_decode_limit()?;
        Ok(codec::decode(&self.bytes()?)?)
    }

    /// A payload that could never decode is not read at all.
    fn check_decode_limit(&self) -> Result<(), HandlerError> {
        let limit = codec::DECODE_LIMIT as u64;
        match self.payload().len() {
            Ok(len) if len > limit => Err(HandlerError::new(
                super::ErrorCode::TOO_LARGE,
                format!("request to {} of {len} bytes exceeds the decode limit of {limit} bytes", self.route),
            )),
            _ => Ok(()),
        }
    }
}

/// Holds a received payload. Dropping a large spill file frees its pages, which takes milliseconds:
/// that happens on a blocking thread, not on the runtime thread that drives connections.
#[derive(Debug)]
pub(crate) struct PayloadSlot(Option<Payload>);

impl PayloadSlot {
    pub(crate) fn new(payload: Payload) -> Self {
        Self(Some(payload))
    }

    fn get(&self) -> &Payload {
        self.0.as_ref().expect("present until taken, and taking consumes the holder")
    }

    fn take(&mut self) -> Payload {
        self.0.take().expect("taken once")
    }
}

impl Drop for PayloadSlot {
    fn drop(&mut self) {
        if let Some(Payload::File(file)) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn_blocking(move || drop(file))),
                Err(_) => drop(file),
            }
        }
    }
}

pub(crate) fn payload_bytes(payload: &Payload) -> std::io::Result<Bytes> {
    match payload {
        Payload::Memory(bytes) => Ok(bytes.clone()),
        Payload::File(file) => off_the_runtime(|| std::fs::read(file.path())).map(Bytes::from),
        Payload::Stored { .. } | Payload::Streamed { .. } => payload.to_vec().map(Bytes::from),
    }
}

/// Runs blocking file I/O without stalling the other tasks of a runtime worker: on a
/// multi-threaded runtime the worker hands its tasks to another thread first
/// (`block_in_place`); elsewhere (a current-thread runtime, no runtime) it simply runs.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What a handler answers with.
#[derive(Debug, Default)]
pub struct Response {
    pub(crate) body: Option<Body>,
    pub(crate) headers: Headers,
    /// `None`: the request's priority (docs/PROTOCOL.md §7).
    pub(crate) priority: Option<Priority>,
}

impl Response {
    /// An empty response.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A response carrying these bytes.
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Self::body(Body::Bytes(bytes.into()))
    }

    /// A response carrying UTF-8 text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::bytes(text.into().into_bytes())
    }

    /// A response carrying a value as JSON.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, HandlerError> {
        serde_json::to_vec(value)
            .map(Self::bytes)
            .map_err(|e| HandlerError::new(super::ErrorCode::INTERNAL, e.to_string()))
    }

    /// A response carrying a value encoded with the netcore codec.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, HandlerError> {
        codec::encode(value).map(Self::bytes).map_err(|e| HandlerError::new(super::ErrorCode::INTERNAL, e.to_string()))
    }

    /// A response streamed from a body (for example [`Body::file`]) without loading it whole.
    pub fn body(body: Body) -> Self {
        Self { body: Some(body), ..Self::default() }
    }

    /// A response whose body is produced as it is sent, of a length not known in advance (an
    /// open-length RESPONSE, docs/PROTOCOL.md §5.2, §6): downloads, subscriptions, log tails.
    /// The handler returns at once; whoever holds the body's
    /// [`OpenBodySender`](crate::OpenBodySender) keeps producing, at the pace the caller reads
    /// (the peer's credit), and sees it closed if the caller cancels.
    ///
    /// A peer that did not offer open-length messages (HELLO option OPEN) gets an ERROR
    /// UNAVAILABLE naming the reason instead.
    pub fn stream(body: super::OpenBody) -> Response {
        Response::body(body.into())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sends the response at `priority` instead of the request's own (docs/PROTOCOL.md §7).
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The response's headers.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

/// A reply to a call.
#[derive(Debug)]
pub struct Reply {
    pub(crate) headers: Headers,
    pub(crate) payload: PayloadSlot,
}

impl Reply {
    /// The reply's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The payload as received (in memory, or in a file for large replies).
    pub fn payload(&self) -> &Payload {
        self.payload.get()
    }

    /// Takes the payload, for example to persist a received file.
    pub fn into_payload(mut self) -> Payload {
        self.payload.take()
    }

    /// The payload's bytes.
    pub fn bytes(&self) -> Result<Bytes, super::CallError> {
        payload_bytes(self.payload())
            .map_err(|e| super::CallError::Io(super::ErrorSource::context("cannot read the stored reply", e)))
    }

    /// The payload as UTF-8 text.
    pub fn text(&self) -> Result<String, super::CallError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| super::CallError::Codec(super::ErrorSource::new(e)))
    }

    /// The payload decoded from JSON.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, super::CallError> {
        serde_json::from_slice(&self.bytes()?).map_err(|e| super::CallError::Codec(super::ErrorSource::new(e)))
    }

    /// The payload decoded with the netcore codec.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, super::CallError> {
        Ok(codec::decode(&self.bytes()?)?)
    }
}
