//! The typed layer end to end: the same service declared in a schema file and with the macro has
//! the same fingerprint, and a client from either calls a server from the other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use netcore::endpoint::ErrorCode;
use netcore::session::Config;
use netcore::{CallError, Endpoint, HandlerError};

// schemas/users.ncs, compiled by the build.rs of schemas/ (the workspace's example schemas).
use netcore_example_schemas::users as from_schema;

mod from_macro {
    use super::from_schema::{User, UserStatus};

    /// User accounts.
    #[netcore::service(prefix = "/user")]
    pub trait Users {
        /// Fetches a user by id.
        async fn get(&self, id: u32) -> Option<User>;
        /// Creates a user and returns its id.
        #[netcore(timeout_ms = 2000)]
        async fn create(&self, name: String, email: Option<String>) -> u32;
        /// Lists users whose name starts with a prefix.
        async fn list(&self, prefix: String, limit: u32) -> Vec<User>;
        /// The account's status.
        async fn status(&self, id: u32) -> UserStatus;
        /// Deletes a user; true if it existed.
        #[netcore(priority = 5)]
        async fn delete(&self, id: u32) -> bool;
        /// Tells the peer a user changed (one-way).
        #[netcore(event)]
        async fn changed(&self, id: u32);
    }
}

/// The same service over the macro's own Rust types, mirroring the schema's: nested structs
/// (`User` holds a `Timestamp`), an enum with unit, struct and tuple variants.
mod from_macro_types {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, netcore::Schema)]
    pub struct Timestamp {
        pub millis: u64,
    }

    #[derive(Serialize, Deserialize, netcore::Schema)]
    pub struct User {
        pub id: u32,
        pub name: String,
        pub email: Option<String>,
        pub tags: Vec<String>,
        pub created: Timestamp,
    }

    #[derive(Serialize, Deserialize, netcore::Schema)]
    pub enum UserStatus {
        Active,
        Suspended { reason: String, until: Option<Timestamp> },
        Deleted(u64),
    }

    #[netcore::service(prefix = "/user")]
    pub trait Users {
        async fn get(&self, id: u32) -> Option<User>;
        async fn create(&self, name: String, email: Option<String>) -> u32;
        async fn list(&self, prefix: String, limit: u32) -> Vec<User>;
        async fn status(&self, id: u32) -> UserStatus;
        async fn delete(&self, id: u32) -> bool;
        #[netcore(event)]
        async fn changed(&self, id: u32);
    }

    /// Like `User` but with `tags` after `created`: same types, another layout.
    pub mod reordered {
        use super::Timestamp;
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize, netcore::Schema)]
        pub struct User {
            pub id: u32,
            pub name: String,
            pub email: Option<String>,
            pub created: Timestamp,
            pub tags: Vec<String>,
        }

        #[netcore::service(prefix = "/user")]
        pub trait Users {
            async fn get(&self, id: u32) -> Option<User>;
            async fn create(&self, name: String, email: Option<String>) -> u32;
            async fn list(&self, prefix: String, limit: u32) -> Vec<User>;
            async fn status(&self, id: u32) -> super::UserStatus;
            async fn delete(&self, id: u32) -> bool;
            #[netcore(event)]
            async fn changed(&self, id: u32);
        }
    }
}

use from_schema::{Timestamp, User, UserStatus};

#[derive(Default)]
struct Store {
    users: Mutex<BTreeMap<u32, User>>,
    changes: AtomicU32,
    notify: tokio::sync::Notify,
}

impl Store {
    fn get(&self, id: u32) -> Option<User> {
        self.users.lock().unwrap().get(&id).cloned()
    }

    fn create(&self, name: String, email: Option<String>) -> Result<u32, HandlerError> {
        if name.is_empty() {
            return Err(HandlerError::bad_request("empty name"));
        }
        let mut users = self.users.lock().unwrap();
        let id = users.len() as u32 + 1;
        users.insert(
            id,
            User { id, name, email, tags: vec!["new".into()], created: Timestamp { millis: 1_700_000_000_000 } },
        );
        Ok(id)
    }

    fn list(&self, prefix: String, limit: u32) -> Vec<User> {
        let users = self.users.lock().unwrap();
        users.values().filter(|u| u.name.starts_with(&prefix)).take(limit as usize).cloned().collect()
    }

    fn status(&self, id: u32) -> UserStatus {
        match id {
            1 => UserStatus::Active,
            2 => UserStatus::Suspended { reason: "spam".into(), until: Some(Timestamp { millis: 5 }) },
            other => UserStatus::Deleted(u64::from(other)),
        }
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The same store behind the schema-generated trait and the macro-generated one.
#[derive(Clone, Default)]
struct Service(Arc<Store>);

impl from_schema::Users for Service {
    async fn get(&self, id: u32) -> Result<Option<User>, HandlerError> {
        Ok(self.0.get(id))
    }
    async fn create(&self, name: String, email: Option<String>) -> Result<u32, HandlerError> {
        self.0.create(name, email)
    }
    async fn list(&self, prefix: String, limit: u32) -> Result<Vec<User>, HandlerError> {
        Ok(self.0.list(prefix, limit))
    }
    async fn status(&self, id: u32) -> Result<UserStatus, HandlerError> {
        Ok(self.0.status(id))
    }
    async fn delete(&self, id: u32) -> Result<bool, HandlerError> {
        Ok(self.0.users.lock().unwrap().remove(&id).is_some())
    }
    async fn changed(&self, _id: u32) -> Result<(), HandlerError> {
        self.0.changed();
        Ok(())
    }
}

impl from_macro::Users for Service {
    async fn get(&self, id: u32) -> Result<Option<User>, HandlerError> {
        Ok(self.0.get(id))
    }
    async fn create(&self, name: String, email: Option<String>) -> Result<u32, HandlerError> {
        self.0.create(name, email)
    }
    async fn list(&self, prefix: String, limit: u32) -> Result<Vec<User>, HandlerError> {
        Ok(self.0.list(prefix, limit))
    }
    async fn status(&self, id: u32) -> Result<UserStatus, HandlerError> {
        Ok(self.0.status(id))
    }
    async fn delete(&self, id: u32) -> Result<bool, HandlerError> {
        Ok(self.0.users.lock().unwrap().remove(&id).is_some())
    }
    async fn changed(&self, _id: u32) -> Result<(), HandlerError> {
        self.0.changed();
        Ok(())
    }
}

#[test]
fn schema_and_macro_declarations_have_the_same_fingerprint() {
    assert_eq!(from_schema::UsersClient::fingerprint(), from_macro::UsersClient::fingerprint());
    assert_eq!(from_schema::UsersServer::fingerprint(), from_macro::UsersServer::fingerprint());
    assert_eq!(from_schema::UsersServer::PREFIX, "/user");
    assert_ne!(from_schema::UsersClient::fingerprint(), 0);
}

#[test]
fn fingerprints_cover_nested_types_the_same_way_from_schema_and_macro() {
    // The macro over its own types with the derive agrees with the schema compiler's types…
    assert_eq!(from_macro_types::UsersServer::fingerprint(), from_schema::UsersServer::fingerprint());
    // …and with the model's own reading of the schema files (the same layout text).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/users.ncs");
    let (schema, _) = netcore_codegen::schema::parse_file(&path).expect("users.ncs parses");
    assert_eq!(schema.services[0].fingerprint(&schema.types), from_schema::UsersServer::fingerprint());
    // A layout change inside a nested type changes it.
    assert_ne!(from_macro_types::reordered::UsersServer::fingerprint(), from_schema::UsersServer::fingerprint());
}

#[test]
fn schema_and_macro_declarations_have_the_same_method_hashes() {
    // The schema's are constants from the model; the macro's come from the types' Schema impls.
    use from_macro::UsersServer as Macro;
    use from_macro_types::UsersServer as OwnTypes;
    use from_schema::UsersServer as Schema;
    let schema = [Schema::get_hash(), Schema::create_hash(), Schema::list_hash(), Schema::status_hash()];
    assert_eq!(schema, [Macro::get_hash(), Macro::create_hash(), Macro::list_hash(), Macro::status_hash()]);
    assert_eq!(schema, [OwnTypes::get_hash(), OwnTypes::create_hash(), OwnTypes::list_hash(), OwnTypes::status_hash()]);
    assert_eq!((Schema::delete_hash(), Schema::changed_hash()), (Macro::delete_hash(), Macro::changed_hash()));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/users.ncs");
    let (parsed, _) = netcore_codegen::schema::parse_file(&path).expect("users.ncs parses");
    let service = &parsed.services[0];
    let get = service.methods.iter().find(|m| m.name == "get").unwrap();
    let layout = service.method_layout(get, &parsed.types);
    assert_eq!(netcore::layout::fnv1a64(layout.as_bytes()), Schema::get_hash());
}

/// Connects a server endpoint serving `blueprint` and a client endpoint, both checking `fingerprint`.
fn link(blueprint: netcore::Blueprint, fingerprint: u64) -> netcore::Connection {
    let config = Config::stream().with_fingerprint(fingerprint);
    let server = Endpoint::builder().config(config.clone()).blueprint(blueprint).build().unwrap();
    let client = Endpoint::builder().config(config).build().unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    client.connect(a, "client")
}

#[tokio::test]
async fn a_schema_client_calls_a_macro_server() {
    let store = Service::default();
    let conn = link(from_macro::UsersServer::blueprint(store.clone()), from_macro::UsersServer::fingerprint());
    let users = from_schema::UsersClient::new(conn);
    let id = users.create("ada".into(), Some("ada@example.org".into())).await.unwrap();
    users.create("alan".into(), None).await.unwrap();
    let ada = users.get(id).await.unwrap().unwrap();
    assert_eq!((ada.name.as_str(), ada.email.as_deref()), ("ada", Some("ada@example.org")));
    assert_eq!(users.get(99).await.unwrap(), None);
    assert_eq!(users.list("a".into(), 10).await.unwrap().len(), 2);
    assert_eq!(
        users.status(2).await.unwrap(),
        UserStatus::Suspended { reason: "spam".into(), until: Some(Timestamp { millis: 5 }) }
    );
    assert!(users.delete(id).await.unwrap());
    assert!(!users.delete(id).await.unwrap());
    let err = users.create(String::new(), None).await.unwrap_err();
    assert_eq!(err, CallError::Remote(HandlerError::bad_request("empty name")));
    users.changed(7).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), store.0.notify.notified()).await.unwrap();
    assert_eq!(store.0.changes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_macro_client_calls_a_schema_server() {
    let store = Service::default();
    let conn = link(from_schema::UsersServer::blueprint(store.clone()), from_schema::UsersServer::fingerprint());
    let users = from_macro::UsersClient::new(conn.clone());
    let id = users.create("grace".into(), None).await.unwrap();
    assert_eq!(users.get(id).await.unwrap().unwrap().tags, vec!["new".to_string()]);
    assert_eq!(users.status(9).await.unwrap(), UserStatus::Deleted(9));
    // A typed route given bytes that are not its arguments answers BAD_REQUEST, not a panic.
    let err =
        conn.call_with(netcore::Route::Id(netcore::route_id("/user/get")), vec![0xff; 3], Default::default()).await;
    assert!(matches!(err, Err(CallError::Remote(e)) if e.code == ErrorCode::BAD_REQUEST));
}

#[tokio::test]
async fn different_declarations_are_refused_at_connect() {
    let config = |fp| Config::stream().with_fingerprint(fp);
    let device_fp = { netcore_example_schemas::telemetry::DeviceClient::fingerprint() };
    let server = Endpoint::builder().config(config(from_schema::UsersServer::fingerprint())).build().unwrap();
    let client = Endpoint::builder().config(config(device_fp)).build().unwrap();
    let (a, b) = tokio::io::duplex(4096);
    server.connect(b, "server");
    let err = client.connect(a, "client").ready().await.unwrap_err();
    assert!(err.to_string().contains(&format!("{device_fp:#018x}")), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_typed_call_that_times_out_names_its_route_and_limit() {
    let fingerprint = from_schema::UsersServer::fingerprint();
    // A server that never answers `create` in time.
    let blueprint = netcore::Blueprint::new("").route("/user/create", |_| async {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        netcore::Response::encode(&1u32)
    });
    let conn = link(blueprint, fingerprint);
    let users = from_schema::UsersClient::new(conn.clone());
    // `create` has `@timeout_ms(2000)` in schemas/users.ncs.
    let err = users.create("ada".into(), None).await.unwrap_err();
    assert!(err.is_timeout() && !err.is_disconnected(), "{err:?}");
    assert_eq!(err.to_string(), "call to /user/create timed out after 2 s (the call's timeout)");
    // An untyped call by bare id has no name to give: it says the id.
    let opts = netcore::CallOptions::default().timeout(std::time::Duration::from_millis(250));
    let id = netcore::route_id("/user/create");
    let err = conn.call_with(netcore::Route::Id(id), Vec::new(), opts).await.unwrap_err();
    assert_eq!(err.to_string(), format!("call to route {id:#010x} timed out after 250 ms (the call's timeout)"));
}
