//! Routes, blueprints and the handler chain: route lookup, before hooks, layers, the route's
//! service (or the default handler), the error handler, after hooks (in this order: see
//! `EndpointBuilder::before_request`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::{BodyStream, BuildError, ErrorCode, HandlerError, Request, Response};
use crate::connection::ConnectionId;
use crate::frame::{route_id, Route};

/// A route's handler as a tower service; layers wrap it.
pub type RouteService = BoxCloneSyncService<Request, Response, BoxError>;

pub(crate) type LayerFn = Arc<dyn Fn(RouteService) -> RouteService + Send + Sync>;
pub(crate) type BeforeHook = Arc<dyn Fn(&mut Request) -> Result<(), HandlerError> + Send + Sync>;
pub(crate) type AfterHook = Arc<dyn Fn(&RequestInfo, &mut Response) + Send + Sync>;
pub(crate) type ErrorHandler = Arc<dyn Fn(&RequestInfo, HandlerError) -> Result<Response, HandlerError> + Send + Sync>;

/// What hooks and error handlers know of a request once its handler has taken it.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The route.
    pub route: Arc<str>,
    /// The connection it came on.
    pub connection: ConnectionId,
}

/// Turns an async function into a route service.
pub fn handler<F, Fut>(f: F) -> RouteService
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
{
    BoxCloneSyncService::new(tower::service_fn(move |request| {
        let fut = f(request);
        async move { fut.await.map_err(BoxError::from) }
    }))
}

/// Turns an async function of a request and its streamed payload into a route service.
pub(crate) fn streaming_handler<F, Fut>(f: F) -> RouteService
where
    F: Fn(Request, BodyStream) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
{
    handler(move |mut request: Request| {
        let (f, body) = (f.clone(), request.body_stream());
        async move { f(request, body?).await }
    })
}

/// A route as registered: its full name, its service, whether its payloads are streamed, and the
/// largest payload it takes (routes that decode it whole).
#[derive(Clone)]
pub(crate) struct RouteDef {
    pub(crate) name: String,
    pub(crate) service: RouteService,
    pub(crate) streaming: bool,
    pub(crate) max_payload: Option<u64>,
    /// The layout hash of a typed route's method, announced in the HELLO's METHODS table (§5.1).
    pub(crate) method_hash: Option<u64>,
}

impl RouteDef {
    /// A streaming route: no decode limit, no method hash.
    pub(crate) fn streaming(name: String, service: RouteService) -> Self {
        Self { name, service, streaming: true, max_payload: None, method_hash: None }
    }
}

/// What [`Blueprint::route_service`] and
/// [`EndpointBuilder::route_service`](super::EndpointBuilder::route_service) take: a service,
/// and the largest payload it takes if it decodes payloads whole (a typed route's
/// [`codec::DECODE_LIMIT`](crate::codec::DECODE_LIMIT)): larger requests are refused at their
/// first frame (docs/PROTOCOL.md §8.4).
pub trait IntoRouteService {
    /// The service and its payload limit.
    fn into_route_service(self) -> (RouteService, Option<u64>);

    /// The layout hash of the typed method the route serves (docs/PROTOCOL.md §15), which the
    /// endpoint announces in its HELLO's METHODS table; `None` (the default) for untyped routes.
    fn method_hash(&self) -> Option<u64> {
        None
    }

    /// Whether its requests' payloads are streamed to it as they arrive (docs/PROTOCOL.md §8.3),
    /// as for [`Blueprint::streaming_route`]; `false` (the default) stores them first.
    fn streaming(&self) -> bool {
        false
    }
}

impl IntoRouteService for RouteService {
    fn into_route_service(self) -> (RouteService, Option<u64>) {
        (self, None)
    }
}

/// Wraps a tower layer so it can be applied to every route.
pub(crate) fn layer_fn<L>(layer: L) -> LayerFn
where
    L: Layer<RouteService> + Send + Sync + 'static,
    L::Service: Service<Request, Response = Response, Error = BoxError> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    Arc::new(move |inner| BoxCloneSyncService::new(layer.layer(inner)))
}

/// Routes under a common prefix, registered onto an endpoint together (Python's Blueprint).
#[derive(Clone)]
pub struct Blueprint {
    prefix: String,
    routes: Vec<RouteDef>,
    layers: Vec<LayerFn>,
}

impl std::fmt::Debug for Blueprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.routes.iter().map(|route| &route.name).collect();
        f.debug_struct("Blueprint").field("prefix", &self.prefix).field("routes", &names).finish()
    }
}

impl Blueprint {
    /// A blueprint whose routes are registered as `prefix` + their own name.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into(), routes: Vec::new(), layers: Vec::new() }
    }

    /// Adds a route handled by an async function.
    pub fn route<F, Fut>(self, name: &str, f: F) -> Self
    where
        F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
    {
        self.route_service(name, handler(f))
    }

    /// Adds a route handled by a service (see [`IntoRouteService`]).
    pub fn route_service(mut self, name: &str, service: impl IntoRouteService) -> Self {
        let (method_hash, streaming) = (service.method_hash(), service.streaming());
        let (service, max_payload) = service.into_route_service();
        let name = format!("{}{}", self.prefix, name);
        self.routes.push(RouteDef { name, service, streaming, max_payload, method_hash });
        self
    }

    /// Adds a route whose payloads are streamed to an async function as they arrive (see
    /// [`EndpointBuilder::streaming_route`](super::EndpointBuilder::streaming_route)).
    pub fn streaming_route<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Request, BodyStream) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
    {
        let name = format!("{}{}", self.prefix, name);
        self.routes.push(RouteDef {
            name,
            service: streaming_handler(f),
            streaming: true,
            max_payload: None,
            method_hash: None,
        });
        self
    }

    /// Wraps this blueprint's routes (inside the endpoint's layers) in a tower layer.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<RouteService> + Send + Sync + 'static,
        L::Service: Service<Request, Response = Response, Error = BoxError> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.layers.push(layer_fn(layer));
        self
    }

    pub(crate) fn into_routes(self) -> impl Iterator<Item = RouteDef> {
        let layers = self.layers;
        self.routes.into_iter().map(move |route| RouteDef { service: apply(&layers, route.service), ..route })
    }
}

/// Applies layers so that the first one added is the outermost.
pub(crate) fn apply(layers: &[LayerFn], service: RouteService) -> RouteService {
    layers.iter().rev().fold(service, |service, layer| layer(service))
}

struct Entry {
    name: Arc<str>,
    service: RouteService,
    streaming: bool,
    max_payload: Option<u64>,
}

/// The frozen routing table and handler chain of an endpoint.
pub(crate) struct Router {
    routes: HashMap<u32, Entry>,
    default: Option<RouteService>,
    pub(crate) before: Vec<BeforeHook>,
    pub(crate) after: Vec<AfterHook>,
    pub(crate) on_error: Option<ErrorHandler>,
}

impl Router {
    pub(crate) fn new(
        routes: Vec<RouteDef>,
        default: Option<RouteService>,
        layers: &[LayerFn],
        before: Vec<BeforeHook>,
        after: Vec<AfterHook>,
        on_error: Option<ErrorHandler>,
    ) -> Result<Self, BuildError> {
        let mut table: HashMap<u32, Entry> = HashMap::new();
        for RouteDef { name, service, streaming, max_payload, .. } in routes {
            let id = route_id(&name);
            if let Some(existing) = table.get(&id) {
                return Err(if *existing.name == *name {
                    BuildError::DuplicateRoute(name)
                } else {
                    BuildError::RouteIdCollision(existing.name.to_string(), name, id)
                });
            }
            table.insert(id, Entry { name: name.into(), service: apply(layers, service), streaming, max_payload });
        }
        let default = default.map(|service| apply(layers, service));
        Ok(Self { routes: table, default, before, after, on_error })
    }

    /// The registered name of a route, or the best name for an unknown one.
    pub(crate) fn name(&self, route: &Route) -> Arc<str> {
        match route {
            Route::Name(name) => Arc::from(name.as_str()),
            Route::Id(id) => match self.routes.get(id) {
                Some(entry) => entry.name.clone(),
                None => Arc::from(format!("#{id:08x}")),
            },
        }
    }

    /// The registered route `route` names, if any: by id, or by name (which must match exactly,
    /// not merely by hash).
    fn entry(&self, route: &Route) -> Option<&Entry> {
        match route {
            Route::Name(name) => self.routes.get(&route_id(name)).filter(|entry| *entry.name == **name),
            Route::Id(id) => self.routes.get(id),
        }
    }

    /// Whether requests to `route` are streamed to their handler.
    pub(crate) fn streams(&self, route: &Route) -> bool {
        self.entry(route).is_some_and(|entry| entry.streaming)
    }

    /// The largest payload `route` takes, if it has a limit (§8.4).
    pub(crate) fn max_payload(&self, route: &Route) -> Option<u64> {
        self.entry(route).and_then(|entry| entry.max_payload)
    }

    /// Runs the handler chain for one request.
    pub(crate) async fn call(&self, request: Request) -> Result<Response, HandlerError> {
        let info = RequestInfo { route: request.route.clone(), connection: request.connection_id() };
        let mut result = self.run(request, &info).await;
        if let (Err(err), Some(on_error)) = (&result, &self.on_error) {
            result = on_error(&info, err.clone());
        }
        if let Ok(response) = &mut result {
            for hook in &self.after {
                hook(&info, response);
            }
        }
        result
    }

    /// The order of [`call`](Self::call) (documented on `EndpointBuilder::before_request`): route
    /// lookup first, so an unknown route is NOT_FOUND whatever the hooks would say; then the before
    /// hooks in registration order (the first error answers); then the layers, outermost first,
    /// around the route's service or the default handler.
    async fn run(&self, mut request: Request, info: &RequestInfo) -> Result<Response, HandlerError> {
        // A route sent by name must match the registered name, not merely its hash.
        let entry = self.routes.get(&request.route_id).filter(|entry| *entry.name == *info.route);
        let service = match (entry, &self.default) {
            (Some(entry), _) => entry.service.clone(),
            (None, Some(default)) => default.clone(),
            (None, None) => {
                return Err(HandlerError::new(ErrorCode::NOT_FOUND, format!("no route {}", info.route)));
            }
        };
        for hook in &self.before {
            hook(&mut request)?;
        }
        service.oneshot(request).await.map_err(HandlerError::from_box)
    }
}
