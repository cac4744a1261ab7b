//! A typed firmware upload: a `stream<bytes>` argument sent from a file on disk, never loaded
//! whole, with a progress line from per-call options, to a board that checks a token in a
//! `before_request` hook and reads the image with the request context (its priority, the caller).
//!
//! ```text
//! cargo run --example typed_upload [MIB]
//! ```

use std::io::Write as _;

use netcore::endpoint::BodyStream;
use netcore::{Body, CallOptions, Context, Endpoint, HandlerError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, netcore::Schema)]
pub struct Flashed {
    pub bytes: u64,
    pub crc: u32,
}

/// The board's flash.
#[netcore::service(prefix = "/fw")]
pub trait Flash {
    /// Writes an image as it arrives; its length and CRC-32.
    #[netcore(priority = 1)]
    async fn write(&self, cx: &netcore::Context, slot: u8, image: BodyStream) -> Flashed;
}

struct Board;

impl Flash for Board {
    async fn write(&self, cx: &Context, slot: u8, mut image: BodyStream) -> Result<Flashed, HandlerError> {
        let from = cx.header("from").unwrap_or("?").to_owned();
        let mut crc = crc32fast::Hasher::new();
        while let Some(chunk) = image.chunk().await? {
            crc.update(&chunk); // a real board programs the flash page here
        }
        eprintln!("\nboard: slot {slot} written by {from} at priority {}", cx.priority().level());
        Ok(Flashed { bytes: image.received(), crc: crc.finalize() })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let board = Endpoint::builder()
        .blueprint(FlashServer::blueprint(Board))
        .before_request(|request| match request.headers().get("token").map(String::as_str) {
            Some("s3cret") => Ok(()),
            _ => Err(HandlerError::handler("no valid token")),
        })
        .build()?;
    let host = Endpoint::builder().build()?;
    let (a, b) = tokio::io::duplex(256 * 1024);
    board.connect(b, "board");
    let connection = host.connect(a, "host");

    // The image on disk, sent from there.
    let mut file = tempfile::NamedTempFile::new()?;
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    for _ in 0..mib {
        file.write_all(&block)?;
    }
    file.flush()?;

    let (progress, mut watch) = tokio::sync::watch::channel(netcore::session::Progress { done: 0, total: 0 });
    let printer = tokio::spawn(async move {
        while watch.changed().await.is_ok() {
            let p = *watch.borrow();
            if p.total > 0 {
                eprint!("\rhost: {:>5.1} % of {} bytes", p.done as f64 * 100.0 / p.total as f64, p.total);
            }
        }
    });
    let flash = FlashClient::new(connection)
        .with(CallOptions::new().header("token", "s3cret").header("from", "host").progress(progress));
    let started = std::time::Instant::now();
    let flashed = flash.write(2, Body::file(file.path())?).await?;
    let secs = started.elapsed().as_secs_f64();
    drop(flash);
    let _ = printer.await;
    println!("flashed {} bytes, crc {:#010x}, {:.1} MiB/s", flashed.bytes, flashed.crc, mib as f64 / secs);
    Ok(())
}
