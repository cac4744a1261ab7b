//! Per-method compatibility (docs/PROTOCOL.md §5.1, §15; docs/TYPED.md "Evolving a service"): an
//! old and a new build of one service, each serving its own and calling the other's, over one
//! connection. What both have alike works; what differs fails at once, before anything is sent.

use netcore::session::Config;
use netcore::{CallError, Endpoint, HandlerError};

mod old {
    #[netcore::service(prefix = "/thing")]
    pub trait Thing {
        /// Unchanged.
        async fn same(&self, x: u32) -> u32;
        /// Its argument becomes a string in the new build.
        async fn changed(&self, x: u32) -> u32;
    }
}

mod new {
    #[netcore::service(prefix = "/thing")]
    pub trait Thing {
        async fn same(&self, x: u32) -> u32;
        async fn changed(&self, x: String) -> u32;
        /// Only the new build has it.
        async fn added(&self) -> bool;
    }
}

struct Impl;

impl old::Thing for Impl {
    async fn same(&self, x: u32) -> Result<u32, HandlerError> {
        Ok(x + 1)
    }
    async fn changed(&self, x: u32) -> Result<u32, HandlerError> {
        Ok(x)
    }
}

impl new::Thing for Impl {
    async fn same(&self, x: u32) -> Result<u32, HandlerError> {
        Ok(x + 1)
    }
    async fn changed(&self, x: String) -> Result<u32, HandlerError> {
        Ok(x.len() as u32)
    }
    async fn added(&self) -> Result<bool, HandlerError> {
        Ok(true)
    }
}

/// The old build's connection to the new one and the new build's to the old, each side serving
/// its own build, both with `config`.
async fn pair(config: Config) -> (netcore::Connection, netcore::Connection) {
    let old_side = Endpoint::builder().config(config.clone()).blueprint(old::ThingServer::blueprint(Impl)).build();
    let new_side = Endpoint::builder().config(config).blueprint(new::ThingServer::blueprint(Impl)).build();
    let (a, b) = tokio::io::duplex(64 * 1024);
    (old_side.unwrap().connect(a, "old"), new_side.unwrap().connect(b, "new"))
}

#[tokio::test]
async fn what_both_builds_have_alike_works_and_the_rest_fails_at_once() {
    let (to_new, to_old) = pair(Config::stream()).await;
    let (old_client, new_client) = (old::ThingClient::new(to_new.clone()), new::ThingClient::new(to_old.clone()));

    assert_eq!(old_client.same(1).await.unwrap(), 2);
    assert_eq!(new_client.same(41).await.unwrap(), 42);

    let err = old_client.changed(3).await.unwrap_err();
    let ours = old::ThingServer::changed_hash();
    let theirs = new::ThingServer::changed_hash();
    assert_ne!(ours, theirs);
    assert_eq!(err, CallError::Incompatible { method: "/thing/changed".into(), ours, theirs: Some(theirs) });
    assert!(err.to_string().starts_with("/thing/changed is incompatible with the peer"), "{err}");
    let err = new_client.changed("abc".into()).await.unwrap_err();
    assert!(matches!(err, CallError::Incompatible { theirs: Some(t), .. } if t == ours), "{err:?}");

    let err = new_client.added().await.unwrap_err();
    assert_eq!(
        err,
        CallError::Incompatible { method: "/thing/added".into(), ours: new::ThingServer::added_hash(), theirs: None }
    );
    assert_eq!(err.to_string(), "/thing/added is incompatible with the peer: the peer does not serve it");

    // The failures sent nothing and closed nothing.
    assert!(!to_new.is_closed() && !to_old.is_closed());
    assert_eq!(old_client.same(7).await.unwrap(), 8);
    assert_eq!(new_client.same(8).await.unwrap(), 9);
}

#[tokio::test]
async fn unchanged_methods_hash_alike_and_only_changed_ones_differ() {
    assert_eq!(old::ThingServer::same_hash(), new::ThingServer::same_hash());
    assert_ne!(old::ThingServer::changed_hash(), new::ThingServer::changed_hash());
    assert_ne!(old::ThingServer::fingerprint(), new::ThingServer::fingerprint());
}

#[tokio::test]
async fn strict_mode_refuses_the_connection_on_any_difference() {
    let old_side = Endpoint::builder()
        .config(Config::stream().with_fingerprint(old::ThingServer::fingerprint()))
        .blueprint(old::ThingServer::blueprint(Impl))
        .build()
        .unwrap();
    let new_side = Endpoint::builder()
        .config(Config::stream().with_fingerprint(new::ThingServer::fingerprint()))
        .blueprint(new::ThingServer::blueprint(Impl))
        .build()
        .unwrap();
    let (a, b) = tokio::io::duplex(4096);
    new_side.connect(b, "new");
    let err = old_side.connect(a, "old").ready().await.unwrap_err();
    assert!(err.to_string().contains("fingerprint"), "{err}");
}

#[tokio::test]
async fn a_peer_without_a_methods_table_is_not_checked() {
    // An untyped server answering the old build's `same` route by hand: no table, no check.
    let server = Endpoint::builder()
        .route("/thing/same", |request: netcore::Request| async move {
            let (x,): (u32,) = request.decode()?;
            netcore::Response::encode(&(x * 10))
        })
        .build()
        .unwrap();
    let client = Endpoint::builder().build().unwrap();
    let (a, b) = tokio::io::duplex(4096);
    server.connect(b, "server");
    let conn = client.connect(a, "client");
    assert!(conn.ready().await.unwrap().methods.is_none());
    assert_eq!(old::ThingClient::new(conn).same(3).await.unwrap(), 30);
}
