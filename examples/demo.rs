//! Two devices on a serial link making typed calls: a host and a board on a pseudo-terminal pair,
//! paced to the 11 520 bytes/s of a 115 200-baud UART, speaking netcore's lossy (COBS) framing.
//!
//! The `Device` service comes from `schemas/telemetry.ncs` (compiled by the build.rs in schemas/).
//! The host flashes a 48 KiB firmware image with one low-priority typed call while it reads the
//! board's sensors every 250 ms at high priority. The scheduler interleaves them, so each read
//! waits for at most about one 256-byte chunk (22 ms of airtime), never for the whole upload (4 s).
//! On a busy machine a read may miss its 500 ms timeout: it is reported as late and the demo goes
//! on; only wrong data or a failed link make it exit with an error.
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

// schemas/telemetry.ncs, compiled by the workspace-internal package in schemas/ (an application
// compiles its schemas in its own build.rs and includes them with `netcore::include_schema!`).
use netcore_example_schemas::telemetry::{Command, Device, DeviceClient, DeviceServer, Reading, Timestamp};

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

/// The temperature of a read, checked against what the board sends: a temperature that rises with
/// each read (by 0.25 C, more if reads were late), and 3.3 V.
fn check_readings(readings: &[Reading], last_temp: f64) -> Result<f64, String> {
    match readings {
        [temp, volts]
            if temp.sensor == "temp" && volts.sensor == "volts" && volts.value == 3.3 && temp.value > last_temp =>
        {
            Ok(temp.value)
        }
        _ => Err(format!("wrong sensor data after {last_temp:.2} C: {readings:?}")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (host_port, board_port) = serial::pty_pair()?;
    let rate = Paced::<()>::uart_rate(BAUD);
    let config = Config::lossy();
    let board =
        Endpoint::builder().config(config.clone()).blueprint(DeviceServer::blueprint(Board::default())).build()?;
    board.connect(Paced::new(board_port, rate), "board");
    let host = Endpoint::builder().config(config).build()?;
    let device = DeviceClient::new(host.connect(Paced::new(host_port, rate), "host"));
    let hello = device.connection().ready().await?;
    println!(
        "host: linked to the board over a pty pair at {BAUD} baud ({rate} bytes/s), {} typed methods announced",
        hello.methods.map_or(0, |methods| methods.len())
    );

    let started = Instant::now();
    let mut flash = tokio::spawn({
        let device = device.clone();
        async move { device.flash(0, firmware()).await }
    });
    println!("host: flashing {} KiB of firmware at priority 1", firmware().len() / 1024);

    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    // After a late read, the next one is asked 250 ms later, not in a burst to catch up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rtts = Vec::new();
    let mut late = 0;
    let mut last_temp = f64::MIN;
    let written = loop {
        tokio::select! {
            result = &mut flash => break result??,
            _ = ticker.tick() => {
                let asked = Instant::now();
                match device.read_all().await {
                    Ok(readings) => {
                        let rtt = asked.elapsed();
                        last_temp = check_readings(&readings, last_temp)?;
                        rtts.push(rtt);
                        println!("host: temp {last_temp:.2} C in {:>3} ms (a typed call during the upload)", rtt.as_millis());
                    }
                    Err(err) if err.is_timeout() => {
                        late += 1;
                        println!("host: sensor read late, skipped: {err}");
                    }
                    Err(err) => return Err(err.into()),
                }
            }
        }
    };
    if written as usize != firmware().len() {
        return Err(format!("the board flashed {written} bytes of {}", firmware().len()).into());
    }
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
        "{} sensor reads during the upload: median {} ms, worst {} ms; {late} late (no reply within their timeout)",
        rtts.len(),
        median.as_millis(),
        worst.as_millis()
    );
    host.shutdown().await;
    Ok(())
}
