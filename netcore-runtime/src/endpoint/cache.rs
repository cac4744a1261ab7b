//! A concurrent cache whose entries expire after their own time to live (moka underneath).

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tower::ServiceExt;

use super::router::{handler, RouteService};
use super::wire::Headers;
use super::{HandlerError, Request, Response};
use crate::frame::Priority;
use crate::layout::fnv1a64;
use crate::session::{Body, Payload};

/// Most entries kept; the least useful are evicted beyond it.
const DEFAULT_CAPACITY: u64 = 10_000;

#[derive(Clone)]
struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    ttl: Option<Duration>,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

/// Values of any type by string key, each with its own time to live. Cheap to clone (shared).
#[derive(Clone)]
pub struct Cache {
    inner: moka::sync::Cache<String, Entry>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("entries", &self.inner.entry_count()).finish()
    }
}

impl Default for Cache {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Cache {
    /// A cache holding at most `capacity` entries.
    pub fn with_capacity(capacity: u64) -> Self {
        Self { inner: moka::sync::Cache::builder().max_capacity(capacity).expire_after(PerEntryTtl).build() }
    }

    /// Stores `value` under `key` for `ttl` (`None`: until evicted or removed).
    pub fn insert<T: Send + Sync + 'static>(&self, key: impl Into<String>, value: T, ttl: Option<Duration>) {
        self.inner.insert(key.into(), Entry { value: Arc::new(value), ttl });
    }

    /// The live value under `key`, if it has type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        self.inner.get(key).and_then(|entry| entry.value.downcast_ref::<T>().cloned())
    }

    /// Whether a live value is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.inner.contains_key(key)
    }

    /// Removes the value under `key`.
    pub fn remove(&self, key: &str) {
        self.inner.invalidate(key);
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.inner.invalidate_all();
    }
}

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
                Some(Body::Reader { .. } | Body::Supplied { .. } | Body::Open(_)) => return Ok(response),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_own_ttl() {
        let cache = Cache::default();
        cache.insert("short", 1u32, Some(Duration::from_millis(30)));
        cache.insert("long", String::from("kept"), Some(Duration::from_secs(60)));
        cache.insert("forever", 3u8, None);
        assert_eq!(cache.get::<u32>("short"), Some(1));
        assert_eq!(cache.get::<u8>("short"), None, "wrong type");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get::<u32>("short"), None);
        assert_eq!(cache.get::<String>("long").as_deref(), Some("kept"));
        assert_eq!(cache.get::<u8>("forever"), Some(3));
        cache.remove("long");
        assert!(!cache.contains("long"));
    }
}
