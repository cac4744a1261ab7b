//! A typed telemetry subscription: the host subscribes once and the board pushes
//! `stream<Reading>` items as it samples, over a line paced like a 115 200-baud UART, until the
//! host has seen enough and drops its end (which stops the board's sampling task).
//!
//! ```text
//! cargo run --example telemetry [READINGS]
//! ```

use std::time::Duration;

use netcore::{Endpoint, HandlerError, Stream};
use serde::{Deserialize, Serialize};

/// One sample of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, netcore::Schema)]
pub struct Reading {
    pub sensor: String,
    pub seq: u64,
    pub celsius: f32,
}

/// The board's sensors.
#[netcore::service(prefix = "/sensors")]
pub trait Sensors {
    /// Pushes a reading of `sensor` every `every_ms` milliseconds until the caller drops the stream.
    async fn subscribe(&self, sensor: String, every_ms: u32) -> netcore::Stream<Reading>;
}

struct Board;

impl Sensors for Board {
    async fn subscribe(&self, sensor: String, every_ms: u32) -> Result<Stream<Reading>, HandlerError> {
        if every_ms == 0 {
            return Err(HandlerError::bad_request("every_ms must be at least 1"));
        }
        let (tx, readings) = Stream::channel(8);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(u64::from(every_ms)));
            for seq in 0.. {
                tick.tick().await;
                let celsius = 21.0 + (seq % 40) as f32 * 0.05; // a real board reads its ADC here
                if tx.send(Reading { sensor: sensor.clone(), seq, celsius }).await.is_err() {
                    eprintln!("board: {sensor}: the host unsubscribed after {seq} readings");
                    return;
                }
            }
        });
        Ok(readings)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wanted: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let board = Endpoint::builder().blueprint(SensorsServer::blueprint(Board)).build()?;
    let host = Endpoint::builder().build()?;
    // A UART at 115 200 baud moves about 11 520 bytes/s each way.
    let (a, b) = tokio::io::duplex(4096);
    board.connect(netcore::transport::Paced::new(b, 11_520), "board");
    let connection = host.connect(netcore::transport::Paced::new(a, 11_520), "host");

    let sensors = SensorsClient::new(connection);
    let started = std::time::Instant::now();
    let mut readings = sensors.subscribe("t0".into(), 10).await?;
    let mut last = None;
    while let Some(reading) = readings.next().await {
        let reading = reading?;
        eprint!("\rhost: reading {:>4} of {wanted}: {:.2} °C", reading.seq + 1, reading.celsius);
        if reading.seq + 1 == wanted {
            last = Some(reading);
            break;
        }
    }
    drop(readings); // unsubscribes: the board's task sees its reader go away
    let secs = started.elapsed().as_secs_f64();
    println!("\nreceived {wanted} readings in {secs:.2} s, the last {last:?}");
    tokio::time::sleep(Duration::from_millis(100)).await; // let the board print its line
    Ok(())
}
