//! Two devices on a simulated 115 200-baud serial line, driven through netcore's sans-IO core by
//! hand (no async runtime): what the tokio driver does, spelled out.
//!
//! The host uploads a 48 KiB firmware image to the board at low priority while it reads a sensor
//! every 250 ms at high priority. Chunks of the upload are interleaved with the sensor calls, so
//! a call waits for at most about one 256-byte chunk (22 ms of airtime), never for the upload.
//! Everything runs on a simulated clock: no hardware, no threads, instant.
//!
//! ```text
//! cargo run --example core_sim
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use netcore::session::{Config, Event, Exchange, Payload, SendOptions, Session};
use netcore::{Kind, Priority, Route};

/// Bytes per second of a 115 200-baud line with 8N1 framing (10 bits per byte).
const LINE_RATE: u64 = 11_520;
/// Simulation tick.
const TICK: Duration = Duration::from_millis(1);
/// The UART's transmit FIFO: the session is asked for a frame only when this has room, so the
/// scheduler (not a deep queue) decides what goes next.
const TX_FIFO: usize = 64;

/// One direction of the serial line: a small FIFO drained at the line rate.
struct Line {
    fifo: VecDeque<u8>,
    /// Fractional bytes of airtime accumulated, in bytes * 1000.
    budget_millibytes: u64,
    carried: u64,
}

impl Line {
    fn new() -> Self {
        Self { fifo: VecDeque::new(), budget_millibytes: 0, carried: 0 }
    }

    /// Refills the FIFO from `from`, then moves one tick's worth of bytes into `to`.
    fn tick(&mut self, from: &mut Session, to: &mut Session, now: Instant) {
        let mut out = BytesMut::new();
        while self.fifo.len() < TX_FIFO && from.poll_transmit(now, &mut out) {
            self.fifo.extend(out.split().iter());
        }
        self.budget_millibytes += LINE_RATE * TICK.as_millis() as u64;
        let n = ((self.budget_millibytes / 1000) as usize).min(self.fifo.len());
        self.budget_millibytes -= n as u64 * 1000;
        if self.fifo.is_empty() {
            self.budget_millibytes = 0; // an idle line does not bank airtime
        }
        let bytes: Vec<u8> = self.fifo.drain(..n).collect();
        self.carried += bytes.len() as u64;
        to.handle_input(now, &bytes);
    }
}

fn firmware() -> Vec<u8> {
    (0..48 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn main() {
    let start = Instant::now();
    let mut host = Session::new(Config::lossy(), start);
    let mut board = Session::new(Config::lossy(), start);
    let (mut up, mut down) = (Line::new(), Line::new());

    let image = firmware();
    let upload = host
        .send_oneway(Route::Name("/fw/upload".into()), image.clone(), SendOptions::priority(Priority::LOW))
        .expect("queued");
    println!("host: uploading {} KiB of firmware at low priority over 115200 baud", image.len() / 1024);

    let mut calls: HashMap<netcore::session::MessageId, Duration> = HashMap::new();
    let mut rtts = Vec::new();
    let mut next_read = Duration::ZERO;
    let mut next_report = Duration::from_secs(1);
    let mut upload_done = None;
    let mut elapsed = Duration::ZERO;

    while upload_done.is_none() || !calls.is_empty() {
        let now = start + elapsed;
        if upload_done.is_none() && elapsed >= next_read {
            let id = host
                .request(Route::Name("/sensor/read".into()), vec![0u8; 16], SendOptions::priority(Priority::HIGH))
                .expect("queued");
            calls.insert(id, elapsed);
            next_read += Duration::from_millis(250);
        }
        up.tick(&mut host, &mut board, now);
        down.tick(&mut board, &mut host, now);

        while let Some(event) = board.poll_event() {
            match event {
                Event::Message(m) if m.kind == Kind::Request => {
                    let Exchange::Theirs(id) = m.exchange else { continue };
                    let reading = 21.5f64.to_le_bytes().repeat(2);
                    board.respond(id, Ok(reading.into()), SendOptions::priority(Priority::HIGH)).expect("answer");
                }
                Event::Message(m) => {
                    let Payload::Memory(bytes) = &m.payload else { panic!("48 KiB fits in memory") };
                    assert_eq!(&bytes[..], &image[..], "firmware arrived intact");
                    upload_done = Some(elapsed);
                    println!("board: firmware received intact after {:.2} s", elapsed.as_secs_f64());
                }
                _ => {}
            }
        }
        while let Some(event) = host.poll_event() {
            if let Event::Message(m) = event {
                let Exchange::Ours(id) = m.exchange else { continue };
                if let Some(sent_at) = calls.remove(&id) {
                    let rtt = elapsed - sent_at;
                    rtts.push(rtt);
                    println!("host: sensor read {:>2} answered in {:>3} ms", rtts.len(), rtt.as_millis());
                }
            }
        }
        if elapsed >= next_report {
            if let Some(p) = host.progress_out(upload) {
                println!("host: upload {:>3}% ({} of {} bytes sent)", p.done * 100 / p.total, p.done, p.total);
            }
            next_report += Duration::from_secs(1);
        }
        elapsed += TICK;
    }

    rtts.sort();
    let worst = rtts.last().copied().unwrap_or_default();
    let median = rtts[rtts.len() / 2];
    let payload = image.len() as u64 + rtts.len() as u64 * 32;
    println!();
    println!(
        "{} sensor reads during the upload: median {} ms, worst {} ms",
        rtts.len(),
        median.as_millis(),
        worst.as_millis()
    );
    println!(
        "line: {} bytes host->board, {} bytes board->host; framing overhead {:.1}% of {} payload bytes",
        up.carried,
        down.carried,
        (up.carried + down.carried - payload) as f64 * 100.0 / payload as f64,
        payload
    );
}
