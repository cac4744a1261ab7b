//! A connection without an endpoint: it calls its peer and serves nothing, so a client needs
//! neither routes nor an [`Endpoint`](crate::Endpoint) (issue 13: the connection layer stands on
//! its own).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::Response;
use super::{Connection, ConnectionEvent, ConnectionId, ConnectionStats, Dispatch, ErrorCode, HandlerError, Request};
use crate::frame::Route;
use crate::session::Config;

/// Ids of standalone connections, counted apart from any endpoint's.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Serves no route: every request the peer sends is answered NOT_FOUND, one-way messages are
/// dropped, and events go nowhere.
struct NoRoutes;

impl Dispatch for NoRoutes {
    fn route_name(&self, route: &Route) -> Arc<str> {
        match route {
            Route::Name(name) => Arc::from(name.as_str()),
            Route::Id(id) => Arc::from(format!("#{id:08x}")),
        }
    }

    fn streams(&self, _: &Route) -> bool {
        false
    }

    fn max_payload(&self, _: &Route) -> Option<u64> {
        None
    }

    fn handle(
        self: Arc<Self>,
        request: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, HandlerError>> + Send>> {
        let message = format!("no route {}: this side is a connection without an endpoint", request.route());
        Box::pin(async move { Err(HandlerError::new(ErrorCode::NOT_FOUND, message)) })
    }

    fn emit(&self, _: ConnectionEvent) {}

    fn detach(&self, _: ConnectionId, _: &ConnectionStats) {}
}

impl Connection {
    /// Runs a connection over `io` that only calls its peer: [`call`](Self::call),
    /// [`call_stream`](Self::call_stream), [`notify`](Self::notify) and the rest work as on an
    /// endpoint's connection, while every request the peer sends is answered NOT_FOUND and its
    /// one-way messages are dropped. Use an [`Endpoint`](crate::Endpoint) to serve routes, to
    /// see events or to hold many connections. Must be called within a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use netcore_runtime::{Connection, Endpoint, Response};
    ///
    /// let server = Endpoint::builder().route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) }).build()?;
    /// let (a, b) = tokio::io::duplex(64 * 1024);
    /// server.connect(a, "server side");
    /// let client = Connection::open(b, netcore_runtime::session::Config::default(), "client side");
    /// let reply = client.call("/echo", b"hi".to_vec()).await?;
    /// assert_eq!(reply.bytes()?.as_ref(), b"hi");
    /// # Ok(()) }
    /// ```
    pub fn open<IO>(io: IO, config: Config, label: impl Into<String>) -> Connection
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let id = ConnectionId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        super::spawn(io, config, id, label.into(), Arc::new(NoRoutes))
    }
}
