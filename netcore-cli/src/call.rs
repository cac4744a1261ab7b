//! `netcore call` (typed through a schema, or raw bytes to a route) and `netcore send`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use netcore_codegen::model::MethodKind;
use netcore_runtime::session::Progress;
use netcore_runtime::{codec, route_id, Body, CallError, CallOptions, Connection, Endpoint, Priority, Reply, Route};
use serde_json::{json, Value};

use crate::link::{parse_duration, parse_header, LinkArgs};
use crate::value::Types;
use crate::{print_json, progress, schema, Failure};

/// Options of a request, shared by `call` and `send`.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// Scheduling class 0 (bulk) to 7 (urgent); default: the method's, else 3.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=7))]
    priority: Option<u8>,
    /// How long to wait for the answer: 500ms, 2s, 1m (a bare number is seconds).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// A request header, name=value (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

impl RequestArgs {
    fn options(&self, priority: Option<u8>, timeout_ms: Option<u64>) -> CallOptions {
        let mut opts =
            CallOptions::default().priority(self.priority.or(priority).map_or_else(Priority::default, Priority::new));
        opts.timeout = self.timeout.or(timeout_ms.map(Duration::from_millis));
        for (name, value) in &self.headers {
            opts = opts.header(name, value);
        }
        opts
    }
}

/// `netcore call`
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["method", "route"]))]
pub struct CallArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// The schema the method is declared in.
    #[arg(long, requires = "method")]
    schema: Option<PathBuf>,
    /// The method, as Service.method (needs --schema).
    #[arg(requires = "schema")]
    method: Option<String>,
    /// Its arguments as JSON: an object by name, or an array in order.
    #[arg(requires = "method")]
    args: Option<String>,
    /// An untyped route to send raw bytes to, e.g. /echo.
    #[arg(long, conflicts_with = "method")]
    route: Option<String>,
    /// The raw request body (untyped routes).
    #[arg(long, requires = "route", conflicts_with = "file")]
    data: Option<String>,
    /// A file whose bytes are the request body (untyped routes).
    #[arg(long, requires = "route")]
    file: Option<PathBuf>,
    /// Calls this many times, one after another, and prints latency p50/p99.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Untyped routes: write the answer's bytes as they arrive (a streamed or open-length answer,
    /// `serve`'s /stream/count), never holding it whole; exit 1 if it stops short.
    // Not `--stream`: that is the link's serial framing flag.
    #[arg(long, requires = "route", conflicts_with = "repeat")]
    streamed: bool,
    /// With --streamed: write the answer here instead of stdout.
    #[arg(long, value_name = "FILE", requires = "streamed")]
    out: Option<PathBuf>,
    #[command(flatten)]
    request: RequestArgs,
}

/// `netcore send`
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The file to send.
    file: PathBuf,
    /// The route to send it to.
    #[arg(long)]
    route: String,
    #[command(flatten)]
    link: LinkArgs,
    #[command(flatten)]
    request: RequestArgs,
}

struct Prepared {
    route: Route,
    body: Vec<u8>,
    opts: CallOptions,
    one_way: bool,
}

/// `netcore call`
pub async fn call(args: CallArgs, json: bool) -> Result<(), Failure> {
    // Everything that can be wrong with the command line is checked before connecting.
    let typed = match (&args.schema, &args.method) {
        (Some(path), Some(name)) => {
            let schema = schema::load(path)?;
            let types = Types::new(&schema);
            let (service, method) = schema::find_method(&schema, name)?;
            let text = args.args.as_deref().unwrap_or("null");
            let value: Value =
                serde_json::from_str(text).map_err(|e| Failure::usage(format!("arguments are not JSON: {e}")))?;
            let typed_args =
                types.check_args(method, &value).map_err(|e| Failure::usage(format!("{name}: argument {e}")))?;
            let body = codec::encode(&typed_args).map_err(Failure::failed)?;
            let path = service.route(method);
            let prepared = Prepared {
                route: Route::Id(route_id(&path)),
                body,
                opts: args.request.options(method.options.priority, method.options.timeout_ms),
                one_way: method.kind == MethodKind::Event,
            };
            Some((prepared, types, method.returns.ty.clone(), name.clone()))
        }
        _ => None,
    };
    let (prepared, decode) = match typed {
        Some((prepared, types, returns, name)) => (prepared, Some((types, returns, name))),
        None => {
            let route = args.route.clone().expect("clap requires a method or a route");
            let body = match (&args.data, &args.file) {
                (Some(data), _) => data.clone().into_bytes(),
                (None, Some(file)) => {
                    std::fs::read(file).map_err(|e| Failure::failed(format!("{}: {e}", file.display())))?
                }
                (None, None) => Vec::new(),
            };
            (Prepared { route: Route::Name(route), body, opts: args.request.options(None, None), one_way: false }, None)
        }
    };

    if args.streamed {
        return call_streamed(&args, prepared, json).await;
    }
    let endpoint = Endpoint::builder().build().map_err(Failure::failed)?;
    let connection = args.link.connect(&endpoint).await?;
    let route_label = args.route.clone().or(args.method.clone()).unwrap_or_default();
    let mut latencies = Vec::with_capacity(args.repeat as usize);
    let mut last = None;
    let calls = async {
        for _ in 0..args.repeat {
            let started = Instant::now();
            let body = Body::from(prepared.body.clone());
            if prepared.one_way {
                connection.notify_with(prepared.route.clone(), body, prepared.opts.clone()).await?;
            } else {
                // A file's upload gets a bar; small bodies are over before one could be drawn.
                let bar = args.file.as_ref().and_then(|_| progress::bar(body.len(), &route_label, json));
                last = Some(
                    call_with_progress(&connection, prepared.route.clone(), body, prepared.opts.clone(), bar).await?,
                );
            }
            latencies.push(started.elapsed());
        }
        Ok::<(), CallError>(())
    };
    let outcome = calls.await;
    // Closed gracefully on failure too: a timed-out call's CANCEL reaches the peer before GOAWAY.
    connection.close().await;
    outcome.map_err(Failure::failed)?;

    let result = match (&last, &decode) {
        (None, _) => Value::Null,
        (Some(reply), Some((types, returns, name))) => {
            let bytes = reply.bytes().map_err(Failure::failed)?;
            codec::decode_seed(types.decoder(returns), &bytes).map_err(|e| {
                Failure::failed(format!("{name}: the answer does not decode as {}: {e}", returns.canonical()))
            })?
        }
        (Some(reply), None) => {
            let bytes = reply.bytes().map_err(Failure::failed)?;
            if json {
                json!({
                    "bytes": bytes.len(),
                    "text": std::str::from_utf8(&bytes).ok(),
                    "headers": reply.headers(),
                })
            } else {
                std::io::stdout().write_all(&bytes).map_err(Failure::failed)?;
                Value::Null
            }
        }
    };
    let stats = (args.repeat > 1).then(|| latency_stats(&mut latencies));
    if json {
        let mut out = json!({ "result": result });
        if let Some(stats) = stats {
            out["latency_ms"] = stats;
        }
        print_json(&out);
    } else {
        if decode.is_some() && last.is_some() {
            say!("{}", serde_json::to_string_pretty(&result).expect("a JSON value prints"));
        }
        if let Some(stats) = stats {
            eprintln!(
                "{} calls: p50 {:.3} ms, p99 {:.3} ms, min {:.3} ms, max {:.3} ms",
                stats["count"], stats["p50"], stats["p99"], stats["min"], stats["max"]
            );
        }
    }
    Ok(())
}

/// `netcore call --streamed`: the answer written to stdout or `--out` chunk by chunk as it arrives.
async fn call_streamed(args: &CallArgs, prepared: Prepared, json: bool) -> Result<(), Failure> {
    let route = args.route.clone().unwrap_or_default();
    if json && args.out.is_none() {
        return Err(Failure::usage("call --streamed --json: give --out FILE for the answer (stdout carries the JSON)"));
    }
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| Failure::failed(format!("{}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let target = args.out.as_ref().map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    let endpoint = Endpoint::builder().build().map_err(Failure::failed)?;
    let connection = args.link.connect(&endpoint).await?;
    let started = Instant::now();
    let reply = match connection.call_stream(prepared.route, prepared.body, prepared.opts).await {
        Ok(reply) => reply,
        Err(e) => {
            connection.close().await;
            return Err(Failure::failed(format!("{route}: {e}")));
        }
    };
    let headers = reply.headers().clone();
    let mut body = reply.into_body();
    let open = body.is_open();
    let bar = progress::stream_bar(&route, json);
    let mut received = 0u64;
    let outcome = loop {
        match body.chunk().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                // Flushed at once: the bytes are seen as they arrive (the bar hidden meanwhile
                // when they go to the terminal too).
                let mut write = || out.write_all(&chunk).and_then(|()| out.flush());
                let written = match &bar {
                    Some(bar) if args.out.is_none() => bar.suspend(write),
                    _ => write(),
                };
                if let Err(e) = written {
                    if e.kind() == std::io::ErrorKind::BrokenPipe && args.out.is_none() {
                        // The reader went (`| head`): done, as for other output.
                        break Ok(());
                    }
                    break Err(Failure::failed(format!("{target}: {e}")));
                }
                if let Some(bar) = &bar {
                    bar.set_position(received);
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => {
                break Err(Failure::failed(format!("{route}: the answer stopped short after {received} bytes: {e}")))
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    drop(body);
    let elapsed = started.elapsed();
    connection.close().await;
    outcome?;
    let rate = received as f64 / elapsed.as_secs_f64().max(1e-9);
    if json {
        print_json(&json!({
            "route": route,
            "bytes": received,
            "open": open,
            "seconds": elapsed.as_secs_f64(),
            "bytes_per_second": rate,
            "headers": headers,
            "out": target,
        }));
    } else if args.out.is_some() {
        eprintln!(
            "received {received} bytes from {route} in {:.3} s ({rate:.0} B/s) into {target}",
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Latency percentiles in milliseconds (nearest rank).
fn latency_stats(latencies: &mut [Duration]) -> Value {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rank = |p: f64| {
        let index = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[index])
    };
    json!({
        "count": latencies.len(),
        "p50": rank(0.50),
        "p99": rank(0.99),
        "min": ms(latencies[0]),
        "max": ms(latencies[latencies.len() - 1]),
    })
}

/// A call whose upload moves `bar` (when there is one: see [`progress::bar`]).
async fn call_with_progress(
    connection: &Connection,
    route: Route,
    body: Body,
    opts: CallOptions,
    bar: Option<indicatif::ProgressBar>,
) -> Result<Reply, CallError> {
    let Some(bar) = bar else { return connection.call_with(route, body, opts).await };
    let total = body.len();
    let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(Progress { done: 0, total });
    let call = connection.call_with(route, body, opts.progress(progress_tx));
    tokio::pin!(call);
    let reply = loop {
        tokio::select! {
            reply = &mut call => break reply,
            changed = progress_rx.changed() => {
                if changed.is_ok() {
                    // The reply's bytes follow the request's: show the upload only.
                    bar.set_position(progress_rx.borrow().done.min(total));
                }
            }
        }
    };
    bar.finish_and_clear();
    reply
}

/// `netcore send`
pub async fn send(args: SendArgs, json: bool) -> Result<(), Failure> {
    let body = Body::file(&args.file).map_err(|e| Failure::failed(format!("{}: {e}", args.file.display())))?;
    let total = body.len();
    let endpoint = Endpoint::builder().build().map_err(Failure::failed)?;
    let connection = args.link.connect(&endpoint).await?;
    let started = Instant::now();
    let bar = progress::bar(total, &args.route, json);
    let opts = args.request.options(None, None);
    let reply = call_with_progress(&connection, Route::Name(args.route.clone()), body, opts, bar).await;
    let elapsed = started.elapsed();
    connection.close().await;
    let reply = reply.map_err(Failure::failed)?;
    let answer = reply.bytes().map_err(Failure::failed)?;
    let rate = total as f64 / elapsed.as_secs_f64().max(1e-9);
    if json {
        print_json(&json!({
            "route": args.route,
            "bytes": total,
            "seconds": elapsed.as_secs_f64(),
            "bytes_per_second": rate,
            "reply": { "bytes": answer.len(), "text": std::str::from_utf8(&answer).ok() },
        }));
    } else {
        eprintln!("sent {total} bytes to {} in {:.3} s ({:.0} B/s)", args.route, elapsed.as_secs_f64(), rate);
        std::io::stdout().write_all(&answer).map_err(Failure::failed)?;
    }
    Ok(())
}
