//! The Endpoint: routes, blueprints, middleware, hooks, events, scheduler, cache, and the
//! connections it serves. Both peers of a link are endpoints; either can call the other.

mod accept;
#[cfg(feature = "cache")]
mod cache;
mod error;
mod events;
mod request;
pub(crate) mod resume;
mod router;
mod scheduler;
mod stream;
mod streamed;
pub(crate) mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tower::{BoxError, Layer, Service};

#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use crate::connection::py::DEFAULT_TIMEOUT as PY_DEFAULT_TIMEOUT;
pub use accept::DEFAULT_MAX_CONNECTIONS;
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use cache::Cache;
pub use error::{BuildError, CallError, ErrorCode, ErrorSource, HandlerError};
pub use events::{EndpointEvent, EventKind};
pub(crate) use request::PayloadSlot;
pub use request::{Extensions, Reply, Request, Response};
pub use resume::{BadResumeToken, Resumable, ResumeLimits, ResumeToken, DOWNLOAD_WINDOW, RESUME_QUERY_ROUTE};
pub use router::{handler, Blueprint, IntoRouteService, RequestInfo, RouteService};
pub use scheduler::{Scheduler, TaskHandle};
pub use stream::BodyStream;
pub use wire::Headers;

use crate::connection::{self, Connection, ConnectionId, ConnectionStats, Dispatch, EndpointStats, Retired};
use crate::frame::Route;
use crate::session::Config;
use router::{layer_fn, AfterHook, BeforeHook, ErrorHandler, LayerFn, RouteDef, Router};

/// Collects routes, hooks and settings; [`build`](Self::build) checks them and makes the endpoint.
#[derive(Default)]
pub struct EndpointBuilder {
    config: Option<Config>,
    routes: Vec<RouteDef>,
    default: Option<RouteService>,
    layers: Vec<LayerFn>,
    before: Vec<BeforeHook>,
    after: Vec<AfterHook>,
    on_error: Option<ErrorHandler>,
    callbacks: Vec<(EventKind, events::Callback)>,
    #[cfg(feature = "cache")]
    cache: Option<Cache>,
    max_connections: Option<usize>,
    /// Partial uploads of resumable routes, created by the first of them.
    resume: Option<Arc<resume::ResumeStore>>,
    decode_limits: Vec<(String, u64)>,
    #[cfg(feature = "cache")]
    response_ttls: Vec<(String, std::time::Duration)>,
}

impl EndpointBuilder {
    /// Uses this cache as [`Endpoint::cache`], for instance one that routes already hold.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Most connections [`Endpoint::serve_tcp`], [`Endpoint::serve_unix`] and
    /// [`Endpoint::serve_tcp_py`] serve at once (default [`DEFAULT_MAX_CONNECTIONS`], 512: well
    /// under the 1024 descriptors a process gets by default). Beyond it a new peer gets our HELLO
    /// and GOAWAY LIMIT naming this limit, and is dropped (a Python peer is just closed: its wire
    /// has no GOAWAY). Connections made with [`Endpoint::connect`] are not refused, but count.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// The session configuration of new connections (default: [`Config::stream`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds a route handled by an async function.
    pub fn route<F, Fut>(self, name: &str, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
    {
        self.route_service(name, handler(f))
    }

    /// Adds a route handled by a service: a [`RouteService`], or a typed route (generated code),
    /// which refuses requests above the codec's decode limit at their first frame.
    pub fn route_service(mut self, name: &str, service: impl IntoRouteService) -> Self {
        let (method_hash, streaming) = (service.method_hash(), service.streaming());
        let (service, max_payload) = service.into_route_service();
        self.routes.push(RouteDef { name: name.to_owned(), service, streaming, max_payload, method_hash });
        self
    }

    /// Refuses requests to `route` (registered before or after this call) that announce more
    /// than `max_bytes`, at their first frame and before a byte of them is stored, with ERROR
    /// TOO_LARGE naming the route, the size and the limit (docs/PROTOCOL.md §8.4). For routes
    /// that read their payload whole, such as JSON routes; typed routes have
    /// [`codec::DECODE_LIMIT`](crate::codec::DECODE_LIMIT) (16 MiB) unless set here.
    pub fn decode_limit(mut self, route: &str, max_bytes: u64) -> Self {
        self.decode_limits.push((route.to_owned(), max_bytes));
        self
    }

    /// Caches the responses of `route` (registered before or after this call) in the endpoint's
    /// [`Cache`] for `ttl`, keyed by the route and the request's payload: a request whose payload
    /// equals one answered within `ttl` gets the stored response without running the handler.
    /// Layers, before and after hooks still run for every request, so a hook that refuses a
    /// request still does; headers are not part of the key. Errors, responses streamed from a
    /// reader and requests stored in a file (above the in-memory limit) are not cached. As the
    /// Python original's cached routes, for answers that are costly and change slowly.
    ///
    /// ```
    /// # use netcore_runtime as netcore;
    /// use netcore::{Endpoint, Response};
    /// use std::time::Duration;
    ///
    /// let endpoint = Endpoint::builder()
    ///     .route("/user/list", |_req| async move { Ok(Response::text("ada, grace")) })
    ///     .cache_responses("/user/list", Duration::from_secs(30))
    ///     .build()
    ///     .unwrap();
    /// # drop(endpoint);
    /// ```
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache_responses(mut self, route: &str, ttl: std::time::Duration) -> Self {
        self.response_ttls.push((route.to_owned(), ttl));
        self
    }

    /// Adds a route whose payloads are handed to `f` as they arrive, never stored whole: its
    /// handler starts as soon as a request's first frame is in, and reads the payload with
    /// [`BodyStream::chunk`]. The peer sends only as fast as the handler reads (flow control).
    /// For uploads to write somewhere as they come: flash, a file, a decoder.
    ///
    /// ```
    /// # use netcore_runtime as netcore;
    /// use netcore::{Endpoint, Response};
    ///
    /// let endpoint = Endpoint::builder()
    ///     .streaming_route("/firmware", |_req, mut body| async move {
    ///         let mut crc = 0u32;
    ///         while let Some(chunk) = body.chunk().await? {
    ///             crc = chunk.iter().fold(crc, |c, b| c.rotate_left(5) ^ u32::from(*b));
    ///         }
    ///         Ok(Response::bytes(crc.to_le_bytes().to_vec()))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(endpoint);
    /// ```
    pub fn streaming_route<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Request, BodyStream) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
    {
        let service = router::streaming_handler(f);
        self.routes.push(RouteDef::streaming(name.to_owned(), service));
        self
    }

    /// Adds a route for large uploads that survive the link (docs/PROTOCOL.md §17): its payload is
    /// written to a file as it arrives and handed to `f` whole, as [`Payload::File`](crate::Payload::File),
    /// once complete. A request sent with [`Connection::upload`](crate::Connection::upload) that is
    /// cut short (a replug, a restart, a cancelled exchange) leaves its partial file with the
    /// endpoint under the upload's resume token, and the next attempt, on any connection, sends
    /// only the rest. Partial uploads are bounded by [`resume_limits`](Self::resume_limits).
    ///
    /// ```
    /// # use netcore_runtime as netcore;
    /// use netcore::{Endpoint, Response};
    ///
    /// let endpoint = Endpoint::builder()
    ///     .resumable_route("/log/upload", |req| async move {
    ///         let len = req.payload().len()?;
    ///         Ok(Response::text(format!("stored {len} bytes")))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(endpoint);
    /// ```
    pub fn resumable_route<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
    {
        let store = self.resume.get_or_insert_with(Default::default).clone();
        let service = router::streaming_handler(move |request, body| {
            let (store, f) = (store.clone(), f.clone());
            async move { f(resume::receive(store, request, body).await?).await }
        });
        self.routes.push(RouteDef::streaming(name.to_owned(), service));
        self
    }

    /// Adds a route serving a large body that a cut link does not make start over
    /// (docs/PROTOCOL.md §17.6): `f` names the body (a [`Resumable`], opened at any offset) and
    /// each request gets the window its `nc-offset` and `nc-length` headers ask for.
    /// [`Connection::download`](crate::Connection::download) fetches it window by window, and
    /// after an interruption continues from the bytes it already wrote.
    ///
    /// ```
    /// # use netcore_runtime as netcore;
    /// use netcore::{Endpoint, Resumable};
    ///
    /// let endpoint = Endpoint::builder()
    ///     .download_route("/log", |_req| async move { Ok(Resumable::bytes(vec![7u8; 1 << 20])) })
    ///     .build()
    ///     .unwrap();
    /// # drop(endpoint);
    /// ```
    pub fn download_route<F, Fut>(self, name: &str, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Resumable, HandlerError>> + Send + 'static,
    {
        self.route(name, move |request| {
            let f = f.clone();
            async move {
                let (offset, length) = resume::download_window(request.headers())?;
                resume::serve_window(&f(request).await?, offset, length)
            }
        })
    }

    /// Bounds the partial uploads kept for resumption (default [`ResumeLimits::default`]: 8
    /// uploads, 4 GiB, 15 minutes). Beyond the count or the bytes a new upload is refused with
    /// [`ErrorCode::UNAVAILABLE`], naming the limit; a partial upload idle for `keep_for` is deleted.
    pub fn resume_limits(mut self, limits: ResumeLimits) -> Self {
        self.resume.get_or_insert_with(Default::default).set_limits(limits);
        self
    }

    /// Where partial uploads are stored (default: the system's temporary directory).
    pub fn resume_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.resume.get_or_insert_with(Default::default).set_dir(dir.into());
        self
    }

    /// Registers a blueprint's routes under its prefix.
    pub fn blueprint(mut self, blueprint: Blueprint) -> Self {
        self.routes.extend(blueprint.into_routes());
        self
    }

    /// Handles requests for routes nobody registered (otherwise they fail with
    /// [`ErrorCode::NOT_FOUND`]).
    pub fn default_handler<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
    {
        self.default = Some(handler(f));
        self
    }

    /// Wraps every route (and the default handler) in a tower layer; the first added is outermost.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<RouteService> + Send + Sync + 'static,
        L::Service: Service<Request, Response = Response, Error = BoxError> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(layer_fn(layer));
        self
    }

    /// Runs before every handler; an error answers the request without running the handler.
    ///
    /// A request goes through, in this order:
    ///
    /// 1. **route lookup**: a route nobody registered, with no
    ///    [`default_handler`](Self::default_handler), is answered [`ErrorCode::NOT_FOUND`] here,
    ///    before any hook runs (so an authentication hook cannot turn it into its own error);
    /// 2. **before hooks**, in the order they were added; the first error answers;
    /// 3. **layers** ([`layer`](Self::layer)), the first added outermost, around
    /// 4. the **route's handler** (or the default handler), after a cached answer is looked up if
    ///    the route has one ([`cache_responses`](Self::cache_responses));
    /// 5. the **error handler** ([`on_error`](Self::on_error)) for an error of any step above,
    ///    NOT_FOUND included;
    /// 6. **after hooks**, in the order they were added, on a response (from the handler or the
    ///    error handler).
    pub fn before_request(
        mut self,
        hook: impl Fn(&mut Request) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.before.push(Arc::new(hook));
        self
    }

    /// Runs after every successful handler (and after the error handler turned an error into a
    /// response), and may change the response.
    pub fn after_request(mut self, hook: impl Fn(&RequestInfo, &mut Response) + Send + Sync + 'static) -> Self {
        self.after.push(Arc::new(hook));
        self
    }

    /// Turns handler errors into responses, or into other errors.
    pub fn on_error(
        mut self,
        handler: impl Fn(&RequestInfo, HandlerError) -> Result<Response, HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(handler));
        self
    }

    /// Calls `callback` for every event of `kind`. Keep it short: it runs on the connection's task.
    pub fn on(mut self, kind: EventKind, callback: impl Fn(&EndpointEvent) + Send + Sync + 'static) -> Self {
        self.callbacks.push((kind, Arc::new(callback)));
        self
    }

    /// Checks the routes (no duplicates, no route-id collisions) and makes the endpoint.
    pub fn build(mut self) -> Result<Endpoint, BuildError> {
        if let Some(store) = self.resume.clone() {
            // §17.2: the offset query of resumable uploads.
            let query = handler(move |request| resume::query(store.clone(), request));
            let name = RESUME_QUERY_ROUTE.to_owned();
            self.routes.push(RouteDef { name, service: query, streaming: false, max_payload: None, method_hash: None });
        }
        for (name, limit) in &self.decode_limits {
            match self.routes.iter_mut().find(|route| route.name == *name) {
                Some(route) => route.max_payload = Some(*limit),
                None => return Err(BuildError::UnknownRoute(name.clone())),
            }
        }
        #[cfg(feature = "cache")]
        let cache = self.cache.unwrap_or_default();
        #[cfg(feature = "cache")]
        for (name, ttl) in &self.response_ttls {
            let route = match self.routes.iter_mut().find(|route| route.name == *name) {
                Some(route) if route.streaming => return Err(BuildError::NotCacheable(name.clone())),
                Some(route) => route,
                None => return Err(BuildError::UnknownRoute(name.clone())),
            };
            route.service = cache::caching(name, *ttl, cache.clone(), route.service.clone());
        }
        let mut config = self.config.unwrap_or_default();
        // §5.1, §15: every HELLO announces the typed methods served here.
        let methods: Vec<(u32, u64)> = self
            .routes
            .iter()
            .filter_map(|route| Some((crate::frame::route_id(&route.name), route.method_hash?)))
            .collect();
        config.methods = methods.into();
        let router = Router::new(self.routes, self.default, &self.layers, self.before, self.after, self.on_error)?;
        let stop = CancellationToken::new();
        Ok(Endpoint {
            inner: Arc::new(Inner {
                router,
                config,
                events: events::Events::new(self.callbacks),
                scheduler: Scheduler::new(stop.clone()),
                #[cfg(feature = "cache")]
                cache,
                max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
                connections: Mutex::new(HashMap::new()),
                retired: Mutex::new(Retired::default()),
                next_connection: AtomicU64::new(1),
                started: AtomicBool::new(false),
                stop,
            }),
        })
    }
}

/// One side of any number of links: its routes answer requests on all of them, and each link's
/// [`Connection`] calls the peer. Cheap to clone (shared).
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    router: Router,
    config: Config,
    events: events::Events,
    scheduler: Scheduler,
    #[cfg(feature = "cache")]
    cache: Cache,
    max_connections: usize,
    connections: Mutex<HashMap<ConnectionId, Connection>>,
    /// The totals of the connections that ended. Locked after `connections`, never before.
    retired: Mutex<Retired>,
    next_connection: AtomicU64,
    started: AtomicBool,
    stop: CancellationToken,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("connections", &self.connections().len()).finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Starts describing an endpoint.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder::default()
    }

    /// Emits [`EndpointEvent::Start`] the first time; connecting or serving starts it too.
    pub fn start(&self) {
        if !self.inner.started.swap(true, Ordering::SeqCst) {
            self.inner.events.emit(EndpointEvent::Start);
        }
    }

    /// Runs a connection over `io` (a Pipe), with the endpoint's configuration.
    pub fn connect<IO>(&self, io: IO, label: impl Into<String>) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.connect_with(io, label, self.inner.config.clone())
    }

    /// Runs a connection over `io` with its own configuration (for example [`Config::lossy`]
    /// for a serial port).
    pub fn connect_with<IO>(&self, io: IO, label: impl Into<String>, mut config: Config) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.start();
        // The routes served here are this endpoint's whatever the configuration (§5.1).
        config.methods = self.inner.config.methods.clone();
        let id = ConnectionId(self.inner.next_connection.fetch_add(1, Ordering::Relaxed));
        let dispatch: Arc<dyn Dispatch> = self.inner.clone();
        // Listed before its task can run: a link that closes at once is then removed by its own
        // `detach`, never left behind in `connections()`.
        let mut connections = self.inner.connections.lock().expect("never poisoned");
        let connection = connection::spawn(io, config, id, label.into(), dispatch);
        connections.insert(id, connection.clone());
        connection
    }

    /// Runs a link to a Python Netcore 0.1.3 peer over `io` (docs/COMPAT.md): the same routes,
    /// blueprints, hooks, middleware and handlers serve its requests, and the returned
    /// [`Connection`] calls it. Frames are written whole, one write each, but not paced: use it
    /// for serial lines and blocking function pairs (whose reads are exact) and for pipes;
    /// for TCP use [`connect_py_tcp`](Self::connect_py_tcp), which paces.
    ///
    /// Calls without a timeout wait [`PY_DEFAULT_TIMEOUT`] (10 s) and then fail with
    /// [`CallError::NoAnswerFromPython`]: the Python side sends no error replies.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn connect_py<IO>(&self, io: IO, label: impl Into<String>) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.connect_py_paced(io, label.into(), connection::py::Pacing::None)
    }

    /// Runs a link to a Python Netcore 0.1.3 peer over a TCP stream, with TCP_NODELAY and
    /// writes paced so that the Python reader never sees part of a frame (docs/COMPAT.md §3).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn connect_py_tcp(&self, stream: tokio::net::TcpStream) -> std::io::Result<Connection> {
        stream.set_nodelay(true)?;
        let label = format!("python tcp {}", stream.peer_addr()?);
        let pacing = py_tcp_pacing(&stream);
        Ok(self.connect_py_paced(stream, label, pacing))
    }

    /// Connects to a Python Netcore 0.1.3 server over TCP ([`connect_py_tcp`](Self::connect_py_tcp)).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub async fn connect_tcp_py(&self, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<Connection> {
        self.connect_py_tcp(tcp_connect(addr).await?)
    }

    /// Accepts TCP connections from Python Netcore 0.1.3 clients until
    /// [`shutdown`](Self::shutdown), each served as [`connect_py_tcp`](Self::connect_py_tcp)
    /// does. Accept errors and [`EndpointBuilder::max_connections`] are handled as in
    /// [`serve_tcp`](Self::serve_tcp), except that a refused Python peer is closed without a
    /// word: its wire has no GOAWAY (docs/COMPAT.md §1).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub async fn serve_tcp_py(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.serve(
            || listener.accept(),
            |stream, peer| {
                set_nodelay(stream, peer);
                format!("python tcp {peer}")
            },
            |stream, label| {
                let pacing = py_tcp_pacing(&stream);
                self.connect_py_paced(stream, label, pacing);
            },
            // Nothing to say in 0.1.3's wire: closing is all a refusal can be (and Python 0.1.3
            // does not notice a closed connection, COMPAT.md §9 D3).
            |stream, _| drop(stream),
        )
        .await
    }

    #[cfg(feature = "json")]
    fn connect_py_paced<IO>(&self, io: IO, label: String, pacing: connection::py::Pacing) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.start();
        let id = ConnectionId(self.inner.next_connection.fetch_add(1, Ordering::Relaxed));
        let dispatch: Arc<dyn Dispatch> = self.inner.clone();
        let options = connection::py::PyOptions { limits: Default::default(), timeout: PY_DEFAULT_TIMEOUT, pacing };
        let mut connections = self.inner.connections.lock().expect("never poisoned");
        let connection = connection::py::spawn_py(io, id, label, dispatch, options);
        connections.insert(id, connection.clone());
        connection
    }

    /// Connects to a TCP server. An error keeps its [`ErrorKind`](std::io::ErrorKind) and names the
    /// address tried: `cannot connect to 127.0.0.1:7000: Connection refused (os error 111)`.
    pub async fn connect_tcp(&self, addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<Connection> {
        let stream = tcp_connect(addr).await?;
        stream.set_nodelay(true)?;
        let label = format!("tcp {}", stream.peer_addr()?);
        Ok(self.connect(stream, label))
    }

    /// Opens a serial port (discarding what its input held) and connects over it with
    /// [`serial_config`](Self::serial_config).
    #[cfg(feature = "serial")]
    pub fn connect_serial(&self, path: &str, baud: u32) -> std::io::Result<Connection> {
        let io = crate::transport::serial::open(path, baud)?;
        Ok(self.connect_with(io, format!("serial {path}"), self.serial_config()))
    }

    /// The configuration of this endpoint's connections ([`EndpointBuilder::config`]).
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The configuration for a serial link: the endpoint's own if it uses the lossy framing;
    /// otherwise (the default [`Config::stream`] was never meant for a serial line)
    /// [`Config::lossy`] with the endpoint's fingerprint, reliable delivery, handshake timeout,
    /// waiting for the peer and spill directory.
    pub fn serial_config(&self) -> Config {
        let own = &self.inner.config;
        if own.framing == crate::frame::Framing::Lossy {
            return own.clone();
        }
        let mut config = Config::lossy()
            .with_fingerprint(own.fingerprint)
            .with_reliable(own.reliable.clone())
            .with_handshake_timeout(own.handshake_timeout);
        config.wait_for_peer = own.wait_for_peer;
        config.spill_dir = own.spill_dir.clone();
        config.methods = own.methods.clone();
        config
    }

    /// Accepts TCP connections until [`shutdown`](Self::shutdown); each is served by this
    /// endpoint's routes and answered on the connection it came from (Python's MultiPipe).
    ///
    /// A failed `accept()` never ends the loop: one about a single connection (reset, aborted)
    /// is skipped, one about the process (out of descriptors, EMFILE) is retried after 5 ms,
    /// doubling up to 1 s; both are logged with `tracing`. Connections beyond
    /// [`EndpointBuilder::max_connections`] are refused with GOAWAY LIMIT. Returns `Ok` at shutdown.
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.serve(
            || listener.accept(),
            |stream, peer| {
                set_nodelay(stream, peer);
                format!("tcp {peer}")
            },
            |stream, label| {
                self.connect(stream, label);
            },
            |stream, max| accept::refuse(stream, &self.inner.config, max),
        )
        .await
    }

    /// Accepts Unix-socket connections until [`shutdown`](Self::shutdown), as
    /// [`serve_tcp`](Self::serve_tcp) does.
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: tokio::net::UnixListener) -> std::io::Result<()> {
        let next = &self.inner.next_connection;
        self.serve(
            || listener.accept(),
            |_, _| format!("unix #{}", next.load(Ordering::Relaxed)),
            |stream, label| {
                self.connect(stream, label);
            },
            |stream, max| accept::refuse(stream, &self.inner.config, max),
        )
        .await
    }

    /// The accept loop of every `serve_*`: `accept` takes the next peer, `label` names it,
    /// `connect` serves it, and `refuse` turns it away (told why, if its wire can say so) while
    /// [`EndpointBuilder::max_connections`] connections are held.
    async fn serve<S, A, F>(
        &self,
        mut accept: impl FnMut() -> F,
        label: impl Fn(&S, A) -> String,
        connect: impl Fn(S, String),
        refuse: impl Fn(S, usize),
    ) -> std::io::Result<()>
    where
        F: Future<Output = std::io::Result<(S, A)>>,
    {
        self.start();
        let mut backoff = accept::Backoff::default();
        loop {
            let accepted = tokio::select! {
                () = self.inner.stop.cancelled() => return Ok(()),
                accepted = accept() => accepted,
            };
            match accepted {
                Ok((stream, addr)) => {
                    backoff.reset();
                    let label = label(&stream, addr);
                    let max = self.inner.max_connections;
                    if self.inner.connections.lock().expect("never poisoned").len() >= max {
                        tracing::warn!(%label, max, "refused: the endpoint serves its max_connections");
                        refuse(stream, max);
                        continue;
                    }
                    connect(stream, label);
                }
                Err(err) if accept::concerns_one_connection(&err) => continue,
                Err(err) => {
                    let wait = backoff.next();
                    tracing::warn!(error = %err, ?wait, "accept failed; retrying");
                    tokio::select! {
                        () = self.inner.stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The connections not closed yet (connecting or open), by id. A closed one is never listed,
    /// even while its task still writes its last bytes ([`Connection::closed`] waits for those);
    /// it still counts toward [`EndpointBuilder::max_connections`] until then, since it holds
    /// its descriptor.
    pub fn connections(&self) -> Vec<Connection> {
        let registry = self.inner.connections.lock().expect("never poisoned");
        let mut open: Vec<_> = registry.values().filter(|c| !c.is_closed()).cloned().collect();
        drop(registry);
        open.sort_by_key(Connection::id);
        open
    }

    /// The statistics of every connection added up (see [`EndpointStats`]): the live ones'
    /// snapshots ([`Connection::stats`]) and the totals of those that ended. Each connection is
    /// counted once, live or ended, even if it ends meanwhile.
    pub async fn stats(&self) -> EndpointStats {
        let mut total = EndpointStats::default();
        let live: Vec<Connection> = {
            let registry = self.inner.connections.lock().expect("never poisoned");
            total.add_closed(&self.inner.retired.lock().expect("never poisoned"));
            registry.values().cloned().collect()
        };
        for connection in live {
            total.add_live(&connection.stats().await);
        }
        total
    }

    /// The task scheduler; its tasks stop at shutdown.
    pub fn scheduler(&self) -> &Scheduler {
        &self.inner.scheduler
    }

    /// The TTL cache.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Every event from now on, as a stream (see [`EndpointEvent`]).
    pub fn events(&self) -> broadcast::Receiver<EndpointEvent> {
        self.inner.events.subscribe()
    }

    /// Stops accepting, stops scheduled tasks, and closes every connection gracefully: calls and
    /// handlers in flight finish first. Emits [`EndpointEvent::Stop`].
    pub async fn shutdown(&self) {
        self.inner.events.emit(EndpointEvent::Stop);
        self.inner.stop.cancel();
        for connection in self.connections() {
            connection.close().await;
        }
    }
}

/// Latency only: a socket that refuses the option is still served.
/// Resolves `addr` and connects to the first address that answers, as `TcpStream::connect` does,
/// but with errors that name the address: `cannot connect to 127.0.0.1:7000: Connection refused`.
async fn tcp_connect(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<tokio::net::TcpStream> {
    use std::io::{Error, ErrorKind};
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|err| Error::new(err.kind(), format!("cannot resolve the address to connect to: {err}")))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some((addr, err)),
        }
    }
    Err(match last {
        Some((addr, err)) if addrs.len() == 1 => Error::new(err.kind(), format!("cannot connect to {addr}: {err}")),
        Some((addr, err)) => Error::new(
            err.kind(),
            format!("cannot connect to any of {} addresses (the last, {addr}: {err})", addrs.len()),
        ),
        None => Error::new(ErrorKind::InvalidInput, "the address to connect to resolved to no address"),
    })
}

fn set_nodelay(stream: &tokio::net::TcpStream, peer: std::net::SocketAddr) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %err, "set_nodelay failed");
    }
}

/// How writes to a Python peer over `stream` are paced (docs/COMPAT.md §3).
#[cfg(feature = "json")]
fn py_tcp_pacing(stream: &tokio::net::TcpStream) -> connection::py::Pacing {
    #[cfg(unix)]
    let pacing = connection::py::Pacing::Tcp(std::os::fd::AsRawFd::as_raw_fd(stream));
    #[cfg(not(unix))]
    let pacing = {
        let _ = stream;
        connection::py::Pacing::None
    };
    pacing
}

impl Dispatch for Inner {
    fn route_name(&self, route: &Route) -> Arc<str> {
        self.router.name(route)
    }

    fn streams(&self, route: &Route) -> bool {
        self.router.streams(route)
    }

    fn max_payload(&self, route: &Route) -> Option<u64> {
        self.router.max_payload(route)
    }

    fn handle(
        self: Arc<Self>,
        #[cfg_attr(not(feature = "cache"), allow(unused_mut))] mut request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, HandlerError>> + Send>> {
        #[cfg(feature = "cache")]
        {
            request.cache = Some(self.cache.clone());
        }
        let connection = request.connection_id();
        let route = request.route.clone();
        self.events.emit(EndpointEvent::Request { connection, route: route.clone() });
        Box::pin(async move {
            let result = self.router.call(request).await;
            let ok = result.is_ok();
            self.events.emit(EndpointEvent::Response { connection, route: route.clone(), ok });
            if let Err(err) = &result {
                connection::trace::handler_error(&route, err.code.0, &err.message);
                self.events.emit(EndpointEvent::Error { connection, route, message: err.to_string() });
            }
            result
        })
    }

    fn emit(&self, event: EndpointEvent) {
        self.events.emit(event);
    }

    fn detach(&self, id: ConnectionId, stats: &ConnectionStats) {
        let mut registry = self.connections.lock().expect("never poisoned");
        registry.remove(&id);
        // Under the registry's lock: `Endpoint::stats` sees the connection live or retired, once.
        self.retired.lock().expect("never poisoned").add(stats);
    }
}
