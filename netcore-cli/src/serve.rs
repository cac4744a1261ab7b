//! `netcore serve`: an echo or sink endpoint on any link, a streaming sink storing into a
//! directory, or a mock of a schema's services.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use netcore_runtime::endpoint::BodyStream;
use netcore_runtime::{codec, Endpoint, EndpointEvent, ErrorCode, HandlerError, OpenBody, Request, Response};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::link::{parse_duration, LinkArgs};
use crate::value::Types;
use crate::{print_json, progress, schema, Failure};

/// `netcore serve`
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// Answer every other route with the length of its payload (as text) instead of echoing it.
    #[arg(long, conflicts_with = "store")]
    sink: bool,
    /// Store every request's payload in a new file of this directory (answer: its length as
    /// text, header `x-stored` the file's path); `--upload` routes are streamed to disk.
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// With --store: a route whose payloads are written as they arrive, never held whole
    /// (repeatable; default /upload).
    #[arg(long = "upload", value_name = "ROUTE", requires = "store")]
    uploads: Vec<String>,
    /// Wait this long before answering (500ms, 2s): to try timeouts and cancellation.
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// The schema whose services `--mock` serves.
    #[arg(long, requires = "mock")]
    schema: Option<PathBuf>,
    /// Answer every method of `--schema` with a default value of its result type.
    #[arg(long, requires = "schema")]
    mock: bool,
}

/// Where `--store` puts payloads: `DIR/NNNNNN-route.bin`, numbered in arrival order.
#[derive(Clone)]
struct Store {
    dir: Arc<Path>,
    next: Arc<AtomicU64>,
    json: bool,
}

impl Store {
    fn file_for(&self, route: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name: String =
            route.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
        self.dir.join(format!("{n:06}-{}.bin", name.trim_matches('_')))
    }

    /// Writes a streamed payload chunk by chunk.
    async fn stream(&self, route: &str, mut body: BodyStream) -> Result<Response, HandlerError> {
        let path = self.file_for(route);
        let fail = |e: std::io::Error| {
            HandlerError::new(netcore_runtime::ErrorCode::INTERNAL, format!("{}: {e}", path.display()))
        };
        let mut file = tokio::fs::File::create(&path).await.map_err(fail)?;
        let bar = progress::bar(body.len(), route, self.json);
        let mut written = 0u64;
        while let Some(chunk) = body.chunk().await.map_err(fail)? {
            file.write_all(&chunk).await.map_err(fail)?;
            written += chunk.len() as u64;
            if let Some(bar) = &bar {
                bar.set_position(written);
            }
        }
        file.flush().await.map_err(fail)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(Self::stored(&path, written))
    }

    /// Writes a payload received whole.
    async fn whole(&self, route: &str, payload: Bytes) -> Result<Response, HandlerError> {
        let path = self.file_for(route);
        tokio::fs::write(&path, &payload)
            .await
            .map_err(|e| HandlerError::new(netcore_runtime::ErrorCode::INTERNAL, format!("{}: {e}", path.display())))?;
        Ok(Self::stored(&path, payload.len() as u64))
    }

    fn stored(path: &Path, bytes: u64) -> Response {
        Response::text(bytes.to_string()).with_header("x-stored", path.display().to_string())
    }
}

/// The echo answer: the payload, the request's headers, and `x-priority` (its priority class),
/// so a client sees what reached the server.
fn echo(request: &Request, payload: Bytes) -> Response {
    let mut response = Response::bytes(payload).with_priority(request.priority());
    for (name, value) in request.headers() {
        response = response.with_header(name.clone(), value.clone());
    }
    response.with_header("x-priority", request.priority().level().to_string())
}

/// The streamed route every `serve` has: its payload `N` (text) answers the lines `1\n` to `N\n`
/// as an open-length message, sent as they are made; `N K` stops after line `K` with CANCEL IO,
/// to try a stream that ends short.
pub const COUNT_ROUTE: &str = "/stream/count";

/// `N` or `N K` of a `/stream/count` payload.
fn parse_count(text: &str) -> Result<(u64, Option<u64>), HandlerError> {
    let bad = || {
        HandlerError::new(
            ErrorCode::BAD_REQUEST,
            format!("{COUNT_ROUTE}: the payload is `N` (lines to send) or `N K` (stop after line K), not {text:?}"),
        )
    };
    let mut words = text.split_whitespace();
    let lines = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let fail_after = match words.next() {
        None => None,
        Some(word) => Some(word.parse().map_err(|_| bad())?),
    };
    if words.next().is_some() {
        return Err(bad());
    }
    Ok((lines, fail_after))
}

/// The lines `1\n` to `lines\n`, about 512 bytes a chunk; failed after line `fail_after` if given.
fn count_lines(lines: u64, fail_after: Option<u64>) -> OpenBody {
    let (tx, body) = OpenBody::channel(4);
    tokio::spawn(async move {
        let last = fail_after.map_or(lines, |k| k.min(lines));
        let mut n = 1;
        while n <= last {
            let mut chunk = String::new();
            while n <= last && chunk.len() < 64 * 8 {
                chunk.push_str(&format!("{n}\n"));
                n += 1;
            }
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
        if fail_after.is_some_and(|k| k < lines) {
            tx.fail(format!("{COUNT_ROUTE}: stopped after line {last} of {lines}, as asked"));
        }
    });
    body
}

/// `netcore serve`
pub async fn serve(args: ServeArgs, json: bool) -> Result<(), Failure> {
    args.link.check()?;
    let delay = args.delay;
    let wait = move || async move {
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    };
    let mut builder = Endpoint::builder();
    let mut mocked = Vec::new();
    if let Some(path) = &args.schema {
        let schema = schema::load(path)?;
        let types = Types::new(&schema);
        for service in &schema.services {
            for method in &service.methods {
                let answer =
                    Bytes::from(codec::encode(&types.default_of(&method.returns.ty)).map_err(Failure::failed)?);
                let route = service.route(method);
                let name = format!("{}.{}", service.name, method.name);
                mocked.push(schema::describe_method(service, method));
                builder = builder.route(&route, move |_request| {
                    let answer = answer.clone();
                    tracing::info!(method = %name, "mock answer");
                    async move {
                        wait().await;
                        Ok(Response::bytes(answer))
                    }
                });
            }
        }
    }
    let store = match &args.store {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Failure::failed(format!("{}: {e}", dir.display())))?;
            Some(Store { dir: dir.as_path().into(), next: Arc::new(AtomicU64::new(1)), json })
        }
        None => None,
    };
    if let Some(store) = &store {
        let uploads = if args.uploads.is_empty() { vec!["/upload".to_owned()] } else { args.uploads.clone() };
        for route in uploads {
            let store = store.clone();
            builder = builder.streaming_route(&route, move |request: Request, body| {
                let store = store.clone();
                async move {
                    tracing::info!(route = request.route(), bytes = body.len(), "upload");
                    let response = store.stream(request.route(), body).await;
                    wait().await;
                    response
                }
            });
        }
    }
    builder = builder.route(COUNT_ROUTE, move |request| async move {
        let (lines, fail_after) = parse_count(&request.text()?)?;
        tracing::info!(route = COUNT_ROUTE, lines, fail_after, "streamed answer");
        wait().await;
        Ok(Response::stream(count_lines(lines, fail_after)))
    });
    let sink = args.sink;
    let default_store = store.clone();
    builder = builder.default_handler(move |request| {
        let store = default_store.clone();
        async move {
            let payload = request.bytes()?;
            tracing::info!(route = request.route(), bytes = payload.len(), "request");
            wait().await;
            match store {
                Some(store) => store.whole(request.route(), payload).await,
                None if sink => Ok(Response::text(payload.len().to_string())),
                None => Ok(echo(&request, payload)),
            }
        }
    });
    let endpoint = builder.build().map_err(Failure::failed)?;
    tokio::spawn(report_events(endpoint.events(), json));

    let mode = match (&store, sink) {
        (Some(_), _) => "store",
        (None, true) => "sink",
        (None, false) => "echo",
    };
    let announce = |at: String| {
        if json {
            print_json(&json!({ "listening": at, "mode": mode, "mock": mocked }));
        } else {
            say!("listening on {at}");
        }
        // Scripts and tests read this line to learn the port.
        let _ = std::io::stdout().flush();
    };
    let served = async {
        if let Some(addr) = &args.link.tcp {
            let listener =
                tokio::net::TcpListener::bind(addr).await.map_err(|e| Failure::failed(format!("tcp {addr}: {e}")))?;
            announce(format!("tcp {}", listener.local_addr().map_err(Failure::failed)?));
            endpoint.serve_tcp(listener).await.map_err(Failure::failed)
        } else if let Some(path) = &args.link.unix {
            let listener = tokio::net::UnixListener::bind(path)
                .map_err(|e| Failure::failed(format!("unix {}: {e}", path.display())))?;
            announce(format!("unix {}", path.display()));
            endpoint.serve_unix(listener).await.map_err(Failure::failed)
        } else {
            let port = args.link.serial.as_deref().expect("clap requires one link");
            let io = netcore_runtime::transport::serial::open(port, args.link.baud())
                .map_err(|e| Failure::failed(format!("serial {port}: {e}")))?;
            // A serial line has no accept: the session waits for each next peer (a client that
            // ends says GOAWAY; the one after it says HELLO) instead of ending the server.
            let config = args.link.serial_config().wait_for_peer();
            let connection = endpoint.connect_with(io, format!("serial {port}"), config);
            announce(format!("serial {port}"));
            let reason = connection.closed().await;
            Err(Failure::failed(format!("serial {port}: {reason}")))
        }
    };
    tokio::select! {
        result = served => result,
        _ = tokio::signal::ctrl_c() => {
            endpoint.shutdown().await;
            Ok(())
        }
    }
}

/// Prints connects, disconnects, cancels and handler errors, one line each (JSON with --json):
/// what a peer's `--timeout` or a dropped call looks like from this side.
async fn report_events(mut events: tokio::sync::broadcast::Receiver<EndpointEvent>, json: bool) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let record: Value = match event {
            EndpointEvent::Connect { connection } => {
                json!({ "event": "connect", "connection": connection.id().0, "label": connection.label() })
            }
            EndpointEvent::Disconnect { connection, reason } => {
                json!({ "event": "disconnect", "connection": connection.0, "reason": reason.to_string() })
            }
            EndpointEvent::Cancel { connection, exchange, reason } => json!({
                "event": "cancel",
                "connection": connection.0,
                "exchange": exchange,
                "reason": reason.describe().map_or_else(|| reason.0.to_string(), str::to_owned),
            }),
            EndpointEvent::Error { connection, route, message } => {
                json!({ "event": "error", "connection": connection.0, "route": &*route, "message": message })
            }
            _ => continue,
        };
        if json {
            print_json(&record);
        } else {
            let mut line = format!("{} #{}", record["event"].as_str().unwrap_or_default(), record["connection"]);
            for key in ["label", "exchange", "route", "reason", "message"] {
                if let Some(value) = record.get(key) {
                    line.push_str(&format!(
                        " {key}={}",
                        value.as_str().map_or_else(|| value.to_string(), str::to_owned)
                    ));
                }
            }
            say!("{line}");
        }
    }
}
