//! Two devices on a serial link making typed calls: a host and a board on a pseudo-terminal pair,
//! paced to the 11 520 bytes/s of a 115 200-baud UART, speaking netcore's lossy (COBS) framing.
//!
//! The `Device` service comes from `schemas/telemetry.ncs` (compiled by this package's build.rs).
//! The host flashes a 48 KiB firmware image with one low-priority typed call while it reads the
//! board's sensors every 250 ms at high priority. The scheduler interleaves them, so each read
//! waits for at most about one 256-byte chunk (22 ms of airtime), never for the whole upload (4 s).
//!
//! ```text
//! cargo run --example demo
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use netcore::session::Config;
use netcore::transport::{serial, Paced};
use netcore::{Endpoint, HandlerError};

#[allow(dead_code)] // the demo uses part of the generated API
mod telemetry {
    netcore::include_schema!("telemetry");
}
use telemetry::{Command, Device, DeviceClient, DeviceServer, Reading, Timestamp};

const BAUD: u64 = 115_200;

fn firmware() -> Vec<u8> {
    (0..48 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

/// The board's side of the service.
#[derive(Default)]
struct Board {
    reads: AtomicU32,
}

impl Device for Board {
    async fn read_all(&self) -> Result<Vec<Reading>, HandlerError> {
        let n = self.reads.fetch_add(1, Ordering::Relaxed);
        let at = Timestamp { millis: u64::from(n) * 250 };
        Ok(vec![
            Reading { sensor: "temp".into(), value: 20.0 + f64::from(n) * 0.25, at: at.clone() },
            Reading { sensor: "volts".into(), value: 3.3, at },
        ])
    }

    async fn command(&self, command: Command) -> Result<bool, HandlerError> {
        Ok(!matches!(command, Command::Reboot))
    }

    async fn flash(&self, offset: u32, block: Vec<u8>) -> Result<u32, HandlerError> {
        if offset != 0 || block != firmware() {
            return Err(HandlerError::bad_request("image damaged"));
        }
        Ok(block.len() as u32)
    }

    async fn settings(&self) -> Result<BTreeMap<String, String>, HandlerError> {
        Ok(BTreeMap::from([("rate_hz".into(), "4".into())]))
    }

    async fn reading(&self, _reading: Reading) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host_port, board_port) = serial::pty_pair()?;
    let rate = Paced::<()>::uart_rate(BAUD);
    let config = Config::lossy().with_fingerprint(DeviceServer::FINGERPRINT);
    let board =
        Endpoint::builder().config(config.clone()).blueprint(DeviceServer::blueprint(Board::default())).build()?;
    board.connect(Paced::new(board_port, rate), "board");
    let host = Endpoint::builder().config(config).build()?;
    let device = DeviceClient::new(host.connect(Paced::new(host_port, rate), "host"));
    let hello = device.connection().ready().await?;
    println!(
        "host: linked to the board over a pty pair at {BAUD} baud ({rate} bytes/s), fingerprint {:#018x}",
        hello.fingerprint
    );

    let started = Instant::now();
    let mut flash = tokio::spawn({
        let device = device.clone();
        async move { device.flash(0, firmware()).await }
    });
    println!("host: flashing {} KiB of firmware at priority 1", firmware().len() / 1024);

    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut rtts = Vec::new();
    let written = loop {
        tokio::select! {
            result = &mut flash => break result??,
            _ = ticker.tick() => {
                let asked = Instant::now();
                let readings = device.read_all().await?;
                let rtt = asked.elapsed();
                rtts.push(rtt);
                println!("host: temp {:.2} C in {:>3} ms (a typed call during the upload)", readings[0].value, rtt.as_millis());
            }
        }
    };
    println!("board: flashed {written} bytes in {:.2} s", started.elapsed().as_secs_f64());
    println!(
        "host: settings {:?}, command accepted: {}",
        device.settings().await?,
        device.command(Command::SetRate { hz: 8 }).await?
    );
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
