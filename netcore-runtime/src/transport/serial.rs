//! Serial ports (through the `serialport` crate) as netcore transports.
//!
//! Serial links lose and damage bytes, so use them with [`Config::lossy`](crate::session::Config::lossy).

use std::io::{self, Read, Write};
use std::time::Duration;

use super::BlockingIo;

/// How long a blocked read waits before it checks whether the connection is still wanted.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Opens the serial device at `path` (for example `/dev/ttyUSB0` or `COM3`) at `baud`, 8N1, and
/// discards the input it already holds. An error keeps its [`io::ErrorKind`] and names the path:
/// `cannot open serial port /dev/ttyUSB0 at 115200 baud: No such file or directory`.
pub fn open(path: &str, baud: u32) -> io::Result<BlockingIo> {
    let named = |err: serialport::Error| {
        let err = io::Error::from(err);
        io::Error::new(err.kind(), format!("cannot open serial port {path} at {baud} baud: {err}"))
    };
    let port = serialport::new(path, baud).timeout(READ_TIMEOUT).open().map_err(named)?;
    // What the line holds from before we opened it belongs to a dead session of the peer; the
    // lossy decoder resynchronises on whatever arrives after (docs/PROTOCOL.md §4.2, §9).
    port.clear(serialport::ClearBuffer::Input).map_err(named)?;
    let reader = port.try_clone().map_err(named)?;
    from_port(reader, port)
}

/// Wraps an opened port; `reader` and `writer` are two handles of the same port.
pub fn from_port<R, W>(mut reader: R, mut writer: W) -> io::Result<BlockingIo>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    BlockingIo::new(move |buf| reader.read(buf), move |bytes| writer.write_all(bytes).and_then(|()| writer.flush()))
}

/// A connected pair of pseudo-terminals: a serial link with no hardware, for tests and demos.
#[cfg(unix)]
pub fn pty_pair() -> io::Result<(BlockingIo, BlockingIo)> {
    use serialport::SerialPort;
    let (mut a, mut b) = serialport::TTYPort::pair().map_err(io::Error::from)?;
    a.set_timeout(READ_TIMEOUT).map_err(io::Error::from)?;
    b.set_timeout(READ_TIMEOUT).map_err(io::Error::from)?;
    let a_reader = a.try_clone_native().map_err(io::Error::from)?;
    let b_reader = b.try_clone_native().map_err(io::Error::from)?;
    Ok((from_port(a_reader, a)?, from_port(b_reader, b)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_port_is_named() {
        let Err(err) = super::open("/dev/netcore-no-such-port", 115_200) else { panic!("no such device") };
        let text = err.to_string();
        assert!(text.contains("cannot open serial port /dev/netcore-no-such-port at 115200 baud"), "{text}");
    }
}
