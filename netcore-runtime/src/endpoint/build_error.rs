//! What [`EndpointBuilder::build`](super::EndpointBuilder::build) refuses.

use thiserror::Error;

/// An endpoint could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two routes have the same name.
    #[error("route {0:?} is registered twice")]
    DuplicateRoute(String),
    /// Two route names hash to the same route id (docs/PROTOCOL.md §5.2); rename one.
    #[error("routes {0:?} and {1:?} have the same route id {2:#010x}; rename one")]
    RouteIdCollision(String, String, u32),
    /// A setting names a route that is not registered.
    #[error("no route {0:?} is registered")]
    UnknownRoute(String),
    /// `EndpointBuilder::cache_responses` (feature `cache`) names a streaming route, whose
    /// request body is never stored and so cannot key a cache.
    #[error("route {0:?} streams its requests, so its responses cannot be cached by request body; cache in the handler with Request::cache")]
    NotCacheable(String),
}
