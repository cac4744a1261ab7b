//! `netcore`: check and generate schemas, call any method with JSON, serve, send files, dump
//! captures.
//!
//! ```text
//! check/gen ─▶ netcore_codegen::load ─▶ model ─▶ (emit + render)
//! diff      ─▶ two models ─▶ netcore_codegen::compat ─▶ changes, exit 1 if one breaks
//! fmt       ─▶ netcore_codegen::fmt::format_str ─▶ file rewritten (or named, with --check)
//! call      ─▶ model ─▶ value::Types::check(JSON) ─▶ codec::encode ─▶ Connection::call_with
//!                                   JSON ◀─ codec::decode_seed(value::Decode) ◀─ reply
//! call --streamed ─▶ Connection::call_stream ─▶ BodyStream chunks ─▶ stdout or --out FILE
//! serve     ─▶ Endpoint (echo, sink, or --mock answers from the model) ─▶ serve_tcp/unix/serial
//! dump      ─▶ inspect::Link (frame::Decoder, reassembly, value::Decode) over a capture file
//! tap       ─▶ TCP proxy or serial bridge ─▶ inspect::Link live, capture::Writer to a file
//! ```
//!
//! Exit codes: 0 success; 1 the operation failed (invalid schema, call error, link error);
//! 2 usage (bad flags, an unknown method, arguments that do not fit the schema, a declaration
//! `diff` cannot load). `diff` exits 1 when a change breaks old peers, `fmt --check` when a file
//! is not in canonical form.

/// `println!` for a pipe: when the reader has gone (`netcore check … | head`), the command ends
/// quietly with success, as other Unix tools do, instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("error: cannot write to stdout: {err}");
            std::process::exit(1);
        }
    }};
}

mod call;
mod capture;
mod dump;
mod inspect;
mod link;
mod progress;
mod schema;
mod serve;
mod tap;
mod value;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Typed calls between two devices over one connection: the command-line tool.
#[derive(Debug, Parser)]
#[command(name = "netcore", version, about)]
struct Cli {
    /// More logs on stderr: -v info, -vv debug (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates schemas; prints their services, methods, routes, route ids and fingerprints.
    Check(schema::CheckArgs),
    /// Prints the Rust that build.rs generates from a schema.
    Gen(schema::GenArgs),
    /// Lists what changed between two declarations and whether it breaks old peers (exit 1 if so).
    Diff(schema::DiffArgs),
    /// Rewrites schemas in canonical form, comments kept; --check only names those that differ.
    Fmt(schema::FmtArgs),
    /// Calls a method of a schema with JSON arguments, or an untyped route with raw bytes
    /// (`--streamed`: the answer is written out as it arrives).
    Call(call::CallArgs),
    /// Serves an echo or sink endpoint, or a mock of a schema's services; `/stream/count` answers
    /// payload `N` with the lines 1 to N streamed (`N K`: stops short after line K).
    Serve(serve::ServeArgs),
    /// Sends a file to a route, with a progress bar.
    Send(call::SendArgs),
    /// Decodes a capture of raw link bytes frame by frame.
    Dump(dump::DumpArgs),
    /// Forwards a TCP connection or bridges two serial ports, decoding the traffic live.
    Tap(tap::TapArgs),
}

/// A failure, and the exit code it gives.
#[derive(Debug)]
pub enum Failure {
    /// Exit code 1: the operation failed.
    Failed(String),
    /// Exit code 2: the command was used wrongly.
    Usage(String),
    /// Already reported (for instance as JSON); exit code 1.
    Reported,
}

impl Failure {
    fn failed(message: impl std::fmt::Display) -> Self {
        Failure::Failed(message.to_string())
    }

    fn usage(message: impl std::fmt::Display) -> Self {
        Failure::Usage(message.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let json = cli.json;
    let result = match cli.command {
        Command::Check(args) => schema::check(args, json),
        Command::Gen(args) => schema::gen(args),
        Command::Diff(args) => schema::diff(args, json),
        Command::Fmt(args) => schema::fmt(args, json),
        Command::Dump(args) => dump::dump(args, json),
        Command::Call(args) => runtime().and_then(|rt| rt.block_on(call::call(args, json))),
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(call::send(args, json))),
        Command::Serve(args) => runtime().and_then(|rt| rt.block_on(serve::serve(args, json))),
        Command::Tap(args) => runtime().and_then(|rt| rt.block_on(tap::tap(args, json))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::from(1),
        Err(Failure::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Failure::failed)
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        0 => return,
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a terminal: a log redirected to a file stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

/// Prints a JSON value on stdout, one line.
pub fn print_json(value: &serde_json::Value) {
    say!("{value}");
}
