//! `netcore tap`: a TCP proxy or a bridge between two serial ports that forwards every byte both
//! ways and decodes the traffic live, frame by frame, as `dump` does; `--capture` also records it
//! for `dump` to read back.
//!
//! ```text
//! side A ──read──▶ (record) ──write──▶ side B        one pump task per direction
//! side A ◀─write── (record) ◀─read─── side B
//!                     │ mpsc
//!                     ▼
//!       printer: inspect::Link per connection ─▶ stdout, capture::Writer ─▶ --capture FILE
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::capture::{self, Event, Record};
use crate::dump::{framing_of, Printer};
use crate::inspect::{Catalog, Counts, Link};
use crate::{print_json, Failure};

/// `netcore tap`
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("side").required(true).args(["tcp", "serial"]))]
pub struct TapArgs {
    /// Listen here for the client (port 0 picks one) and forward each connection to `--to`.
    #[arg(long, value_name = "LISTEN", requires = "to")]
    tcp: Option<String>,
    /// The server the TCP clients are forwarded to.
    #[arg(long, value_name = "ADDR", requires = "tcp")]
    to: Option<String>,
    /// Bridge two serial ports: give `--serial A --serial B`.
    #[arg(long, value_name = "PORT", num_args = 1)]
    serial: Vec<String>,
    /// The serial ports' baud rate.
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// Serial: decode as plain length-prefixed framing instead of the lossy framing.
    #[arg(long)]
    stream: bool,
    /// Resolve route ids to method names, and decode messages to JSON, from this schema.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Also record the traffic here, for `netcore dump`.
    #[arg(long, value_name = "FILE")]
    capture: Option<PathBuf>,
    /// TCP: forward one connection, then exit (with its summary).
    #[arg(long)]
    once: bool,
}

/// What the pumps tell the printer.
enum Note {
    Open {
        conn: u32,
        info: Value,
    },
    Bytes {
        conn: u32,
        side: u8,
        at: Instant,
        bytes: Vec<u8>,
    },
    Close {
        conn: u32,
        reason: String,
    },
    /// A connection that could not be forwarded (tcp: the server refused it).
    Failed {
        conn: u32,
        reason: String,
    },
}

/// `netcore tap`
pub async fn tap(args: TapArgs, json: bool) -> Result<(), Failure> {
    let catalog = Catalog::load(args.schema.as_deref())?;
    let mut writer = match &args.capture {
        Some(path) => Some(
            std::fs::File::create(path)
                .and_then(|f| capture::Writer::new(std::io::BufWriter::new(f)))
                .map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    // Bounded: a printer that falls behind (a slow terminal) slows the link down rather than
    // holding its bytes in memory.
    let (tx, mut rx) = mpsc::channel(1024);
    let started = Instant::now();

    let forwarding = if let Some(listen) = &args.tcp {
        let to = args.to.clone().expect("clap requires --to with --tcp");
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| Failure::failed(format!("tcp {listen}: {e}")))?;
        let local = listener.local_addr().map_err(Failure::failed)?;
        if json {
            print_json(&json!({ "listening": format!("tcp {local}"), "to": to }));
        } else {
            say!("tapping tcp {local} → {to}");
        }
        tokio::spawn(accept_loop(listener, to, args.once, tx))
    } else {
        let [a, b] = <[String; 2]>::try_from(args.serial.clone())
            .map_err(|ports| Failure::usage(format!("--serial takes two ports, A and B; {} given", ports.len())))?;
        let open = |port: &str| {
            netcore_runtime::transport::serial::open(port, args.baud)
                .map_err(|e| Failure::failed(format!("serial {port}: {e}")))
        };
        let (io_a, io_b) = (open(&a)?, open(&b)?);
        if json {
            print_json(&json!({ "bridging": [a, b], "baud": args.baud }));
        } else {
            say!("tapping serial {a} ⇄ {b} at {} baud", args.baud);
        }
        let info = json!({
            "label": format!("serial {a} ⇄ {b}"),
            "framing": if args.stream { "stream" } else { "lossy" },
            "directions": [format!("{a}→{b}"), format!("{b}→{a}")],
        });
        tokio::spawn(forward(1, io_a, io_b, info, tx))
    };

    let printer = Printer::new(json);
    let mut links: HashMap<u32, Link<'_>> = HashMap::new();
    let mut totals = Counts::default();
    let mut failed = None;
    let mut out = Vec::new();
    loop {
        let note = tokio::select! {
            note = rx.recv() => match note { Some(note) => note, None => break },
            _ = tokio::signal::ctrl_c() => break,
        };
        let now = micros(started, Instant::now());
        let time = now as f64 / 1e6;
        let (micros, conn, event) = match note {
            Note::Open { conn, info } => {
                let direction = |i: usize| info["directions"][i].as_str().unwrap_or_default().to_owned();
                links.insert(conn, Link::new(&catalog, framing_of(&info), [direction(0), direction(1)]));
                out.push(json!({ "time": time, "conn": conn, "type": "OPEN", "label": info["label"], "framing": info["framing"] }));
                (now, conn, Event::Open(info))
            }
            Note::Bytes { conn, side, at, bytes } => {
                let time = micros(started, at) as f64 / 1e6;
                if let Some(link) = links.get_mut(&conn) {
                    let start = out.len();
                    link.feed(usize::from(side), Some(time), &bytes, &mut out);
                    for record in &mut out[start..] {
                        record["conn"] = json!(conn);
                    }
                }
                (micros(started, at), conn, Event::Bytes(side, bytes))
            }
            Note::Close { conn, reason } => {
                if let Some(link) = links.remove(&conn) {
                    totals.add(link.counts);
                }
                out.push(json!({ "time": time, "conn": conn, "type": "CLOSE", "reason": reason }));
                (now, conn, Event::Close(reason))
            }
            Note::Failed { conn, reason } => {
                out.push(json!({ "time": time, "conn": conn, "type": "FAILED", "reason": reason }));
                failed = Some(reason.clone());
                (now, conn, Event::Close(reason))
            }
        };
        for record in out.drain(..) {
            printer.print(&record);
        }
        if let Some(w) = &mut writer {
            if let Err(e) = w.write(&Record { micros, conn, event }) {
                let path = args.capture.as_deref().unwrap_or(std::path::Path::new("")).display();
                return Err(Failure::failed(format!("{path}: {e}")));
            }
        }
    }
    forwarding.abort();
    for link in links.values() {
        totals.add(link.counts);
    }
    let tail = links.values().map(Link::tails).sum();
    printer.summary(totals, tail, json!({}));
    match failed {
        Some(reason) if args.once => Err(Failure::failed(reason)),
        _ => Ok(()),
    }
}

fn micros(started: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX)
}

async fn accept_loop(listener: tokio::net::TcpListener, to: String, once: bool, tx: mpsc::Sender<Note>) {
    let mut conn = 0;
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // EMFILE and the like: wait and accept again (STYLE.md §9).
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        conn += 1;
        let server = match tokio::net::TcpStream::connect(&to).await {
            Ok(server) => server,
            Err(e) => {
                let _ =
                    tx.send(Note::Failed { conn, reason: format!("client {peer}: cannot reach tcp {to}: {e}") }).await;
                drop(client);
                if once {
                    return;
                }
                continue;
            }
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let info = json!({
            "label": format!("tcp {peer} → {to}"),
            "framing": "stream",
            "directions": ["client→server", "server→client"],
        });
        let task = tokio::spawn(forward(conn, client, server, info, tx.clone()));
        if once {
            let _ = task.await;
            return;
        }
    }
}

/// Forwards both ways until both directions end, telling the printer everything.
async fn forward<A, B>(conn: u32, a: A, b: B, info: Value, tx: mpsc::Sender<Note>)
where
    A: AsyncRead + AsyncWrite + Send + 'static,
    B: AsyncRead + AsyncWrite + Send + 'static,
{
    let _ = tx.send(Note::Open { conn, info }).await;
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let mut ab = tokio::spawn(pump(a_read, b_write, conn, 0, tx.clone()));
    let mut ba = tokio::spawn(pump(b_read, a_write, conn, 1, tx.clone()));
    let done = |joined: Result<std::io::Result<()>, tokio::task::JoinError>| {
        joined.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    // A direction that ends cleanly half-closes and the other goes on; an error ends both.
    let (first, other, first_side) = tokio::select! {
        r = &mut ab => (done(r), ba, "reading side A"),
        r = &mut ba => (done(r), ab, "reading side B"),
    };
    let reason = match first {
        Err(e) => {
            other.abort();
            format!("{first_side}: {e}")
        }
        Ok(()) => match done(other.await) {
            Ok(()) => "both sides closed".to_owned(),
            Err(e) => format!("{}: {e}", if first_side.ends_with('A') { "reading side B" } else { "reading side A" }),
        },
    };
    let _ = tx.send(Note::Close { conn, reason }).await;
}

/// Copies one direction, reporting each read before forwarding it.
async fn pump<R, W>(mut from: R, mut to: W, conn: u32, side: u8, tx: mpsc::Sender<Note>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the other direction goes on until its side is done too.
            let _ = to.shutdown().await;
            return Ok(());
        }
        let _ = tx.send(Note::Bytes { conn, side, at: Instant::now(), bytes: buf[..n].to_vec() }).await;
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
}
