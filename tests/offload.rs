//! The connection's task does no file or reader I/O (issue 13.1): a body whose reader blocks, and
//! a spilled message whose storage is written, happen off the task that moves the link's bytes,
//! so other calls on the same connection go on meanwhile.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use netcore::endpoint::Response;
use netcore::session::{Body, Config, Payload};
use netcore::{Endpoint, Limits};

/// Yields `len` bytes, but only after `go` says so: a disk or a device that is slow to answer.
/// Says on `entered` when it is first read.
struct Gated {
    entered: Option<mpsc::Sender<()>>,
    go: Option<mpsc::Receiver<()>>,
    left: usize,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let (Some(entered), Some(go)) = (self.entered.take(), self.go.take()) {
            let _ = entered.send(());
            let _ = go.recv();
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(7);
        self.left -= n;
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_reader_does_not_stall_other_calls() {
    let spill = tempfile::tempdir().unwrap();
    let limits = Limits { inline_limit: 64 * 1024, ..Limits::default() };
    let server = Endpoint::builder()
        .config(Config::stream().with_limits(limits).with_spill_dir(spill.path()))
        .route("/echo", |req| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("/len", |req| async move {
            let stored = matches!(req.payload(), Payload::File(_));
            Ok(Response::text(format!("{} {stored}", req.bytes()?.len())))
        })
        .build()
        .unwrap();
    let (a, b) = tokio::io::duplex(64 * 1024);
    server.connect(b, "server");
    let conn = Endpoint::builder().build().unwrap().connect(a, "client");

    let (go, gate) = mpsc::channel();
    let (entered_tx, entered) = mpsc::channel();
    let len = 1 << 20;
    let big = tokio::spawn({
        let conn = conn.clone();
        let body = Gated { entered: Some(entered_tx), go: Some(gate), left: len };
        async move { conn.call("/len", Body::reader(body, len as u64)).await }
    });
    tokio::task::spawn_blocking(move || entered.recv()).await.unwrap().unwrap();
    // The big call's reader is blocked; the link still carries a small call both ways. (Before
    // issue 13.1 the reader blocked the connection's task, and this call waited for it: the
    // timeout turns that hang into a failure.)
    let small = conn.call("/echo", b"still moving".to_vec());
    let reply = tokio::time::timeout(Duration::from_secs(30), small).await.expect("the link stalled").unwrap();
    assert_eq!(reply.bytes().unwrap().as_ref(), b"still moving");
    assert!(!big.is_finished(), "the big call waits for its reader");
    go.send(()).unwrap();
    let reply = big.await.unwrap().unwrap();
    // Above the server's inline limit: stored in a spill file by the driver, handed over whole.
    assert_eq!(reply.text().unwrap(), format!("{len} true"));
}
