//! A typed log download: `-> stream<bytes>`, read by the host as it arrives (never held whole
//! on either side) and written to a file, with a progress line. The board reads the log file from
//! its storage in chunks (`ByteStream::from_reader`); an error while reading reaches the host as a
//! typed error, not a short file.
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

/// A board whose log `boot` is a file on its storage.
struct Board {
    boot_log: std::path::PathBuf,
}

impl Logs for Board {
    async fn size(&self, name: String) -> Result<u64, HandlerError> {
        let path = self.path(&name)?;
        Ok(tokio::fs::metadata(path).await?.len())
    }

    async fn download(&self, name: String) -> Result<ByteStream, HandlerError> {
        // Read in chunks as the link takes them: a slow host slows the reads, nothing is held whole.
        let file = tokio::fs::File::open(self.path(&name)?).await?;
        Ok(ByteStream::from_reader(file))
    }
}

impl Board {
    fn path(&self, name: &str) -> Result<&std::path::Path, HandlerError> {
        match name {
            "boot" => Ok(&self.boot_log),
            _ => Err(HandlerError::new(netcore::endpoint::ErrorCode::NOT_FOUND, format!("no log {name}"))),
        }
    }
}

/// Writes `mib` MiB of log lines to a temporary file: the board's log.
fn write_log(mib: u64) -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::NamedTempFile::new()?;
    let (mut written, mut n) = (0u64, 0u64);
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    while written < mib << 20 {
        let line = format!("{:>10} boot: sensor t{} ok, {} mV\n", n, n % 8, 3300 - n % 100);
        let take = ((mib << 20) - written).min(line.len() as u64) as usize;
        out.write_all(&line.as_bytes()[..take])?;
        written += take as u64;
        n += 1;
    }
    out.flush()?;
    drop(out);
    Ok(file)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let log_file = write_log(mib)?;
    let board =
        Endpoint::builder().blueprint(LogsServer::blueprint(Board { boot_log: log_file.path().into() })).build()?;
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
    assert!(std::fs::read(out.path())? == std::fs::read(log_file.path())?, "the download differs from the log");
    Ok(())
}
