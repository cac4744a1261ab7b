//! What generated code calls: typed calls over a [`Connection`] and typed routes on a
//! [`Blueprint`](crate::endpoint::Blueprint). Not for direct use: generated clients and servers
//! wrap these (see netcore-codegen).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use bytes::{Bytes, BytesMut};

use crate::codec;
use crate::connection::{CallOptions, Connection, ConnectionId, LinkState, OpenBody};
use crate::endpoint::{
    handler, BodyStream, CallError, Extensions, HandlerError, Headers, IntoRouteService, Request, Response,
    RouteService,
};
use crate::frame::{Priority, Route};
use crate::session::Body;

mod items;
pub(crate) mod records;
use items::stream_header;
pub use items::{call_items, from_stream, FromStream, ItemSource, Items, ItemsOf};
pub use records::{ByteStream, Closed, Incoming, IncomingBytes, Records, Stream, StreamSender};

/// What a typed handler's result becomes: an encoded RESPONSE (any serde type), or, for a
/// `-> stream<T>` / `-> stream<bytes>` method, an open-length RESPONSE of records
/// (docs/PROTOCOL.md §15, [`Stream`], [`ByteStream`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a typed handler's result: it is neither a serde type nor a stream",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or return `netcore::Stream<T>` or `netcore::ByteStream`"
)]
pub trait Reply: Sized {
    /// The answer of route `route` (named in errors).
    fn into_response(self, route: &str) -> Result<Response, HandlerError>;

    /// The same for a handler that took a [`Context`]: a streamed answer keeps `cancel` and fires
    /// it if the answer is dropped before its end (the caller cancelled, the link closed), so
    /// the handler's tasks learn of it after the handler returned; others drop it unfired.
    fn into_response_cancelling(self, route: &str, cancel: Cancellation) -> Result<Response, HandlerError> {
        drop(cancel);
        self.into_response(route)
    }
}

impl<R: Serialize> Reply for R {
    fn into_response(self, _route: &str) -> Result<Response, HandlerError> {
        Response::encode(&self)
    }
}

impl<T: Serialize + Send + 'static> Reply for Stream<T> {
    /// An open-length RESPONSE of records (docs/PROTOCOL.md §15, "Result streams").
    fn into_response(self, route: &str) -> Result<Response, HandlerError> {
        Ok(Response::stream(OpenBody::from_stream(self.into_records(route))))
    }

    fn into_response_cancelling(self, route: &str, cancel: Cancellation) -> Result<Response, HandlerError> {
        Ok(Response::stream(OpenBody::from_stream(self.into_records(route).cancelling(cancel))))
    }
}

impl Reply for ByteStream {
    /// An open-length RESPONSE of records (docs/PROTOCOL.md §15, "Result streams").
    fn into_response(self, _route: &str) -> Result<Response, HandlerError> {
        Ok(Response::stream(OpenBody::from_stream(self.into_records())))
    }

    fn into_response_cancelling(self, _route: &str, cancel: Cancellation) -> Result<Response, HandlerError> {
        Ok(Response::stream(OpenBody::from_stream(self.into_records().cancelling(cancel))))
    }
}

/// How a typed call receives its answer: decoded whole (any serde type), or, for a
/// `-> stream<T>` / `-> stream<bytes>` method, streamed as it arrives ([`Incoming`],
/// [`IncomingBytes`]).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a typed call's result: it is neither a serde type nor a stream",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or return `netcore::Stream<T>` or `netcore::ByteStream`"
)]
pub trait Answer: Sized {
    /// Sends `body` to `method` under `opts` and receives the answer.
    fn receive(
        connection: &Connection,
        method: &MethodSpec,
        body: Body,
        opts: CallOptions,
    ) -> impl Future<Output = Result<Self, CallError>> + Send;
}

impl<R: DeserializeOwned> Answer for R {
    fn receive(
        connection: &Connection,
        method: &MethodSpec,
        body: Body,
        opts: CallOptions,
    ) -> impl Future<Output = Result<Self, CallError>> + Send {
        let (route, name) = (method.route, method.name);
        async move { connection.call_named(Route::Id(route), Some(name), body, opts).await?.decode() }
    }
}

/// Checks the peer's METHODS table (docs/PROTOCOL.md §5.1, §15) for route `route`, named `name`,
/// whose layout hash is `hash`: [`CallError::Incompatible`] if the peer lacks it or has another
/// layout. A peer that sent no table (old or untyped) passes, and so does a link that closed or
/// did not open within `wait` (the call then fails as it would have).
pub async fn check_method(
    connection: &Connection,
    route: u32,
    name: &str,
    hash: u64,
    wait: Option<Duration>,
) -> Result<(), CallError> {
    let hello = match connection.state() {
        LinkState::Open(hello) => hello,
        LinkState::Connecting => {
            let ready = match wait {
                Some(wait) => tokio::time::timeout(wait, connection.ready()).await.ok(),
                None => Some(connection.ready().await),
            };
            let Some(Ok(hello)) = ready else { return Ok(()) };
            hello
        }
        LinkState::Closed(_) => return Ok(()),
    };
    let Some(methods) = hello.methods else { return Ok(()) };
    let theirs = methods.iter().find(|(id, _)| *id == route).map(|&(_, theirs)| theirs);
    if theirs == Some(hash) {
        return Ok(());
    }
    Err(CallError::Incompatible { method: name.to_owned(), ours: hash, theirs })
}

/// What a generated client knows of one of its methods: its route id and name, its layout hash,
/// its declared options (the defaults of a call), and whether its handler takes a [`Context`]
/// (then a call with a timeout tells it the deadline, in the [`TIMEOUT_HEADER`] header).
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    /// The route id, FNV-1a 32 of `name` (docs/PROTOCOL.md §5.2).
    pub route: u32,
    /// The route name, `{prefix}/{method}`; not sent, but named in errors.
    pub name: &'static str,
    /// The layout hash (docs/PROTOCOL.md §15).
    pub hash: u64,
    /// The declared priority.
    pub priority: Option<u8>,
    /// The declared timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Whether the handler takes a [`Context`].
    pub context: bool,
}

/// The header a typed call carries its timeout in, in milliseconds, when the method's handler
/// takes a [`Context`] (docs/PROTOCOL.md §15): the handler's [`Context::deadline`].
pub const TIMEOUT_HEADER: &str = "nc-timeout-ms";

/// The options of one call of `method`: `opts` (the client's, from
/// [`with`](CallOptions) on a generated client) over the method's declared priority and timeout.
fn merge(method: &MethodSpec, opts: &CallOptions) -> CallOptions {
    let mut merged = opts.clone();
    merged.priority =
        opts.chosen_priority().unwrap_or_else(|| method.priority.map_or_else(Priority::default, Priority::new));
    merged.timeout = opts.timeout.or(method.timeout_ms.map(Duration::from_millis));
    if let (true, Some(timeout)) = (method.context, merged.timeout) {
        merged.headers.insert(TIMEOUT_HEADER.to_owned(), timeout.as_millis().to_string());
    }
    merged
}

/// Calls `method` asking for its answer streamed: what it answers is records (docs/PROTOCOL.md
/// §15, "Result streams"), read as they arrive.
async fn receive_stream(
    connection: &Connection,
    method: &MethodSpec,
    body: Body,
    opts: CallOptions,
) -> Result<BodyStream, CallError> {
    Ok(connection.call_stream(Route::Id(method.route), body, opts).await?.into_body())
}

impl<T: DeserializeOwned> Answer for Incoming<T> {
    fn receive(
        connection: &Connection,
        method: &MethodSpec,
        body: Body,
        opts: CallOptions,
    ) -> impl Future<Output = Result<Self, CallError>> + Send {
        let method = *method;
        async move { Ok(Incoming::new(method.name, receive_stream(connection, &method, body, opts).await?)) }
    }
}

impl Answer for IncomingBytes {
    fn receive(
        connection: &Connection,
        method: &MethodSpec,
        body: Body,
        opts: CallOptions,
    ) -> impl Future<Output = Result<Self, CallError>> + Send {
        let method = *method;
        async move { Ok(IncomingBytes::new(method.name, receive_stream(connection, &method, body, opts).await?)) }
    }
}

/// Encodes `args`, refusing at once, before anything is sent, arguments the receiver could not
/// decode ([`CallError::TooLarge`], naming the method, the size and the limit).
fn encode_args<A: Serialize + ?Sized>(method: &MethodSpec, args: &A) -> Result<Vec<u8>, CallError> {
    let body = codec::encode(args)?;
    if body.len() > codec::DECODE_LIMIT {
        return Err(CallError::TooLarge {
            method: method.name.to_owned(),
            size: body.len() as u64,
            limit: codec::DECODE_LIMIT as u64,
        });
    }
    Ok(body)
}

/// Calls `method` with `args` (a tuple of its arguments) under `opts` and decodes the reply,
/// after [`check_method`].
pub async fn call<A, R>(
    connection: &Connection,
    method: MethodSpec,
    opts: &CallOptions,
    args: &A,
) -> Result<R, CallError>
where
    A: Serialize + ?Sized,
    R: Answer,
{
    let opts = merge(&method, opts);
    check_method(connection, method.route, method.name, method.hash, opts.timeout).await?;
    let body = encode_args(&method, args)?;
    R::receive(connection, &method, body.into(), opts).await
}

/// Sends a one-way message to `method` with `args` under `opts`, after [`check_method`].
pub async fn notify<A>(
    connection: &Connection,
    method: MethodSpec,
    opts: &CallOptions,
    args: &A,
) -> Result<(), CallError>
where
    A: Serialize + ?Sized,
{
    let opts = merge(&method, opts);
    check_method(connection, method.route, method.name, method.hash, None).await?;
    let body = encode_args(&method, args)?;
    connection.notify_with(Route::Id(method.route), body, opts).await
}

/// What a typed handler that asks for it (`cx: &netcore::Context` first in the macro, `@context`
/// in a schema) knows of its request: the connection it came on (to call the caller back), the
/// headers, the extensions hooks and layers attached, the priority, the caller's deadline and
/// whether the exchange was called off.
#[derive(Debug)]
pub struct Context {
    connection: Connection,
    route: Arc<str>,
    exchange: Option<u32>,
    headers: Headers,
    extensions: Extensions,
    priority: Priority,
    deadline: Option<tokio::time::Instant>,
    cancel: Cancellation,
}

impl Context {
    /// The context of `request`, which it takes the headers and extensions of.
    fn take(request: &mut Request) -> Self {
        let headers = std::mem::take(&mut request.headers);
        let deadline = headers
            .get(TIMEOUT_HEADER)
            .and_then(|ms| ms.parse::<u64>().ok())
            .and_then(|ms| tokio::time::Instant::now().checked_add(Duration::from_millis(ms)));
        Self {
            connection: request.connection.clone(),
            route: request.route.clone(),
            exchange: request.exchange,
            headers,
            extensions: std::mem::take(&mut request.extensions),
            priority: request.priority,
            deadline,
            cancel: Cancellation::default(),
        }
    }

    /// The connection the request came on: call the caller back through it (a generated client's
    /// `new(cx.connection().clone())`).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Which connection of the endpoint this is.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection.id()
    }

    /// The method's route name, `{prefix}/{method}`.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The caller's exchange id; `None` for an event (nothing is answered).
    pub fn exchange(&self) -> Option<u32> {
        self.exchange
    }

    /// The request's headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Values that `before_request` hooks and layers attached to the request.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// The caller's priority, also the answer's.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// When the caller stops waiting: its timeout, counted from when this handler started
    /// (the [`TIMEOUT_HEADER`] its call carried); `None` if it waits forever.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// Whether the exchange was called off (the caller cancelled or timed out, or the connection
    /// closed). The handler's own future is dropped then; this tells work it spawned.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A handle that says when the exchange is called off, for tasks the handler spawns.
    pub fn cancellation(&self) -> Cancellation {
        self.cancel.clone()
    }
}

/// Says when a typed request was called off: its caller cancelled or timed out, or its connection
/// closed, so its handler was dropped before it answered. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(tokio_util::sync::CancellationToken);

impl Cancellation {
    /// Whether the request was called off.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once the request is called off.
    pub async fn cancelled(&self) {
        self.0.cancelled().await
    }
}

/// Cancels a [`Cancellation`] when the handler future holding it is dropped unfinished.
struct CancelOnDrop(Option<tokio_util::sync::CancellationToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            token.cancel();
        }
    }
}

/// A typed route: a service that decodes its payload whole, so requests above
/// [`codec::DECODE_LIMIT`] are refused at their first frame, before a byte is stored
/// (docs/PROTOCOL.md §8.4), and whose method's layout hash goes into the endpoint's METHODS
/// table (§5.1).
pub struct TypedRoute(RouteService, u64);

impl IntoRouteService for TypedRoute {
    fn into_route_service(self) -> (RouteService, Option<u64>) {
        (self.0, Some(codec::DECODE_LIMIT as u64))
    }

    fn method_hash(&self) -> Option<u64> {
        Some(self.1)
    }
}

/// A route that decodes the arguments tuple `A`, runs `f` on the service, and encodes its result;
/// `hash` is the method's layout hash (docs/PROTOCOL.md §15).
pub fn route<S, A, R, F, Fut>(service: Arc<S>, hash: u64, f: F) -> TypedRoute
where
    S: Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Reply + 'static,
    F: Fn(Arc<S>, A) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
{
    TypedRoute(
        handler(move |request: Request| {
            let (service, f) = (service.clone(), f.clone());
            async move {
                let args: A = request.decode()?;
                let route = request.route.clone();
                drop(request);
                f(service, args).await?.into_response(&route)
            }
        }),
        hash,
    )
}

/// A route like [`route`] whose handler also gets the request's [`Context`].
pub fn route_cx<S, A, R, F, Fut>(service: Arc<S>, hash: u64, f: F) -> TypedRoute
where
    S: Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Reply + 'static,
    F: Fn(Arc<S>, Context, A) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
{
    TypedRoute(
        handler(move |mut request: Request| {
            let (service, f) = (service.clone(), f.clone());
            async move {
                let args: A = request.decode()?;
                let cx = Context::take(&mut request);
                drop(request);
                let mut guard = CancelOnDrop(Some(cx.cancel.0.clone()));
                let (route, cx_cancel) = (cx.route.clone(), cx.cancellation());
                let result = f(service, cx, args).await;
                guard.0 = None;
                result?.into_response_cancelling(&route, cx_cancel)
            }
        }),
        hash,
    )
}

/// A typed route whose method's last argument is a `stream<bytes>`: its payload is
/// `varint len ‖ arguments ‖ stream bytes` (docs/PROTOCOL.md §15), streamed to the handler as it
/// arrives (§8.3), so the stream is never stored whole; the other arguments stay under
/// [`codec::DECODE_LIMIT`].
pub struct TypedStreamRoute(RouteService, u64);

impl IntoRouteService for TypedStreamRoute {
    fn into_route_service(self) -> (RouteService, Option<u64>) {
        (self.0, None)
    }

    fn method_hash(&self) -> Option<u64> {
        Some(self.1)
    }

    fn streaming(&self) -> bool {
        true
    }
}

/// A route for a method whose last argument is a stream: decodes the other arguments `A` from the
/// payload's start and hands `f` the rest as it arrives, as a [`BodyStream`] (`stream<bytes>`) or
/// as [`Items`] (`stream<T>`).
pub fn stream_route<S, A, B, R, F, Fut>(service: Arc<S>, hash: u64, f: F) -> TypedStreamRoute
where
    S: Send + Sync + 'static,
    A: DeserializeOwned + Send + 'static,
    B: StreamArg,
    R: Reply + 'static,
    F: Fn(Arc<S>, Context, A, B) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
{
    TypedStreamRoute(
        handler(move |mut request: Request| {
            let (service, f) = (service.clone(), f.clone());
            async move {
                let mut body = request.body_stream()?;
                let (args, header_len, front) = read_stream_args::<A>(&request.route, &mut body).await?;
                let body = B::from_body(&request.route, body.after(header_len, front));
                let cx = Context::take(&mut request);
                drop(request);
                let mut guard = CancelOnDrop(Some(cx.cancel.0.clone()));
                let (route, cx_cancel) = (cx.route.clone(), cx.cancellation());
                let result = f(service, cx, args, body).await;
                guard.0 = None;
                result?.into_response_cancelling(&route, cx_cancel)
            }
        }),
        hash,
    )
}

/// Reads `varint len ‖ arguments` from the start of a streamed payload: the arguments, the
/// header's length and the bytes of the stream read with it. A length over the decode limit or
/// a payload that ends first is a BAD_REQUEST naming the route.
async fn read_stream_args<A: DeserializeOwned>(
    route: &str,
    body: &mut BodyStream,
) -> Result<(A, u64, Bytes), HandlerError> {
    let mut buf = BytesMut::new();
    let mut need: Option<(usize, usize)> = None; // (varint length, arguments length)
    loop {
        if need.is_none() {
            match crate::varint::peek(&buf) {
                Ok(crate::varint::Peek::Value(len, at)) if len <= codec::DECODE_LIMIT as u64 => {
                    need = Some((at, len as usize))
                }
                Ok(crate::varint::Peek::Value(len, _)) => {
                    return Err(HandlerError::new(
                        crate::endpoint::ErrorCode::TOO_LARGE,
                        format!(
                            "arguments of {route} announce {len} bytes, over the decode limit of {} bytes",
                            codec::DECODE_LIMIT
                        ),
                    ))
                }
                Ok(crate::varint::Peek::Incomplete) => {}
                Err(_) => return Err(HandlerError::bad_request(format!("{route}: bad argument length"))),
            }
        }
        if let Some((at, len)) = need {
            if buf.len() >= at + len {
                let args = codec::decode(&buf[at..at + len])?;
                let front = buf.split_off(at + len).freeze();
                return Ok((args, (at + len) as u64, front));
            }
        }
        match body.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => {
                return Err(HandlerError::bad_request(format!("{route}: the payload ends inside the arguments")))
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Calls `method`, whose last argument is a `stream<bytes>`, with the other arguments `args` and
/// the stream `stream` (bytes in memory, or a [`Body::reader`]/[`Body::file`] read as it is sent,
/// never loaded whole): sends `varint len ‖ args ‖ stream` (docs/PROTOCOL.md §15).
pub async fn call_stream<A, R>(
    connection: &Connection,
    method: MethodSpec,
    opts: &CallOptions,
    args: &A,
    stream: Body,
) -> Result<R, CallError>
where
    A: Serialize + ?Sized,
    R: Answer,
{
    let opts = merge(&method, opts);
    check_method(connection, method.route, method.name, method.hash, opts.timeout).await?;
    let header = stream_header(&method, args)?;
    let total = header.len() as u64 + stream.len();
    let header = std::io::Cursor::new(header);
    let body = match stream {
        Body::Bytes(bytes) => Body::Chain(Bytes::from(header.into_inner()), bytes),
        Body::Chain(head, rest) => {
            let parts = std::io::Read::chain(std::io::Cursor::new(head), std::io::Cursor::new(rest));
            Body::reader(std::io::Read::chain(header, parts), total)
        }
        Body::Reader { reader, .. } => Body::reader(std::io::Read::chain(header, reader), total),
        Body::Supplied { len } => {
            let message =
                format!("{}: a supplied body of {len} bytes has no source here: send bytes or a reader", method.name);
            return Err(CallError::Io(crate::endpoint::ErrorSource::message(message)));
        }
        Body::Open(source) => match OpenBody::from_body(Body::Open(source)) {
            Ok(open) => open.prepend(Bytes::from(header.into_inner())).into(),
            Err(_) => {
                let message = format!("{}: an open-length stream argument must be an OpenBody", method.name);
                return Err(CallError::Io(crate::endpoint::ErrorSource::message(message)));
            }
        },
    };
    R::receive(connection, &method, body, opts).await
}

/// How a streaming route hands its handler the stream argument: the bytes as they are
/// ([`BodyStream`], a `stream<bytes>`) or decoded item by item ([`Items`], a `stream<T>`).
pub trait StreamArg: Send + 'static {
    /// The stream argument of route `route` over the payload's rest, `body`.
    fn from_body(route: &str, body: BodyStream) -> Self;
}

impl StreamArg for BodyStream {
    fn from_body(_route: &str, body: BodyStream) -> Self {
        body
    }
}

impl crate::layout::Schema for BodyStream {
    /// `stream<bytes>`.
    fn describe(layout: &mut crate::layout::Layout) {
        layout.generic("stream", &[&<Vec<u8> as crate::layout::Schema>::describe]);
    }
}

/// Fails to compile, at the type, for a `stream<T>` whose items cannot go on the wire.
pub fn assert_items_wire<S: ItemsOf>()
where
    S::Item: Serialize + DeserializeOwned,
{
}

/// Fails to compile, at the type, for a type that cannot go on the wire.
pub fn assert_wire_type<T: Serialize + DeserializeOwned>() {}

/// The fingerprint of an endpoint serving several services: order-independent, and equal to the
/// service's own fingerprint when there is only one.
pub fn combine_fingerprints(fingerprints: &[u64]) -> u64 {
    match fingerprints {
        [] => 0,
        [one] => *one,
        many => {
            let mut sorted = many.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            sorted
                .iter()
                .flat_map(|f| f.to_le_bytes())
                .fold(0xcbf2_9ce4_8422_2325u64, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: MethodSpec =
        MethodSpec { route: 1, name: "/svc/m", hash: 2, priority: Some(5), timeout_ms: Some(2000), context: false };

    #[test]
    fn declared_options_are_the_defaults_and_call_options_win() {
        let plain = merge(&SPEC, &CallOptions::new());
        assert_eq!((plain.priority, plain.timeout), (Priority::new(5), Some(Duration::from_secs(2))));
        assert!(plain.headers.is_empty(), "no timeout header for a method without the context");
        let chosen = merge(&SPEC, &CallOptions::new().priority(Priority::NORMAL).timeout(Duration::from_millis(7)));
        assert_eq!((chosen.priority, chosen.timeout), (Priority::NORMAL, Some(Duration::from_millis(7))));
        let undeclared = MethodSpec { priority: None, timeout_ms: None, ..SPEC };
        assert_eq!(merge(&undeclared, &CallOptions::new()).priority, Priority::default());
        assert_eq!(merge(&undeclared, &CallOptions::new()).timeout, None);
    }

    #[test]
    fn a_method_taking_the_context_is_told_the_timeout() {
        let spec = MethodSpec { context: true, ..SPEC };
        let merged = merge(&spec, &CallOptions::new().header("a", "b"));
        assert_eq!(merged.headers.get(TIMEOUT_HEADER).map(String::as_str), Some("2000"));
        assert_eq!(merged.headers.get("a").map(String::as_str), Some("b"));
        let untimed = MethodSpec { timeout_ms: None, ..spec };
        assert!(!merge(&untimed, &CallOptions::new()).headers.contains_key(TIMEOUT_HEADER));
    }

    #[test]
    fn arguments_over_the_decode_limit_are_refused_naming_the_method() {
        let big = vec![0u8; codec::DECODE_LIMIT + 1];
        match encode_args(&SPEC, &(big,)) {
            Err(CallError::TooLarge { method, size, limit }) => {
                assert_eq!((method.as_str(), limit), ("/svc/m", codec::DECODE_LIMIT as u64));
                assert!(size > limit);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(encode_args(&SPEC, &(1u32,)).is_ok());
    }

    #[test]
    fn combined_fingerprints_ignore_order() {
        assert_eq!(combine_fingerprints(&[7]), 7);
        assert_eq!(combine_fingerprints(&[1, 2, 3]), combine_fingerprints(&[3, 1, 2]));
        assert_ne!(combine_fingerprints(&[1, 2]), combine_fingerprints(&[1, 3]));
    }
}
