//! Two devices on a serial link: a host and a board on a pseudo-terminal pair, paced to the
//! 11 520 bytes/s of a 115 200-baud UART, speaking netcore's lossy (COBS) framing.
//!
//! The host uploads a 48 KiB firmware image at low priority while it reads the board's sensor every
//! 250 ms at high priority. The scheduler interleaves the two, so each read waits for at most about
//! one 256-byte chunk of the upload (22 ms of airtime), never for the whole upload (4 s).
//!
//! ```text
//! cargo run --example demo
//! ```

use std::time::{Duration, Instant};

use netcore::endpoint::{HandlerError, Response};
use netcore::session::{Config, Progress};
use netcore::transport::{serial, Paced};
use netcore::{CallOptions, Endpoint, Priority, Route};

const BAUD: u64 = 115_200;

fn firmware() -> Vec<u8> {
    (0..48 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn board() -> Result<Endpoint, Box<dyn std::error::Error>> {
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    Ok(Endpoint::builder()
        .route("/sensor/read", move |_req| {
            let n = reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let celsius = 20.0 + n as f32 * 0.25;
            async move { Ok(Response::text(format!("{celsius:.2} C"))) }
        })
        .route("/fw/upload", |req| async move {
            let image = req.bytes()?;
            if image[..] != firmware()[..] {
                return Err(HandlerError::bad_request("image damaged"));
            }
            Ok(Response::text(format!("flashed {} bytes", image.len())))
        })
        .build()?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host_port, board_port) = serial::pty_pair()?;
    let rate = Paced::<()>::uart_rate(BAUD);
    board()?.connect_with(Paced::new(board_port, rate), "board", Config::lossy());
    let host = Endpoint::builder().build()?;
    let link = host.connect_with(Paced::new(host_port, rate), "pty host", Config::lossy());
    link.ready().await?;
    println!("host: linked to the board over a pty pair at {BAUD} baud ({rate} bytes/s)");

    let image = firmware();
    let (progress_tx, progress) = tokio::sync::watch::channel(Progress { done: 0, total: image.len() as u64 });
    let upload_opts = CallOptions::default().priority(Priority::LOW).progress(progress_tx);
    let started = Instant::now();
    let mut upload = tokio::spawn({
        let link = link.clone();
        async move { link.call_with(Route::Name("/fw/upload".into()), image, upload_opts).await }
    });
    println!("host: uploading {} KiB of firmware at low priority", firmware().len() / 1024);

    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut rtts = Vec::new();
    let reply = loop {
        tokio::select! {
            result = &mut upload => break result??,
            _ = ticker.tick() => {
                let asked = Instant::now();
                let opts = CallOptions::default().priority(Priority::HIGH).timeout(Duration::from_secs(2));
                let reading = link.call_with(Route::Name("/sensor/read".into()), Vec::new(), opts).await?;
                let rtt = asked.elapsed();
                rtts.push(rtt);
                let p = *progress.borrow();
                println!(
                    "host: sensor {} in {:>3} ms   (upload {:>3}%)",
                    reading.text()?,
                    rtt.as_millis(),
                    p.done * 100 / p.total.max(1)
                );
            }
        }
    };
    println!("board: {} after {:.2} s", reply.text()?, started.elapsed().as_secs_f64());
    rtts.sort();
    let median = rtts.get(rtts.len() / 2).copied().unwrap_or_default();
    let worst = rtts.last().copied().unwrap_or_default();
    println!(
        "{} sensor reads during the upload: median {} ms, worst {} ms",
        rtts.len(),
        median.as_millis(),
        worst.as_millis()
    );
    host.shutdown().await;
    Ok(())
}
