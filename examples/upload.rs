//! A streaming route: a device takes firmware images over TCP and writes them to storage as the
//! bytes arrive, never holding an image in memory; a bad image is refused at its first chunk and
//! the host stops sending it at once.
//!
//! ```text
//! cargo run --release --example upload             # a 64 MiB image
//! cargo run --release --example upload -- 512      # a 512 MiB image
//! ```

use std::time::{Duration, Instant};

use netcore::endpoint::{BodyStream, HandlerError, Request, Response};
use netcore::session::Progress;
use netcore::{CallOptions, Endpoint, Route};
use tokio::io::AsyncWriteExt;

const MAGIC: &[u8; 4] = b"NCFW";

/// The device's handler: checks the header, then writes the image to a file as it arrives.
async fn write_firmware(_req: Request, mut body: BodyStream) -> Result<Response, HandlerError> {
    let first = body.chunk().await?.unwrap_or_default();
    if !first.starts_with(MAGIC) {
        // Answering now calls off the rest of the upload (docs/PROTOCOL.md §6).
        return Err(HandlerError::bad_request("not a firmware image (bad magic)"));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&first);
    let target = tempfile::NamedTempFile::new()?;
    let mut file = tokio::fs::File::from_std(target.reopen()?);
    file.write_all(&first).await?;
    while let Some(chunk) = body.chunk().await? {
        crc.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    let written = file.metadata().await?.len();
    Ok(Response::text(format!("{written} bytes stored, crc32 {:08x}", crc.finalize())))
}

fn image(len: usize, valid: bool) -> Vec<u8> {
    let mut image: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect();
    image[..4].copy_from_slice(if valid { MAGIC } else { b"JUNK" });
    image
}

/// Uploads `image`, printing progress at every quarter; the reply, and how long it took.
async fn upload(link: &netcore::Connection, image: Vec<u8>) -> (Result<String, String>, Duration, u64) {
    let (progress_tx, mut progress) = tokio::sync::watch::channel(Progress { done: 0, total: 0 });
    let total = image.len() as u64;
    let started = Instant::now();
    let call = link.call_with(Route::Name("/fw/write".into()), image, CallOptions::default().progress(progress_tx));
    tokio::pin!(call);
    let mut quarter = 1;
    let reply = loop {
        tokio::select! {
            reply = &mut call => break reply,
            Ok(()) = progress.changed() => {
                let done = progress.borrow().done;
                if done >= total / 4 * quarter && quarter < 4 && progress.borrow().total == total {
                    println!("  host: {}% sent", quarter * 25);
                    quarter += 1;
                }
            }
        }
    };
    let sent = progress.borrow().done.min(total);
    let reply = reply.map_err(|e| e.to_string()).and_then(|r| r.text().map_err(|e| e.to_string()));
    (reply, started.elapsed(), sent)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(64);
    let device = Endpoint::builder().streaming_route("/fw/write", write_firmware).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn({
        let device = device.clone();
        async move { device.serve_tcp(listener).await }
    });
    let host = Endpoint::builder().build()?;
    let link = host.connect_tcp(addr).await?;
    link.ready().await?;

    println!("host: uploading a {mib} MiB image that is not firmware");
    let (reply, took, sent) = upload(&link, image(mib << 20, false)).await;
    match reply {
        Err(refusal) => println!("  device: {refusal}"),
        Ok(stored) => return Err(format!("the device stored an image that is not firmware: {stored}").into()),
    }
    println!("  refused after {:.1} ms, {} KiB of {mib} MiB sent", took.as_secs_f64() * 1e3, sent / 1024);

    println!("host: uploading a {mib} MiB firmware image");
    let good = image(mib << 20, true);
    let expected = crc32fast::hash(&good);
    let (reply, took, _) = upload(&link, good).await;
    let stored = reply?;
    println!("  device: {stored}");
    if !stored.ends_with(&format!("crc32 {expected:08x}")) {
        return Err(format!("the device stored a different image: crc32 {expected:08x} sent").into());
    }
    println!("  host: crc32 {expected:08x}; {:.0} MiB/s", mib as f64 / took.as_secs_f64());
    Ok(())
}
