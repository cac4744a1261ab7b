//! `netcore serve`: an echo or sink endpoint on any link, or a mock of a schema's services.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use netcore_runtime::{codec, Endpoint, Response};
use serde_json::json;

use crate::link::LinkArgs;
use crate::value::Types;
use crate::{print_json, schema, Failure};

/// `netcore serve`
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// Answer every other route with the length of its payload (as text) instead of echoing it.
    #[arg(long)]
    sink: bool,
    /// The schema whose services `--mock` serves.
    #[arg(long, requires = "mock")]
    schema: Option<PathBuf>,
    /// Answer every method of `--schema` with a default value of its result type.
    #[arg(long, requires = "schema")]
    mock: bool,
}

/// `netcore serve`
pub async fn serve(args: ServeArgs, json: bool) -> Result<(), Failure> {
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
                    async move { Ok(Response::bytes(answer)) }
                });
            }
        }
    }
    let sink = args.sink;
    builder = builder.default_handler(move |request| async move {
        let payload = request.bytes()?;
        tracing::info!(route = request.route(), bytes = payload.len(), "request");
        Ok(if sink { Response::text(payload.len().to_string()) } else { Response::bytes(payload) })
    });
    let endpoint = builder.build().map_err(Failure::failed)?;

    let announce = |at: String| {
        if json {
            print_json(&json!({ "listening": at, "mode": if sink { "sink" } else { "echo" }, "mock": mocked }));
        } else {
            println!("listening on {at}");
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
            let io = netcore_runtime::transport::serial::open(port, args.link.baud)
                .map_err(|e| Failure::failed(format!("serial {port}: {e}")))?;
            let connection = endpoint.connect_with(io, format!("serial {port}"), args.link.serial_config());
            announce(format!("serial {port}"));
            let reason = connection.closed().await;
            Err(Failure::failed(format!("serial {port}: {reason:?}")))
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
