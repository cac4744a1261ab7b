//! The Python paper's two examples between netcore and the real Python Netcore 0.1.3
//! (docs/COMPAT.md): the `message` route, and the `/user/list` blueprint with a cache, a start
//! event and a periodic task, served by Rust and called by Python, and the other way round.
//!
//! ```text
//! cargo run --example python_peer -- serve 127.0.0.1:9000  # Rust serves; run tests/python/client.py 9000 ...
//! cargo run --example python_peer -- call 127.0.0.1:9000   # Rust calls tests/python/server.py 9000
//! cargo run --example python_peer -- demo                  # both directions, Python started from .venv-py
//! ```
//!
//! Python comes from `$NETCORE_PYTHON`, else `.venv-py/bin/python`, else `python3`; make the venv
//! with `python3 -m venv .venv-py && .venv-py/bin/pip install netcore==0.1.3`.
//! `tests/python_compat.rs` runs [`demo`] in CI.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netcore::endpoint::{Blueprint, EventKind, Request, Response};
use netcore::{CallOptions, Connection, Endpoint, Route};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long a Python process gets to print its next line.
const LINE_WAIT: Duration = Duration::from_secs(30);
/// Small round trips measured each way.
const PINGS: usize = 10;

/// The Rust side of the paper's examples, as `tests/python/server.py` is the Python side.
pub fn rust_server() -> Result<Endpoint, Error> {
    let cache = netcore::endpoint::Cache::default();
    let ticks = Arc::new(AtomicU64::new(0));
    let users = {
        let (cache, ticks) = (cache.clone(), ticks.clone());
        Blueprint::new("/user").route("/list", move |_req: Request| {
            let (cache, ticks) = (cache.clone(), ticks.clone());
            async move {
                let users = cache.get::<Value>("users").unwrap_or_else(|| {
                    let users = json!([{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}]);
                    cache.insert("users", users.clone(), Some(Duration::from_secs(60)));
                    users
                });
                Response::json(&json!({"users": users, "ticks": ticks.load(Ordering::Relaxed)}))
            }
        })
    };
    let endpoint = Endpoint::builder()
        .route("message", |req: Request| async move {
            Response::json(&json!({"status": "received", "echo": req.json::<Value>()?}))
        })
        .route("echo", |req: Request| async move { Ok(Response::bytes(req.bytes()?)) })
        .blueprint(users)
        .cache(cache)
        .on(EventKind::Start, |_| println!("rust server: started"))
        .build()?;
    endpoint.scheduler().every(Duration::from_millis(500), move || {
        ticks.fetch_add(1, Ordering::Relaxed);
        async {}
    });
    Ok(endpoint)
}

/// Round trips of one direction: the paper's calls, then small `echo`s.
#[derive(Debug, Default)]
pub struct Direction {
    /// What each paper call answered.
    pub answers: Vec<(String, Value)>,
    /// Round-trip times of the small calls, as measured by the caller.
    pub rtts: Vec<Duration>,
}

impl Direction {
    fn print(&self, title: &str) {
        let mut sorted = self.rtts.clone();
        sorted.sort();
        if let (Some(min), Some(max)) = (sorted.first(), sorted.last()) {
            let median = sorted[sorted.len() / 2];
            println!("{title}: {} round trips, min {min:.1?}, median {median:.1?}, max {max:.1?}", sorted.len());
        }
    }
}

/// Rust calls a Python Netcore 0.1.3 server at `addr` (`tests/python/server.py`).
pub async fn call(addr: &str) -> Result<Direction, Error> {
    let endpoint = Endpoint::builder().build()?;
    let conn = endpoint.connect_tcp_py(addr).await?;
    let result = call_over(&conn).await;
    conn.close().await;
    result
}

async fn call_over(conn: &Connection) -> Result<Direction, Error> {
    let mut direction = Direction::default();
    // Python answers nothing for errors: every call has a timeout (PY_DEFAULT_TIMEOUT, 10 s).
    for (route, body) in [("message", json!({"hello": "world"})), ("/user/list", json!({}))] {
        let start = Instant::now();
        let reply: Value = conn.call(route, serde_json::to_vec(&body)?).await?.json()?;
        println!("rust -> python {route}: {reply} ({:.1?})", start.elapsed());
        direction.answers.push((route.to_owned(), reply));
    }
    for i in 0..PINGS {
        let start = Instant::now();
        let ping = format!("ping {i}");
        let reply = conn.call("echo", ping.clone().into_bytes()).await?;
        direction.rtts.push(start.elapsed());
        if reply.text()? != ping {
            return Err(format!("echo answered {:?} to {ping:?}", reply.text()?).into());
        }
    }
    let big = vec![7u8; 100_000];
    let opts = CallOptions::default().timeout(Duration::from_secs(30));
    let start = Instant::now();
    let reply = conn.call_with(Route::Name("echo".into()), big.clone(), opts).await?;
    println!("rust -> python echo 100 kB: same bytes {} ({:.1?})", reply.bytes()? == big, start.elapsed());
    direction.print("rust -> python echo");
    Ok(direction)
}

/// Rust serves the paper's examples to Python clients at `addr` until Ctrl-C.
pub async fn serve(addr: &str) -> Result<(), Error> {
    let endpoint = rust_server()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let port = listener.local_addr()?.port();
    println!("serving Python Netcore 0.1.3 clients on {}; try", listener.local_addr()?);
    println!("  .venv-py/bin/python tests/python/client.py {port} message:json:20 /user/list:json:2 echo:bytes:4096");
    tokio::select! {
        served = endpoint.serve_tcp_py(listener) => served?,
        _ = tokio::signal::ctrl_c() => {}
    }
    endpoint.shutdown().await;
    Ok(())
}

/// A Python process from `tests/python/`, killed when dropped (and by [`Py::stop`]).
struct Py {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Py {
    fn spawn(python: &str, script: &str, args: &[String]) -> Result<Py, Error> {
        let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new(python)
            .arg(path)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let stdout = child.stdout.take().ok_or("stdout is piped")?;
        Ok(Py { child, lines: BufReader::new(stdout).lines() })
    }

    /// The next line it prints, within [`LINE_WAIT`].
    async fn line(&mut self) -> Result<String, Error> {
        match tokio::time::timeout(LINE_WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err("the Python process exited early (is netcore 0.1.3 installed?)".into()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(format!("the Python process printed nothing for {LINE_WAIT:?}").into()),
        }
    }

    /// Kills it and waits for it to be gone (bounded: a killed process is reaped at once).
    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The interpreter with netcore 0.1.3: `$NETCORE_PYTHON`, else `.venv-py/bin/python`, else `python3`.
pub fn python() -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-py/bin/python");
    std::env::var("NETCORE_PYTHON").unwrap_or_else(|_| match std::path::Path::new(venv).exists() {
        true => venv.into(),
        false => "python3".into(),
    })
}

/// Rust calls a Python server it starts, then a Python client it starts calls Rust.
pub async fn demo(python: &str) -> Result<(Direction, Direction), Error> {
    let mut server = Py::spawn(python, "server.py", &[])?;
    let ready = server.line().await;
    let to_python = async {
        let port = ready?.strip_prefix("READY ").ok_or("server.py prints READY <port> first")?.to_owned();
        call(&format!("127.0.0.1:{port}")).await
    }
    .await;
    server.stop().await;
    let to_python = to_python?;

    let endpoint = rust_server()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve_tcp_py(listener).await });
    let to_rust = python_calls(python, port).await;
    endpoint.shutdown().await;
    Ok((to_python, to_rust?))
}

/// `tests/python/client.py` calls the Rust server on `port`; it measures each round trip itself.
async fn python_calls(python: &str, port: u16) -> Result<Direction, Error> {
    let mut cases = vec!["message:json:20".to_owned(), "/user/list:json:2".into()];
    cases.extend((0..PINGS).map(|_| "echo:text:6".to_owned()));
    cases.push("echo:bytes:100000".into());
    let mut args = vec![port.to_string()];
    args.extend(cases.iter().cloned());
    let mut client = Py::spawn(python, "client.py", &args)?;
    let result = async {
        let mut direction = Direction::default();
        for case in &cases {
            let line = client.line().await?;
            let result: Value = serde_json::from_str(&line).map_err(|e| format!("{case}: {line}: {e}"))?;
            if result["answered"] != true || (case.starts_with("echo") && result["same"] != true) {
                return Err(format!("{case}: {result}").into());
            }
            let rtt = Duration::from_secs_f64(result["ms"].as_f64().unwrap_or_default() / 1000.0);
            match case.as_str() {
                "echo:text:6" => direction.rtts.push(rtt),
                "echo:bytes:100000" => println!("python -> rust echo 100 kB: same bytes true ({rtt:.1?})"),
                _ => {
                    println!("python -> rust {}: {} ({rtt:.1?})", result["route"], result["json"]);
                    direction.answers.push((case.clone(), result["json"].clone()));
                }
            }
        }
        direction.print("python -> rust echo");
        Ok(direction)
    }
    .await;
    client.stop().await;
    result
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", addr] => serve(addr).await,
        ["call", addr] => call(addr).await.map(drop),
        ["demo"] | [] => demo(&python()).await.map(drop),
        _ => Err("usage: python_peer serve ADDR | call ADDR | demo".into()),
    }
}
