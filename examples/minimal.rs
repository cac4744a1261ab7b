//! The Python paper's minimal example: a Pipe built from a serial device's read and write
//! functions, and one `message` route.
//!
//! ```text
//! cargo run --example minimal                         # two ends of a pseudo-terminal pair
//! cargo run --example minimal -- /dev/ttyUSB0 115200  # a real device (the peer runs netcore too)
//! ```

use std::io::{Read, Write};
use std::time::Duration;

use netcore::endpoint::Response;
use netcore::session::Config;
use netcore::transport::BlockingIo;
use netcore::Endpoint;

/// "Give me recv and send": a Pipe from any port's read and write.
fn pipe(
    mut reader: impl Read + Send + 'static,
    mut writer: impl Write + Send + 'static,
) -> std::io::Result<BlockingIo> {
    BlockingIo::new(move |buf| reader.read(buf), move |bytes| writer.write_all(bytes))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoint = Endpoint::builder()
        .route("message", |req| async move {
            println!("received message: {}", req.text()?);
            Ok(Response::text("got it"))
        })
        .build()?;

    if let [path, baud] = &args[..] {
        let baud: u32 = baud.parse().map_err(|e| format!("baud rate {baud:?}: {e}"))?;
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| format!("cannot open serial port {path} at {baud} baud: {e}"))?;
        let link = endpoint.connect_with(pipe(port.try_clone()?, port)?, path.clone(), Config::lossy());
        let reply = link.call("message", "hello from netcore".as_bytes().to_vec()).await?;
        println!("peer answered: {}", reply.text()?);
        return Ok(());
    }

    // No device given: play both ends on a pseudo-terminal pair.
    let (a, b) = serialport::TTYPort::pair()?;
    let (a_reader, b_reader) = (a.try_clone_native()?, b.try_clone_native()?);
    endpoint.connect_with(pipe(b_reader, b)?, "pty b", Config::lossy());
    let sender = Endpoint::builder().build()?;
    let link = sender.connect_with(pipe(a_reader, a)?, "pty a", Config::lossy());
    let reply = link.call("message", "hello over a serial line".as_bytes().to_vec()).await?;
    println!("peer answered: {}", reply.text()?);
    Ok(())
}
