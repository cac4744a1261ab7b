//! A typed firmware upload: a `stream<bytes>` argument sent from a file on disk, never loaded
//! whole, with a progress line from per-call options, to a board that checks a token in a
//! `before_request` hook and reads the image with the request context (its priority, the caller).
//!
//! By default the board is at the other end of a pseudo-terminal pair paced to a 115 200-baud
//! UART (11 520 bytes/s), speaking the lossy framing, and the image is 32 KiB (about 3 s); with
//! `--fast` the two ends share an in-memory pipe and the image is 32 MiB.
//!
//! ```text
//! cargo run --example typed_upload [KIB]
//! cargo run --example typed_upload -- --fast [MIB]
//! ```

use std::io::Write as _;

use netcore::endpoint::BodyStream;
use netcore::session::Config;
use netcore::transport::{serial, Paced};
use netcore::{Body, CallOptions, Context, Endpoint, HandlerError};

/// The UART the default link imitates.
const BAUD: u64 = 115_200;
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fast = args.iter().any(|a| a == "--fast");
    let count: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(32);
    // Kibibytes over the UART, mebibytes in memory.
    let (len, config) = if fast { (count << 20, Config::default()) } else { (count << 10, Config::lossy()) };
    let board = Endpoint::builder()
        .config(config.clone())
        .blueprint(FlashServer::blueprint(Board))
        .before_request(|request| match request.headers().get("token").map(String::as_str) {
            Some("s3cret") => Ok(()),
            _ => Err(HandlerError::handler("no valid token")),
        })
        .build()?;
    let host = Endpoint::builder().config(config).build()?;
    let connection = if fast {
        let (a, b) = tokio::io::duplex(256 * 1024);
        board.connect(b, "board");
        host.connect(a, "host")
    } else {
        let (host_port, board_port) = serial::pty_pair()?;
        let rate = Paced::<()>::uart_rate(BAUD);
        eprintln!("host: board on a pty pair at {BAUD} baud ({rate} bytes/s)");
        board.connect(Paced::new(board_port, rate), "board");
        host.connect(Paced::new(host_port, rate), "host")
    };

    // The image on disk, sent from there.
    let mut file = tempfile::NamedTempFile::new()?;
    let image: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    file.write_all(&image)?;
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
    if (flashed.bytes, flashed.crc) != (len, crc32fast::hash(&image)) {
        return Err(
            format!("the board got {} bytes with crc {:#010x}: not the image", flashed.bytes, flashed.crc).into()
        );
    }
    let (rate, unit) =
        if fast { (len as f64 / 1048576.0 / secs, "MiB/s") } else { (len as f64 / 1024.0 / secs, "KiB/s") };
    println!("flashed {} bytes, crc {:#010x}, {rate:.1} {unit}", flashed.bytes, flashed.crc);
    Ok(())
}
