//! A board and a host as two processes that find each other again whatever restarts.
//!
//! ```text
//! # over TCP (the board listens, the host reconnects)
//! cargo run --example field -- board tcp 127.0.0.1:7000
//! cargo run --example field -- host tcp 127.0.0.1:7000
//!
//! # over a serial port, or a pty pair: socat -d -d pty,raw,echo=0 pty,raw,echo=0
//! cargo run --example field -- board serial /dev/pts/3
//! cargo run --example field -- host serial /dev/pts/4
//! ```
//!
//! Stop and start either one (Ctrl-C, or `kill -9`) in any order: each prints `PeerConnected`,
//! `PeerRestarted`, `PeerLost` and `Disconnect` as they happen, and one call a second.

use std::time::Duration;

use netcore::connection::{keep_connected, keep_serial_connected};
use netcore::endpoint::{EndpointEvent, Response};
use netcore::session::Config;
use netcore::{Connection, Endpoint};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [role, transport, address] = &args[..] else {
        eprintln!("usage: field (board|host) (tcp ADDR | serial PATH)");
        std::process::exit(2);
    };
    let role: &'static str = if role == "board" { "board" } else { "host" };
    // Serial: wait for the peer as long as it takes, and keep the port for the next one.
    let config = match transport.as_str() {
        "serial" => Config::lossy().wait_for_peer(),
        _ => Config::stream(),
    };
    let endpoint = Endpoint::builder()
        .config(config.clone())
        .route("/whoami", move |_req| async move { Ok(Response::text(role)) })
        .on(netcore::endpoint::EventKind::Connect, |e| println!("{}", describe(e)))
        .on(netcore::endpoint::EventKind::PeerRestarted, |e| println!("{}", describe(e)))
        .on(netcore::endpoint::EventKind::PeerLost, |e| println!("{}", describe(e)))
        .on(netcore::endpoint::EventKind::Disconnect, |e| println!("{}", describe(e)))
        .build()?;

    let retry = Duration::from_millis(500);
    let current: Box<dyn Fn() -> Option<Connection>> = match (transport.as_str(), role) {
        ("serial", _) => {
            let link = keep_serial_connected(&endpoint, address, 115_200, retry);
            Box::new(move || link.connection())
        }
        ("tcp", "board") => {
            let listener = tokio::net::TcpListener::bind(address).await?;
            let server = endpoint.clone();
            tokio::spawn(async move { server.serve_tcp(listener).await });
            let endpoint = endpoint.clone();
            Box::new(move || endpoint.connections().pop())
        }
        _ => {
            let address = address.clone();
            let open = move || {
                let address = address.clone();
                async move {
                    let stream = tokio::net::TcpStream::connect(address).await?;
                    stream.set_nodelay(true)?;
                    Ok(stream)
                }
            };
            let link = keep_connected(&endpoint, "tcp", config, retry, open);
            Box::new(move || link.connection())
        }
    };
    println!("{role}: waiting for the peer on {transport} {address}");
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for n in 0u64.. {
        tick.tick().await;
        let Some(conn) = current() else { continue };
        if !matches!(conn.state(), netcore::LinkState::Open(_)) {
            continue;
        }
        let call = tokio::time::timeout(Duration::from_secs(1), conn.call("/whoami", Vec::new())).await;
        match call {
            Ok(Ok(reply)) => println!("call {n}: the peer is the {}", reply.text().unwrap_or_default()),
            Ok(Err(err)) => println!("call {n}: {err}"),
            Err(_) => println!("call {n}: no answer within 1 s"),
        }
    }
    Ok(())
}

fn describe(event: &EndpointEvent) -> String {
    match event {
        EndpointEvent::Connect { connection } => {
            let reliable = if connection.is_reliable() { ", reliable delivery" } else { "" };
            format!("PeerConnected on {}{reliable}", connection.label())
        }
        EndpointEvent::PeerRestarted { connection } => format!("PeerRestarted on {connection}"),
        EndpointEvent::PeerLost { connection, reason } => format!("PeerLost on {connection}: {reason}"),
        EndpointEvent::Disconnect { connection, reason } => format!("Disconnect {connection}: {reason}"),
        other => format!("{other:?}"),
    }
}
