//! Real Python Netcore 0.1.3 processes against netcore's compatibility mode (docs/COMPAT.md §7).
//!
//! Built only with `--features python-compat` (CI: `cargo test --features python-compat --test
//! python_compat`), so `cargo test --workspace` on a machine without Python does not run it.
//! The interpreter is `$NETCORE_PYTHON`, else `.venv-py/bin/python`, else `python3`; if it cannot
//! `import netcore`, every test fails saying how to make the venv.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netcore::{Blueprint, CallError, CallOptions, Endpoint, Response, Route};
use serde_json::{json, Value};

const SIZES: [usize; 5] = [1, 4096, 100_000, 400_000, 2_000_000];
const KINDS: [&str; 3] = ["json", "text", "bytes"];

fn python() -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-py/bin/python");
    let python = std::env::var("NETCORE_PYTHON").ok().unwrap_or_else(|| match std::path::Path::new(venv).exists() {
        true => venv.into(),
        false => "python3".into(),
    });
    let check = "import netcore; assert netcore.__version__ == '0.1.3'; print('ok', flush=True)";
    let ok = Py::start(Command::new(&python).args(["-c", check]))
        .is_some_and(|mut py| py.line(Duration::from_secs(20)) == "ok");
    assert!(
        ok,
        "{python} cannot import netcore 0.1.3: run `python3 -m venv .venv-py && .venv-py/bin/pip install \
         netcore==0.1.3` at the workspace root, or set NETCORE_PYTHON to an interpreter that has it"
    );
    python
}

/// A Python process, killed and reaped when dropped; a thread hands its output over line by line.
struct Py {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Py {
    fn spawn(script: &str, args: &[String]) -> Py {
        let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
        Py::start(Command::new(python()).arg(path).args(args)).expect("python starts")
    }

    fn start(command: &mut Command) -> Option<Py> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, lines) = mpsc::channel();
        // Ends when the process does (its stdout closes), at the latest when `drop` kills it.
        std::thread::spawn(move || out.lines().map_while(Result::ok).try_for_each(|line| tx.send(line)));
        Some(Py { child, lines })
    }

    /// The next line of output, within `limit` ("" once the process has exited).
    fn line(&mut self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => line.trim().to_owned(),
            Err(mpsc::RecvTimeoutError::Disconnected) => String::new(),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("python printed nothing for {limit:?}"),
        }
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_server() -> (Py, u16) {
    let mut py = Py::spawn("server.py", &[]);
    let ready = py.line(Duration::from_secs(20));
    let port = ready.strip_prefix("READY ").expect("READY line").parse().unwrap();
    (py, port)
}

fn payload(kind: &str, size: usize) -> Vec<u8> {
    match kind {
        "bytes" => (0..size).map(|i| (i % 251) as u8).collect(),
        "text" => vec![b'x'; size],
        _ => serde_json::to_vec(&json!({"pad": "y".repeat(size.saturating_sub(11))})).unwrap(),
    }
}

fn rust_endpoint() -> Endpoint {
    let users = Blueprint::new("/user").route("/list", |req: netcore::Request| async move {
        let cache = req.connection().label().to_owned();
        Response::json(&json!({"users": [{"id": 1, "name": "Alice"}], "via": cache}))
    });
    Endpoint::builder()
        .route("echo", |req: netcore::Request| async move { Ok(Response::bytes(req.bytes()?)) })
        .route("message", |req: netcore::Request| async move {
            let got: Value = req.json()?;
            Response::json(&json!({"status": "received", "echo": got}))
        })
        .route("len", |req: netcore::Request| async move { Response::json(&json!({"len": req.bytes()?.len()})) })
        .blueprint(users)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_calls_python_server() {
    let (_py, port) = python_server();
    let endpoint = Endpoint::builder().build().unwrap();
    let conn = endpoint.connect_tcp_py(("127.0.0.1", port)).await.unwrap();
    let long = CallOptions::default().timeout(Duration::from_secs(60));

    let reply = conn.call("message", br#"{"hello": "world"}"#.to_vec()).await.unwrap();
    assert_eq!(reply.json::<Value>().unwrap(), json!({"status": "received", "echo": {"hello": "world"}}));
    assert_eq!(reply.headers().get("route").map(String::as_str), Some("message"));
    let reply = conn.call("/user/list", b"{}".to_vec()).await.unwrap();
    assert_eq!(reply.json::<Value>().unwrap()["users"][0]["name"], "Alice");

    let mut rtts = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        conn.call("echo", b"ping".to_vec()).await.unwrap();
        rtts.push(start.elapsed());
    }
    rtts.sort();
    println!("rust -> python small round trip: median {:?}", rtts[2]);

    for kind in KINDS {
        for size in SIZES {
            let sent = payload(kind, size);
            let start = Instant::now();
            let reply = conn.call_with(Route::Name("echo".into()), sent.clone(), long.clone()).await;
            let reply = reply.unwrap_or_else(|e| panic!("{kind} {size}: {e}"));
            assert_eq!(reply.bytes().unwrap(), sent, "{kind} {size}");
            println!("rust -> python {kind} {size} B echoed in {:?}", start.elapsed());
        }
    }
    let empty = conn.call("echo", Vec::new()).await.unwrap_err();
    assert!(matches!(empty, CallError::EmptyForPython { .. }), "{empty}");

    let calls = (0..10).map(|i| {
        let conn = conn.clone();
        async move { conn.call("echo", format!("call {i}").into_bytes()).await.map(|r| r.text().unwrap()) }
    });
    let replies = futures::future::join_all(calls).await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), format!("call {i}"));
    }

    let short = CallOptions::default().timeout(Duration::from_millis(500));
    let err = conn.call_with(Route::Name("nowhere".into()), b"x".to_vec(), short).await.unwrap_err();
    assert!(matches!(err, CallError::NoAnswerFromPython { .. }), "{err}");
    assert!(err.to_string().contains("sends no error replies"), "{err}");
    // The link is still good after the unanswered call.
    assert_eq!(conn.call("echo", b"after".to_vec()).await.unwrap().text().unwrap(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_rust_server() {
    let endpoint = rust_endpoint();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = endpoint.clone();
    tokio::spawn(async move { server.serve_tcp_py(listener).await });

    let mut cases = vec!["message:json:20".to_owned(), "/user/list:json:2".into(), "len:bytes:0".into()];
    for kind in KINDS {
        for size in SIZES {
            cases.push(format!("echo:{kind}:{size}"));
        }
    }
    let mut args = vec![port.to_string()];
    args.extend(cases.iter().cloned());
    let mut py = tokio::task::spawn_blocking(move || Py::spawn("client.py", &args)).await.unwrap();
    for case in &cases {
        let line = tokio::task::block_in_place(|| py.line(Duration::from_secs(90)));
        let result: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{case}: {line}"));
        assert_eq!(result["case"], case.as_str());
        assert_eq!(result["answered"], true, "{result}");
        match case.split(':').next().unwrap() {
            "echo" => assert_eq!(result["same"], true, "{result}"),
            "message" => assert_eq!(result["json"]["status"], "received", "{result}"),
            "/user/list" => assert_eq!(result["json"]["users"][0]["name"], "Alice", "{result}"),
            _ => assert_eq!(result["json"], json!({"len": 0}), "{result}"),
        }
        println!("python -> rust {case}: {} ms", result["ms"]);
    }
    tokio::time::timeout(Duration::from_secs(10), endpoint.shutdown()).await.expect("shutdown in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_killed_mid_message_fails_the_call() {
    let (mut py, port) = python_server();
    let endpoint = Endpoint::builder().build().unwrap();
    let conn = endpoint.connect_tcp_py(("127.0.0.1", port)).await.unwrap();
    assert_eq!(conn.call("echo", b"up".to_vec()).await.unwrap().text().unwrap(), "up");
    let opts = CallOptions::default().timeout(Duration::from_secs(30));
    let big = conn.call_with(Route::Name("echo".into()), vec![7u8; 2_000_000], opts);
    let killer = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        py.child.kill().unwrap();
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(big, killer) })
        .await
        .expect("the call ends soon after the peer dies");
    assert!(matches!(result, Err(CallError::Disconnected(_))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_link_survives_split_and_delayed_reads() {
    use netcore::faults::{FaultPlan, FaultyIo};
    let (_py, port) = python_server();
    let endpoint = Endpoint::builder().build().unwrap();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let plan = FaultPlan::new(5).with_split_reads(7).with_pending(0.2).with_delay(0.01, Duration::from_millis(20));
    let conn = endpoint.connect_py(FaultyIo::new(stream, plan), "faulty");
    // Unpaced writes (the fault wrapper hides the socket): small requests, large answers.
    for size in [1usize, 4096, 50_000] {
        let sent = payload("bytes", size);
        let reply = conn.call("echo", sent.clone()).await.unwrap();
        assert_eq!(reply.bytes().unwrap(), sent, "{size}");
    }
}

/// The example, `python_peer demo`, run whole: both directions against real Python processes.
#[path = "../examples/python_peer.rs"]
#[allow(dead_code)] // its `main` and `serve` are for `cargo run --example python_peer`
mod python_peer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_peer_example_demo_runs_both_ways() {
    let python = python();
    let (to_python, to_rust) = tokio::time::timeout(Duration::from_secs(120), python_peer::demo(&python))
        .await
        .expect("the demo ends in time")
        .unwrap_or_else(|e| panic!("demo: {e}"));
    for direction in [&to_python, &to_rust] {
        assert_eq!(direction.answers[0].1["status"], "received", "{direction:?}");
        assert_eq!(direction.answers[1].1["users"][1]["name"], "Bob", "{direction:?}");
        assert_eq!(direction.rtts.len(), 10);
    }
}

/// docs/COMPAT.md's hex blocks decode into frames that re-encode to the same bytes.
#[test]
fn compat_md_hex_blocks_round_trip() {
    use netcore::compat::py::{Limits, RawFrame};
    let doc = include_str!("../docs/COMPAT.md");
    let blocks: Vec<&str> = doc.split("```hex\n").skip(1).map(|b| b.split("```").next().unwrap()).collect();
    assert_eq!(blocks.len(), 2);
    for block in blocks {
        let bytes: Vec<u8> = block
            .lines()
            .flat_map(|line| line.split_whitespace().skip(1).map(|h| u8::from_str_radix(h, 16).unwrap()))
            .collect();
        let mut buf = bytes::BytesMut::from(&bytes[..]);
        let mut again = bytes::BytesMut::new();
        while let Some(frame) = RawFrame::decode(&mut buf, &Limits::default()).unwrap() {
            frame.parse().unwrap();
            frame.encode(&mut again);
        }
        assert!(buf.is_empty());
        assert_eq!(&again[..], &bytes[..]);
    }
}
