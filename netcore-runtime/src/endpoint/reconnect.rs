//! Keeping a link up: reopen the port when the connection dies (a cable pulled and found silent by
//! keepalive, a USB adapter unplugged) and connect again when it comes back.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::{Endpoint, EndpointEvent};
use crate::connection::Connection;
use crate::session::Config;

/// A link that [`keep_connected`] reopens whenever its connection closes. Dropping it (or
/// [`stop`](Self::stop)) stops reconnecting; the current connection lives on until it closes.
#[derive(Debug)]
pub struct Reconnecting {
    current: watch::Receiver<Option<Connection>>,
    attempts: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Reconnecting {
    /// The live connection, if the link is up (it may still be handshaking).
    pub fn connection(&self) -> Option<Connection> {
        self.current.borrow().clone()
    }

    /// Waits for a connection whose handshake completed, and returns it.
    pub async fn connected(&self) -> Connection {
        let mut current = self.current.clone();
        loop {
            let conn = current.borrow_and_update().clone();
            if let Some(conn) = conn {
                if conn.ready().await.is_ok() {
                    return conn;
                }
            }
            if current.changed().await.is_err() {
                // Stopped: wait forever, like a link that never comes back.
                std::future::pending::<()>().await;
            }
        }
    }

    /// How many times the port was opened, successfully or not.
    pub fn attempts(&self) -> u64 {
        *self.attempts.borrow()
    }

    /// Stops reconnecting; the current connection, if any, is left open.
    pub fn stop(self) {}
}

impl Drop for Reconnecting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects `endpoint` over what `open` returns, and whenever that connection closes, or `open`
/// fails (the device is absent), tries again after `retry`, until the endpoint shuts down or the
/// returned handle is dropped.
///
/// For a serial port, use `keep_serial_connected` (feature `serial`), or `open` is typically
/// `move || std::future::ready(netcore::transport::serial::open(&path, baud))`, with
/// [`Endpoint::serial_config`] (the endpoint's configuration for a serial line) and a keepalive so
/// that a pulled cable (silence, no EOF) is noticed. With [`Config::wait_for_peer`] the
/// connection outlives a lost or restarted peer, so the port is reopened only when the transport
/// itself fails (a USB adapter unplugged).
pub fn keep_connected<F, Fut, IO>(
    endpoint: &Endpoint,
    label: impl Into<String>,
    config: Config,
    retry: Duration,
    mut open: F,
) -> Reconnecting
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<IO>> + Send,
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (current_tx, current) = watch::channel(None);
    let (attempts_tx, attempts) = watch::channel(0);
    let endpoint = endpoint.clone();
    let label = label.into();
    let mut events = endpoint.events();
    let task = tokio::spawn(async move {
        loop {
            attempts_tx.send_modify(|n| *n += 1);
            let opened = tokio::select! {
                opened = open() => opened,
                () = stopped(&mut events) => return,
            };
            if let Ok(io) = opened {
                let conn = endpoint.connect_with(io, label.clone(), config.clone());
                current_tx.send_replace(Some(conn.clone()));
                tokio::select! {
                    _ = conn.closed() => {}
                    () = stopped(&mut events) => return,
                }
                current_tx.send_replace(None);
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = stopped(&mut events) => return,
            }
        }
    });
    Reconnecting { current, attempts, task }
}

/// Resolves when the endpoint shuts down.
async fn stopped(events: &mut broadcast::Receiver<EndpointEvent>) {
    loop {
        match events.recv().await {
            Ok(EndpointEvent::Stop) | Err(broadcast::error::RecvError::Closed) => return,
            _ => {}
        }
    }
}

/// [`keep_connected`] over the serial port at `path`, with the endpoint's configuration for a
/// serial line ([`Endpoint::serial_config`]); the port's stale input is discarded at each opening.
#[cfg(feature = "serial")]
#[cfg_attr(docsrs, doc(cfg(feature = "serial")))]
pub fn keep_serial_connected(endpoint: &Endpoint, path: &str, baud: u32, retry: Duration) -> Reconnecting {
    let path = path.to_owned();
    let label = format!("serial {path}");
    let open = move || std::future::ready(crate::transport::serial::open(&path, baud));
    keep_connected(endpoint, label, endpoint.serial_config(), retry, open)
}
