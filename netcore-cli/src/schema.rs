//! `netcore check`, `gen`, `diff` and `fmt`: the compiler's own parse, validation, emitter,
//! compatibility analysis (`netcore_codegen::compat`) and formatter (`netcore_codegen::fmt`).

use std::path::{Path, PathBuf};

use netcore_codegen::compat::{Change, Impact};
use netcore_codegen::model::{fnv1a64, Method, MethodKind, Origin, Schema, Service};
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

/// `netcore diff OLD NEW`
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The declaration old peers are built from.
    old: PathBuf,
    /// The new declaration.
    new: PathBuf,
}

/// `netcore fmt SCHEMA… [--check]`
#[derive(Debug, clap::Args)]
pub struct FmtArgs {
    /// Schema files, each rewritten in canonical form (imports are not followed).
    #[arg(required = true)]
    schemas: Vec<PathBuf>,
    /// Change nothing; name the files that are not in canonical form and exit 1 if there are any.
    #[arg(long)]
    check: bool,
}

/// The method hash a server announces in its HELLO's METHODS table (docs/PROTOCOL.md §5.1, §15).
pub fn method_hash(schema: &Schema, service: &Service, method: &Method) -> u64 {
    fnv1a64(service.method_layout(method, &schema.types).as_bytes())
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
                        "methods": s.methods.iter().map(|m| {
                            let mut method = describe_method(s, m);
                            method["hash"] = json!(format!("{:016x}", method_hash(schema, s, m)));
                            method
                        }).collect::<Vec<_>>(),
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
    say!("{}: ok ({} types, {} services)", path.display(), schema.types.len(), schema.services.len());
    for service in &schema.services {
        say!("service {} {}  fingerprint {:016x}", service.name, service.prefix, service.fingerprint(&schema.types));
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
            say!(
                "  {kind:5} {}.{}({}){ret}\n        route {route}  id {:08x}  hash {:016x}{options}",
                service.name,
                method.name,
                args.join(", "),
                netcore_runtime::route_id(&route),
                method_hash(schema, service, method)
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
            say!("{}", code.trim_end_matches('\n'));
            Ok(())
        }
    }
}

/// `netcore diff`: every difference, classified for peers built from OLD; exit 1 if one breaks
/// them, 2 if either declaration does not load.
pub fn diff(args: DiffArgs, json: bool) -> Result<(), Failure> {
    let load = |path: &Path| {
        netcore_codegen::load(path).map(|(schema, _)| schema).map_err(|errors| Failure::Usage(render_errors(&errors)))
    };
    let (old, new) = (load(&args.old)?, load(&args.new)?);
    let changes = netcore_codegen::compat(&old, &new);
    let count = |impact| changes.iter().filter(|c| c.impact == impact).count();
    let (breaking, compatible, cosmetic) =
        (count(Impact::Breaking), count(Impact::Compatible), count(Impact::Cosmetic));
    if json {
        print_json(&json!({
            "old": args.old,
            "new": args.new,
            "breaking": breaking > 0,
            "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
        }));
    } else {
        for change in &changes {
            say!("{change}");
        }
        say!(
            "{}: {breaking} breaking, {compatible} compatible, {cosmetic} cosmetic change(s) against {}",
            args.new.display(),
            args.old.display()
        );
    }
    match breaking {
        0 => Ok(()),
        _ if json => Err(Failure::Reported),
        n => Err(Failure::Failed(format!(
            "{n} change(s) break peers built from {}: upgrade them first, or keep the old methods beside the new",
            args.old.display()
        ))),
    }
}

fn change_json(change: &Change) -> Value {
    let origin = |origin: &Option<Origin>| match origin {
        Some(Origin::Schema { file, line, column }) => json!({"file": file, "line": line, "column": column}),
        _ => Value::Null,
    };
    json!({
        "impact": match change.impact {
            Impact::Breaking => "breaking",
            Impact::Compatible => "compatible",
            Impact::Cosmetic => "cosmetic",
        },
        "message": change.message,
        "old": origin(&change.old),
        "new": origin(&change.new),
    })
}

/// `netcore fmt`: rewrites each file in canonical form, or with `--check` names those that are not.
pub fn fmt(args: FmtArgs, json: bool) -> Result<(), Failure> {
    let mut reports = Vec::new();
    let (mut changed, mut failed) = (0, 0);
    for path in &args.schemas {
        let report = std::fs::read_to_string(path)
            .map_err(|err| format!("{}: cannot read the schema: {err}", path.display()))
            .and_then(|source| {
                let formatted = netcore_codegen::fmt::format_str(&source, path).map_err(|err| err.to_string())?;
                let differs = formatted != source;
                if differs && !args.check {
                    std::fs::write(path, &formatted)
                        .map_err(|err| format!("{}: cannot write: {err}", path.display()))?;
                }
                Ok(differs)
            });
        match &report {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(_) => failed += 1,
        }
        reports.push((path, report));
    }
    if json {
        let files: Vec<Value> = reports
            .iter()
            .map(|(path, report)| match report {
                Ok(differs) => json!({"schema": path, "ok": true, "changed": differs}),
                Err(error) => json!({"schema": path, "ok": false, "error": error}),
            })
            .collect();
        print_json(&json!({"check": args.check, "ok": failed == 0 && !(args.check && changed > 0), "files": files}));
    } else {
        for (path, report) in &reports {
            match report {
                Ok(true) if args.check => say!("would reformat {}", path.display()),
                Ok(true) => say!("formatted {}", path.display()),
                Ok(false) => {}
                Err(error) => eprintln!("{error}"),
            }
        }
    }
    match (failed, args.check && changed > 0) {
        (0, false) => Ok(()),
        _ if json => Err(Failure::Reported),
        (0, true) => Err(Failure::Failed(format!(
            "{changed} of {} schema(s) not in canonical form: run `netcore fmt` on them",
            args.schemas.len()
        ))),
        (n, _) => Err(Failure::Failed(format!("{n} of {} schema(s) could not be formatted", args.schemas.len()))),
    }
}
