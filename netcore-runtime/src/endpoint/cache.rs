//! Response caching: a route's answers kept in the endpoint's [`Cache`] (moka underneath).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tower::ServiceExt;

use super::router::{handler, RouteService};
use super::{Cache, HandlerError, Headers, Request, Response};
use crate::frame::Priority;
use crate::layout::fnv1a64;
use crate::session::{Body, Payload};

/// A stored answer of [`caching`]: the request payload it answers (compared on a hit, so that two
/// payloads with the same hash never share an answer) and the response.
#[derive(Clone)]
struct CachedResponse {
    request: Bytes,
    body: Option<Bytes>,
    headers: Headers,
    priority: Option<Priority>,
}

/// Wraps `service`, the route `route`, so that its answers are kept in `cache` for `ttl`, keyed
/// by the route and the request payload (`EndpointBuilder::cache_responses`).
pub(crate) fn caching(route: &str, ttl: Duration, cache: Cache, service: RouteService) -> RouteService {
    let route: Arc<str> = route.into();
    handler(move |request: Request| {
        let (service, cache, route) = (service.clone(), cache.clone(), route.clone());
        async move {
            let payload = match request.payload() {
                Payload::Memory(bytes) => bytes.clone(),
                _ => return service.oneshot(request).await.map_err(HandlerError::from_box),
            };
            // Namespaced, so that it never meets a key of the user's.
            let key = format!("netcore:response:{route}:{:016x}:{}", fnv1a64(&payload), payload.len());
            if let Some(hit) = cache.get::<CachedResponse>(&key).filter(|hit| hit.request == payload) {
                let mut response = match hit.body {
                    Some(bytes) => Response::bytes(bytes),
                    None => Response::empty(),
                };
                response.headers = hit.headers;
                response.priority = hit.priority;
                return Ok(response);
            }
            let response = service.oneshot(request).await.map_err(HandlerError::from_box)?;
            let body = match &response.body {
                None => None,
                Some(Body::Bytes(bytes)) => Some(bytes.clone()),
                Some(Body::Chain(..) | Body::Reader { .. } | Body::Supplied { .. } | Body::Open(_)) => {
                    return Ok(response)
                }
            };
            let entry = CachedResponse {
                request: payload,
                body,
                headers: response.headers.clone(),
                priority: response.priority,
            };
            cache.insert(key, entry, Some(ttl));
            Ok(response)
        }
    })
}
