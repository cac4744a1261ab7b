//! What generated code calls: typed calls over a [`Connection`] and typed routes on a
//! [`Blueprint`](crate::endpoint::Blueprint). Not for direct use: generated clients and servers
//! wrap these (see netcore-codegen).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::connection::{CallOptions, Connection, LinkState};
use crate::endpoint::{handler, CallError, HandlerError, IntoRouteService, Request, Response, RouteService};
use crate::frame::{Priority, Route};

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

/// Calls route `route`, named `name`, with `args` (a tuple of the method's arguments) and
/// decodes the reply, after [`check_method`] with the method's layout hash `hash`. The name is
/// not sent: a timeout error says it.
pub async fn call<A, R>(
    connection: &Connection,
    route: u32,
    name: &str,
    hash: u64,
    args: &A,
    priority: Option<u8>,
    timeout_ms: Option<u64>,
) -> Result<R, CallError>
where
    A: Serialize + ?Sized,
    R: DeserializeOwned,
{
    let timeout = timeout_ms.map(Duration::from_millis);
    check_method(connection, route, name, hash, timeout).await?;
    let body = codec::encode(args)?;
    let mut opts = CallOptions::default().priority(priority.map_or_else(Priority::default, Priority::new));
    opts.timeout = timeout;
    connection.call_named(Route::Id(route), Some(name), body.into(), opts).await?.decode()
}

/// Sends a one-way message to route `route`, named `name`, with `args`, after [`check_method`]
/// with the method's layout hash `hash`.
pub async fn notify<A>(
    connection: &Connection,
    route: u32,
    name: &str,
    hash: u64,
    args: &A,
    priority: Option<u8>,
) -> Result<(), CallError>
where
    A: Serialize + ?Sized,
{
    check_method(connection, route, name, hash, None).await?;
    let body = codec::encode(args)?;
    let opts = CallOptions::default().priority(priority.map_or_else(Priority::default, Priority::new));
    connection.notify_with(Route::Id(route), body, opts).await
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
    R: Serialize + 'static,
    F: Fn(Arc<S>, A) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
{
    TypedRoute(
        handler(move |request: Request| {
            let (service, f) = (service.clone(), f.clone());
            async move {
                let args: A = request.decode()?;
                let result = f(service, args).await?;
                Response::encode(&result)
            }
        }),
        hash,
    )
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

    #[test]
    fn combined_fingerprints_ignore_order() {
        assert_eq!(combine_fingerprints(&[7]), 7);
        assert_eq!(combine_fingerprints(&[1, 2, 3]), combine_fingerprints(&[3, 1, 2]));
        assert_ne!(combine_fingerprints(&[1, 2]), combine_fingerprints(&[1, 3]));
    }
}
