//! The Python paper's comprehensive example: a `users` blueprint under `/user`, a cache with a
//! 300 s TTL, a `start` event and a periodic task, served over TCP on localhost; a client calls it.
//!
//! ```text
//! cargo run --example comprehensive
//! ```

use std::time::Duration;

use netcore::endpoint::{Blueprint, EventKind, HandlerError, Response};
use netcore::{CallOptions, Endpoint, Route};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
}

const TTL: Option<Duration> = Some(Duration::from_secs(300));

fn users() -> Blueprint {
    // Handlers reach the endpoint's cache through the request.
    Blueprint::new("/user")
        .route("/create", |req| async move {
            let user: User = req.json()?;
            req.cache().insert(format!("user:{}", user.id), user.clone(), TTL);
            Response::json(&user)
        })
        .route("/get", |req| async move {
            let id: u32 = req.json()?;
            match req.cache().get::<User>(&format!("user:{id}")) {
                Some(user) => Response::json(&user),
                None => Err(HandlerError::handler(format!("no user {id}"))),
            }
        })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Endpoint::builder()
        .blueprint(users())
        .on(EventKind::Start, |_| println!("server: started"))
        .on(EventKind::Connect, |event| println!("server: {event:?}"))
        .after_request(|info, _response| println!("server: answered {}", info.route))
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let heartbeat = server.scheduler().every(Duration::from_millis(100), || async {
        println!("server: periodic task tick");
    });
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_tcp(listener).await }
    });

    let client = Endpoint::builder().build()?;
    let link = client.connect_tcp(addr).await?;
    let alice = User { id: 1, name: "alice".into() };
    let body = serde_json::to_vec(&alice)?;
    let created: User = link.call("/user/create", body).await?.json()?;
    println!("client: created {created:?}");
    let got: User =
        link.call_with(Route::Name("/user/get".into()), b"1".to_vec(), CallOptions::default()).await?.json()?;
    println!("client: fetched {got:?}");
    match link.call("/user/get", b"2".to_vec()).await {
        Err(err) => println!("client: as expected, {err}"),
        Ok(_) => println!("client: unexpected user 2"),
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    heartbeat.cancel();
    server.shutdown().await;
    println!("server: stopped");
    Ok(())
}
