//! Accept loops that never die (docs/PROTOCOL.md §8.4): a failed `accept()` is retried, with a
//! backoff when the process is out of a resource (descriptors, buffers, memory) as Go's
//! `net/http` and hyper-util do, and connections beyond the endpoint's cap are refused with a
//! GOAWAY LIMIT that says which limit, instead of being served or silently dropped.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::frame::{self, Frame, GoAwayCode, Hello};
use crate::session::{Config, PROTOCOL_VERSION};

/// Connections an endpoint serves at once unless told otherwise: well under the 1024 descriptors
/// a process gets by default, leaving room for spill files, listeners and the application.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long a refused peer gets to take its GOAWAY before the socket is dropped.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The wait after accept errors that are about the process, not one connection: 5 ms, doubling
/// up to 1 s, back to the start after an accept succeeds.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub(super) fn reset(&mut self) {
        self.delay = None;
    }

    /// The next wait.
    pub(super) fn next(&mut self) -> Duration {
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        self.delay = Some(delay);
        delay
    }
}

/// Whether an accept error concerns only the connection being accepted (it was reset or aborted
/// before we took it): the next accept may succeed at once.
pub(super) fn concerns_one_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Tells a peer over the connection cap why it is refused: our HELLO (so it can diagnose, §10)
/// and GOAWAY LIMIT naming the cap, then drops the link. Runs on its own task; bounded in time.
pub(super) fn refuse<IO>(mut io: IO, config: &Config, max_connections: usize)
where
    IO: AsyncWrite + Unpin + Send + 'static,
{
    let hello = Hello::new(PROTOCOL_VERSION, PROTOCOL_VERSION, config.fingerprint, config.limits);
    let goaway = Frame::GoAway {
        code: GoAwayCode::LIMIT,
        message: format!("endpoint serves at most {max_connections} connections (EndpointBuilder::max_connections)"),
    };
    let mut wire = BytesMut::new();
    frame::encode_valid(config.framing, &Frame::Hello(hello), &mut wire);
    frame::encode_valid(config.framing, &goaway, &mut wire);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            io.write_all(&wire).await?;
            io.shutdown().await
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..10).map(|_| backoff.next().as_millis() as u64).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(5));
    }

    #[test]
    fn resets_and_aborts_are_about_one_connection_descriptor_limits_are_not() {
        assert!(concerns_one_connection(&io::Error::from(io::ErrorKind::ConnectionAborted)));
        assert!(!concerns_one_connection(&io::Error::from_raw_os_error(24))); // EMFILE
        assert!(!concerns_one_connection(&io::Error::from_raw_os_error(23))); // ENFILE
    }
}
