//! `netcore check` and `netcore gen`: the compiler's own parse, validation and emitter.

use std::path::{Path, PathBuf};

use netcore_codegen::model::{Method, MethodKind, Schema, Service};
use netcore_codegen::SchemaError;
use serde_json::{json, Value};

use crate::{print_json, Failure};

/// `netcore check SCHEMA…`
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Schema files (their imports are followed).
    #[arg(required = true)]
    schemas: Vec<PathBuf>,
}

/// `netcore gen SCHEMA [-o FILE]`
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// The root schema file.
    schema: PathBuf,
    /// Write here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Loads and validates a schema, with every error as the compiler reports it.
pub fn load(path: &Path) -> Result<Schema, Failure> {
    netcore_codegen::load(path).map(|(schema, _)| schema).map_err(|errors| Failure::Failed(render_errors(&errors)))
}

fn render_errors(errors: &[SchemaError]) -> String {
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("{} error(s) in the schema\n{}", errors.len(), text.join("\n"))
}

/// The method `Service.method` of a schema, or a usage error listing what there is.
pub fn find_method<'a>(schema: &'a Schema, name: &str) -> Result<(&'a Service, &'a Method), Failure> {
    let all = || {
        let names: Vec<String> = schema
            .services
            .iter()
            .flat_map(|s| s.methods.iter().map(move |m| format!("{}.{}", s.name, m.name)))
            .collect();
        names.join(", ")
    };
    let Some((service, method)) = name.split_once('.') else {
        return Err(Failure::usage(format!("name a method as Service.method (one of: {})", all())));
    };
    schema
        .services
        .iter()
        .find(|s| s.name == service)
        .and_then(|s| s.methods.iter().find(|m| m.name == method).map(|m| (s, m)))
        .ok_or_else(|| Failure::usage(format!("no method `{name}` in the schema (methods: {})", all())))
}

/// One method as `check --json` and `serve` describe it.
pub fn describe_method(service: &Service, method: &Method) -> Value {
    let route = service.route(method);
    json!({
        "name": method.name,
        "kind": match method.kind { MethodKind::Call => "rpc", MethodKind::Event => "event" },
        "route": route,
        "route_id": netcore_runtime::route_id(&route),
        "args": method.args.iter().map(|a| json!({"name": a.name, "type": a.ty.ty.canonical()})).collect::<Vec<_>>(),
        "returns": method.returns.ty.canonical(),
        "priority": method.options.priority,
        "timeout_ms": method.options.timeout_ms,
    })
}

/// `netcore check`
pub fn check(args: CheckArgs, json: bool) -> Result<(), Failure> {
    let mut reports = Vec::new();
    let mut failed = 0;
    for path in &args.schemas {
        match netcore_codegen::load(path) {
            Ok((schema, files)) => reports.push((path, Ok((schema, files)))),
            Err(errors) => {
                failed += 1;
                reports.push((path, Err(errors)));
            }
        }
    }
    if json {
        let files: Vec<Value> = reports
            .iter()
            .map(|(path, report)| match report {
                Ok((schema, files)) => json!({
                    "schema": path,
                    "ok": true,
                    "files": files,
                    "types": schema.types.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "services": schema.services.iter().map(|s| json!({
                        "name": s.name,
                        "prefix": s.prefix,
                        "fingerprint": format!("{:016x}", s.fingerprint(&schema.types)),
                        "methods": s.methods.iter().map(|m| describe_method(s, m)).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
                Err(errors) => json!({
                    "schema": path,
                    "ok": false,
                    "errors": errors.iter().map(|e| json!({
                        "file": e.file, "line": e.line, "column": e.column, "message": e.message,
                    })).collect::<Vec<_>>(),
                }),
            })
            .collect();
        print_json(&json!({ "ok": failed == 0, "schemas": files }));
    } else {
        for (path, report) in &reports {
            match report {
                Ok((schema, _)) => print_schema(path, schema),
                Err(errors) => eprintln!("{}", render_errors(errors)),
            }
        }
    }
    match failed {
        0 => Ok(()),
        _ if json => Err(Failure::Reported),
        n => Err(Failure::Failed(format!("{n} of {} schema(s) invalid", args.schemas.len()))),
    }
}

fn print_schema(path: &Path, schema: &Schema) {
    println!("{}: ok ({} types, {} services)", path.display(), schema.types.len(), schema.services.len());
    for service in &schema.services {
        println!(
            "service {} {}  fingerprint {:016x}",
            service.name,
            service.prefix,
            service.fingerprint(&schema.types)
        );
        for method in &service.methods {
            let route = service.route(method);
            let args: Vec<String> =
                method.args.iter().map(|a| format!("{}: {}", a.name, a.ty.ty.canonical())).collect();
            let (kind, ret) = match method.kind {
                MethodKind::Call => ("rpc", format!(" -> {}", method.returns.ty.canonical())),
                MethodKind::Event => ("event", String::new()),
            };
            let mut options = String::new();
            if let Some(p) = method.options.priority {
                options.push_str(&format!("  priority {p}"));
            }
            if let Some(t) = method.options.timeout_ms {
                options.push_str(&format!("  timeout {t} ms"));
            }
            println!(
                "  {kind:5} {}.{}({}){ret}\n        route {route}  id {:08x}{options}",
                service.name,
                method.name,
                args.join(", "),
                netcore_runtime::route_id(&route)
            );
        }
    }
}

/// `netcore gen`
pub fn gen(args: GenArgs) -> Result<(), Failure> {
    let schema = load(&args.schema)?;
    let code = netcore_codegen::render(netcore_codegen::emit::emit_schema(&schema), &args.schema);
    match args.output {
        Some(path) => std::fs::write(&path, code).map_err(|e| Failure::failed(format!("{}: {e}", path.display()))),
        None => {
            print!("{code}");
            Ok(())
        }
    }
}
