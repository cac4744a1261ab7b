//! Which link to use: `--tcp ADDR`, `--unix PATH` or `--serial PORT --baud N`.

use std::time::Duration;

use netcore_runtime::session::Config;
use netcore_runtime::session::Reliability;
use netcore_runtime::{Connection, Endpoint};

use crate::Failure;

/// The link flags shared by `call`, `send` and `serve`.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(group = clap::ArgGroup::new("link").required(true).multiple(false).args(["tcp", "unix", "serial"]))]
pub struct LinkArgs {
    /// A TCP address: where to connect, or (serve) where to listen; port 0 picks one.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,
    /// A Unix socket path: where to connect, or (serve) where to listen.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<std::path::PathBuf>,
    /// A serial port, e.g. /dev/ttyUSB0.
    #[arg(long, value_name = "PORT")]
    pub serial: Option<String>,
    /// The serial line's baud rate [default: 115200].
    #[arg(long)]
    baud: Option<u32>,
    /// Serial: byte-lossy framing with resynchronisation (the default on a serial port).
    #[arg(long, conflicts_with = "stream")]
    pub lossy: bool,
    /// Serial: plain length-prefixed framing, for a link that never loses a byte.
    #[arg(long)]
    pub stream: bool,
    /// Serial: acknowledged, retransmitted delivery (docs/PROTOCOL.md §16).
    #[arg(long)]
    pub reliable: bool,
}

impl LinkArgs {
    /// The serial line's baud rate.
    pub fn baud(&self) -> u32 {
        self.baud.unwrap_or(115_200)
    }

    /// The serial flags without `--serial` are a usage error (clap's `requires` does not see
    /// through the link group).
    pub fn check(&self) -> Result<(), Failure> {
        let serial_only = [
            ("--baud", self.baud.is_some()),
            ("--lossy", self.lossy),
            ("--stream", self.stream),
            ("--reliable", self.reliable),
        ];
        match serial_only.iter().find(|(_, given)| *given) {
            Some((flag, _)) if self.serial.is_none() => {
                Err(Failure::usage(format!("{flag} applies to a serial link: give --serial PORT")))
            }
            _ => Ok(()),
        }
    }

    /// The session configuration of a serial link.
    pub fn serial_config(&self) -> Config {
        let base = if self.stream { Config::stream() } else { Config::lossy() };
        base.with_reliable(self.reliable.then(Reliability::default))
    }

    /// Connects as a client and waits for the handshake.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Connection, Failure> {
        self.check()?;
        let connection = if let Some(addr) = &self.tcp {
            endpoint.connect_tcp(addr.as_str()).await.map_err(|e| Failure::failed(format!("tcp {addr}: {e}")))?
        } else if let Some(path) = &self.unix {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| Failure::failed(format!("unix {}: {e}", path.display())))?;
            endpoint.connect(stream, format!("unix {}", path.display()))
        } else {
            let port = self.serial.as_deref().expect("clap requires one link");
            let io = netcore_runtime::transport::serial::open(port, self.baud())
                .map_err(|e| Failure::failed(format!("serial {port}: {e}")))?;
            endpoint.connect_with(io, format!("serial {port}"), self.serial_config())
        };
        // The handshake, bounded so that a silent peer is an error rather than a hang.
        match tokio::time::timeout(Duration::from_secs(10), connection.ready()).await {
            Ok(Ok(_)) => Ok(connection),
            Ok(Err(e)) => Err(Failure::failed(format!("{}: {e}", connection.label()))),
            Err(_) => Err(Failure::failed(format!("{}: no handshake from the peer within 10 s", connection.label()))),
        }
    }
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration (500ms, 2s, 1m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{text}`: {e}"))
}

/// Parses `name=value`.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(n, v)| (n.trim().to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not name=value"))
}
