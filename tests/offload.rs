//! The connection's task does no file or reader I/O (issue 13.1): a body whose reader blocks, and
//! a spilled message whose storage is written, happen off the task that moves the link's bytes,
//! so other calls on the same connection go on meanwhile.

use std::io::Read;
use std::sync::mpsc;

use netcore::endpoint::Response;
use netcore::session::{Body, Config, Payload};
use netcore::{Endpoint, Limits};

/// Yields `len` bytes, but only after `go` says so: a disk or a device that is slow to answer.
struct Gated {
    go: Option<mpsc::Receiver<()>>,
    left: usize,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(go) = self.go.take() {
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
    let len = 1 << 20;
    let big = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call("/len", Body::reader(Gated { go: Some(gate), left: len }, len as u64)).await }
    });
    // The big call's reader is blocked; the link still carries a small call both ways.
    let reply = conn.call("/echo", b"still moving".to_vec()).await.unwrap();
    assert_eq!(reply.bytes().unwrap().as_ref(), b"still moving");
    assert!(!big.is_finished(), "the big call waits for its reader");
    go.send(()).unwrap();
    let reply = big.await.unwrap().unwrap();
    // Above the server's inline limit: stored in a spill file by the driver, handed over whole.
    assert_eq!(reply.text().unwrap(), format!("{len} true"));
}
