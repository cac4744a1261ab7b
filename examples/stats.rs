//! Prints a link's statistics while traffic flows: `cargo run --example stats`.
//!
//! Two endpoints in one process, linked by an in-memory pipe. A client makes small calls and a
//! few 1 MiB uploads at once, some with a timeout too short to make it (cancelled on both sides);
//! every half second the client's [`Connection::stats`] is printed, with a PING's round trip.
//! After three seconds it closes the link and prints both endpoints' totals
//! ([`Endpoint::stats`]). It ends by itself.

use std::time::Duration;

use netcore::{CallOptions, Connection, ConnectionStats, Endpoint, Priority, Response, Route};

const RUN_FOR: Duration = Duration::from_secs(3);
const EVERY: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() {
    let server = Endpoint::builder()
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/store", |req| async move { Ok(Response::text(format!("{} bytes", req.payload().len()?))) })
        .route("/slow", |_req| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Response::text("late"))
        })
        .build()
        .expect("valid routes");
    let client = Endpoint::builder().build().expect("no routes");
    let (a, b) = tokio::io::duplex(256 * 1024);
    let server_end = server.connect(a, "in-process server end");
    let link = client.connect(b, "in-process client end");
    link.ready().await.expect("handshake");

    let traffic = tokio::spawn(traffic(link.clone()));
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(EVERY);
    println!(
        "{:>5} {:>7} {:>7} {:>9} {:>9} {:>7} {:>6} {:>8} {:>8} {:>8}",
        "t(s)", "msg out", "msg in", "KiB out", "KiB in", "cancel", "queued", "inflight", "credit", "rtt"
    );
    while started.elapsed() < RUN_FOR {
        tick.tick().await;
        let rtt = tokio::time::timeout(Duration::from_secs(1), link.ping()).await.ok().and_then(Result::ok);
        print_row(started.elapsed(), &link.stats().await, rtt);
    }
    traffic.abort();
    link.close().await;
    // The server's end closes as the GOAWAY arrives; then its counters are in the totals.
    server_end.closed().await;

    for (name, endpoint) in [("client", &client), ("server", &server)] {
        let total = endpoint.stats().await;
        let c = &total.counters;
        println!(
            "{name}: {} connection(s) closed, {} live; frames {} out / {} in, {} KiB out / {} KiB in, \
             messages {} out / {} in, cancels {} sent / {} received, damaged frames {}",
            total.closed,
            total.live,
            c.frames_out,
            c.frames_in,
            c.bytes_out / 1024,
            c.bytes_in / 1024,
            c.messages_out,
            c.messages_in,
            c.cancels_sent,
            c.cancels_received,
            c.frames_dropped,
        );
    }
}

fn print_row(at: Duration, stats: &ConnectionStats, rtt: Option<Duration>) {
    let c = &stats.counters;
    let credit = stats.credit.send.map_or("-".to_owned(), |bytes| format!("{}K", bytes / 1024));
    let rtt = rtt.map_or("-".to_owned(), |rtt| format!("{}us", rtt.as_micros()));
    println!(
        "{:>5.1} {:>7} {:>7} {:>9} {:>9} {:>7} {:>6} {:>8} {:>8} {:>8}",
        at.as_secs_f64(),
        c.messages_out,
        c.messages_in,
        c.bytes_out / 1024,
        c.bytes_in / 1024,
        c.cancels_sent,
        stats.queues.outgoing,
        stats.pending_calls,
        credit,
        rtt,
    );
}

/// Small calls, bulk uploads at low priority and calls that time out, until aborted.
async fn traffic(link: Connection) {
    let small = {
        let link = link.clone();
        async move {
            loop {
                let _ = link.call("/echo", vec![1u8; 64]).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    let bulk = {
        let link = link.clone();
        async move {
            loop {
                let opts = CallOptions::default().priority(Priority::LOW);
                let _ = link.call_with(Route::Name("/store".into()), vec![2u8; 1 << 20], opts).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let impatient = async move {
        loop {
            let opts = CallOptions::default().timeout(Duration::from_millis(50));
            let _ = link.call_with(Route::Name("/slow".into()), vec![3u8; 16], opts).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::join!(small, bulk, impatient);
}
