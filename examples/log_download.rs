//! A typed log download: `-> stream<bytes>`, read by the host as it arrives (never held whole
//! on either side) and written to a file, with a progress line. The board reads the log from its
//! storage in chunks; an error while reading reaches the host as a typed error, not a short file.
//!
//! ```text
//! cargo run --example log_download [MIB]
//! ```

use std::io::Write as _;

use netcore::{ByteStream, Endpoint, HandlerError};
use tokio::io::AsyncWriteExt;

/// The board's logs.
#[netcore::service(prefix = "/logs")]
pub trait Logs {
    /// The size of log `name` in bytes.
    async fn size(&self, name: String) -> u64;
    /// Log `name` from its start, as it is read from storage.
    #[netcore(priority = 1)]
    async fn download(&self, name: String) -> netcore::ByteStream;
}

/// A board whose log `boot` is `mib` MiB of text lines.
struct Board {
    mib: u64,
}

fn line(n: u64) -> String {
    format!("{:>10} boot: sensor t{} ok, {} mV\n", n, n % 8, 3300 - n % 100)
}

impl Logs for Board {
    async fn size(&self, name: String) -> Result<u64, HandlerError> {
        match name.as_str() {
            "boot" => Ok(self.mib << 20),
            _ => Err(HandlerError::new(netcore::endpoint::ErrorCode::NOT_FOUND, format!("no log {name}"))),
        }
    }

    async fn download(&self, name: String) -> Result<ByteStream, HandlerError> {
        let total = self.size(name).await?;
        let (tx, log) = ByteStream::channel(4);
        tokio::spawn(async move {
            let (mut sent, mut n) = (0u64, 0u64);
            let mut chunk = String::new();
            while sent < total {
                // A real board reads a flash sector here.
                while chunk.len() < 32 * 1024 {
                    chunk.push_str(&line(n));
                    n += 1;
                }
                let take = (total - sent).min(chunk.len() as u64) as usize;
                let bytes = bytes::Bytes::copy_from_slice(&chunk.as_bytes()[..take]);
                chunk.drain(..take);
                sent += take as u64;
                if tx.send(bytes).await.is_err() {
                    return; // the host cancelled
                }
            }
        });
        Ok(log)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let board = Endpoint::builder().blueprint(LogsServer::blueprint(Board { mib })).build()?;
    let host = Endpoint::builder().build()?;
    let (a, b) = tokio::io::duplex(256 * 1024);
    board.connect(b, "board");
    let logs = LogsClient::new(host.connect(a, "host"));

    let total = logs.size("boot".into()).await?;
    let out = tempfile::NamedTempFile::new()?;
    let mut file = tokio::fs::File::create(out.path()).await?;
    let started = std::time::Instant::now();
    let mut log = logs.download("boot".into()).await?;
    let mut shown = u64::MAX;
    while let Some(chunk) = log.chunk().await? {
        file.write_all(&chunk).await?;
        let permille = log.received() * 1000 / total.max(1);
        if permille != shown {
            shown = permille;
            eprint!("\rhost: {:>5.1} % of {total} bytes", permille as f64 / 10.0);
        }
    }
    file.flush().await?;
    let secs = started.elapsed().as_secs_f64();
    let written = tokio::fs::metadata(out.path()).await?.len();
    let first = std::fs::read_to_string(out.path())?.lines().next().unwrap_or_default().to_owned();
    std::io::stderr().flush()?;
    println!(
        "\ndownloaded {written} bytes to {} in {secs:.2} s ({:.1} MiB/s); first line: {first}",
        out.path().display(),
        mib as f64 / secs
    );
    assert_eq!(written, total);
    Ok(())
}
