//! Drives the built `netcore` binary against real servers on 127.0.0.1: a server of the generated
//! `Users` service started here, and `netcore serve` itself.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use netcore::{Endpoint, HandlerError, Response};
use serde_json::{json, Value};

#[allow(dead_code)]
mod users {
    netcore::include_schema!("users");
}

use users::{Timestamp, User, UserStatus};

struct Accounts;

impl users::Users for Accounts {
    async fn get(&self, id: u32) -> Result<Option<User>, HandlerError> {
        Ok((id == 7).then(|| User {
            id,
            name: "Ada".into(),
            email: None,
            tags: vec!["admin".into()],
            created: Timestamp { millis: 1_700_000_000_000 },
        }))
    }
    async fn create(&self, name: String, email: Option<String>) -> Result<u32, HandlerError> {
        if name.is_empty() {
            return Err(HandlerError::bad_request("a user needs a name"));
        }
        Ok(name.len() as u32 + email.map_or(0, |e| 1000 * e.len() as u32))
    }
    async fn list(&self, prefix: String, limit: u32) -> Result<Vec<User>, HandlerError> {
        Ok((0..limit)
            .filter(|_| !prefix.is_empty())
            .map(|i| User {
                id: i,
                name: format!("{prefix}{i}"),
                email: Some(format!("{i}@example.com")),
                tags: vec![],
                created: Timestamp { millis: u64::from(i) },
            })
            .collect())
    }
    async fn status(&self, id: u32) -> Result<UserStatus, HandlerError> {
        Ok(match id {
            0 => UserStatus::Active,
            1 => UserStatus::Suspended { reason: "spam".into(), until: None },
            n => UserStatus::Deleted(u64::from(n)),
        })
    }
    async fn delete(&self, _id: u32) -> Result<bool, HandlerError> {
        // Slow on purpose: the timeout test calls it.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(true)
    }
    async fn changed(&self, _id: u32) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// An endpoint serving the generated Users service and an /echo route (it echoes header
/// `x-test` as `x-seen`).
fn users_endpoint() -> Endpoint {
    Endpoint::builder()
        .blueprint(users::UsersServer::blueprint(Accounts))
        .route("/echo", |request: netcore::Request| async move {
            let seen = request.headers().get("x-test").cloned().unwrap_or_default();
            Ok(Response::bytes(request.bytes()?).with_header("x-seen", seen))
        })
        .build()
        .unwrap()
}

/// [`users_endpoint`] on 127.0.0.1, on its own thread and runtime.
fn users_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let endpoint = users_endpoint();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            endpoint.serve_tcp(listener).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// A pty pair standing in for a serial line: the slave's path for the `netcore` child, and the
/// master, whose bytes `on_master` gets as a netcore transport on its own thread and runtime.
/// The slave stays open in the returned handle, so the master never sees a hang-up.
fn pty<F, Fut>(on_master: F) -> (String, serialport::TTYPort)
where
    F: FnOnce(netcore::transport::BlockingIo) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (master, path, slave) = pty_pair();
    run_on(master, on_master);
    (path, slave)
}

/// Everything `child` writes to the terminal whose master is `master`, until it has exited and
/// its output is drained; the child must succeed.
fn drain_terminal(master: &mut serialport::TTYPort, child: &mut std::process::Child) -> String {
    use std::io::Read;
    let (mut seen, mut exited) = (Vec::new(), false);
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            // Quiet for 100 ms: done once the child has exited and its output is drained.
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                if exited {
                    break;
                }
                exited = child.try_wait().unwrap().is_some();
            }
            Err(_) => break, // EIO: the child closed the terminal
        }
    }
    assert!(child.wait().unwrap().success());
    String::from_utf8_lossy(&seen).into_owned()
}

/// A pty pair: master, the slave's path, the slave.
fn pty_pair() -> (serialport::TTYPort, String, serialport::TTYPort) {
    use serialport::SerialPort;
    let (mut master, slave) = serialport::TTYPort::pair().unwrap();
    master.set_timeout(Duration::from_millis(100)).unwrap();
    (master, slave.name().unwrap(), slave)
}

/// Runs `on_master` with the master of a pty pair as a netcore transport, on its own thread and
/// runtime.
fn run_on<F, Fut>(master: serialport::TTYPort, on_master: F)
where
    F: FnOnce(netcore::transport::BlockingIo) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let reader = master.try_clone_native().unwrap();
            on_master(netcore::transport::serial::from_port(reader, master).unwrap()).await;
        });
    });
}

/// [`users_endpoint`] on the master of a pty pair, with `config`.
fn users_on_pty(config: netcore::session::Config) -> (String, serialport::TTYPort) {
    pty(move |io| async move {
        let endpoint = users_endpoint();
        let connection = endpoint.connect_with(io, "pty board", config);
        connection.closed().await;
    })
}

fn netcore() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_netcore"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

fn run(args: &[&str]) -> Output {
    netcore().args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{:?}\nstdout: {}\nstderr: {}", output.status, stdout(output), stderr(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

const USERS: &str = "../schemas/users.ncs";

/// `netcore serve …` (or `tap`) as a child process, the address it printed, and the lines it
/// prints after that.
struct Served {
    child: Child,
    addr: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    /// `netcore serve --tcp 127.0.0.1:0 ARGS…`
    fn start(args: &[&str]) -> Self {
        Self::spawn(&[&["serve", "--tcp", "127.0.0.1:0"], args].concat())
    }

    /// `netcore ARGS…`, whose first line says where it listens: `listening on tcp ADDR`,
    /// `tapping tcp ADDR → …`, or JSON with `listening`.
    fn spawn(args: &[&str]) -> Self {
        let mut child = netcore().args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim();
        let at = match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                v["listening"].as_str().map(str::to_owned).or_else(|| v["bridging"].as_array().map(|_| String::new()))
            }
            Err(_) => line
                .strip_prefix("listening on ")
                .or_else(|| line.strip_prefix("tapping "))
                .map(|rest| rest.split(' ').take(2).collect::<Vec<_>>().join(" ")),
        };
        let at = at.unwrap_or_else(|| panic!("{line}"));
        let addr = at.split_once(' ').map_or(at.clone(), |(_, addr)| addr.to_owned());
        // Drained on a thread, so that the child never blocks on a full pipe.
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, addr, lines }
    }

    /// The next line that contains `needle` (a guard of 10 s against a hang, not a timing check).
    fn line_with(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no line with {needle:?}: {e}"),
            }
        }
    }

    /// Waits for the child to exit by itself; its remaining lines and exit code.
    fn finish(mut self) -> (Vec<String>, Option<i32>) {
        let status = self.child.wait().unwrap();
        (self.lines.iter().collect(), status.code())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn check_prints_services_methods_routes_and_ids() {
    let output = run(&["check", USERS, "../schemas/telemetry.ncs"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("service Users /user  fingerprint "), "{text}");
    let id = format!("{:08x}", netcore::route_id("/user/get"));
    assert!(text.contains(&format!("route /user/get  id {id}")), "{text}");
    assert!(text.contains("rpc   Device.command(command: Command) -> bool"), "{text}");
    assert!(text.contains("priority 7"), "{text}");

    let report = json_of(&run(&["--json", "check", USERS]));
    let users = &report["schemas"][0]["services"][0];
    assert_eq!(users["name"], "Users");
    assert_eq!(users["fingerprint"], format!("{:016x}", users::UsersClient::fingerprint()));
    assert_eq!(users["methods"][0]["route_id"], netcore::route_id("/user/get"));
    assert_eq!(users["methods"][1]["timeout_ms"], 2000);
    // The hash a server of the generated code announces in its HELLO's METHODS table.
    assert_eq!(users["methods"][0]["hash"], format!("{:016x}", users::UsersServer::get_hash()));
    assert!(text.contains(&format!("id {id}  hash {:016x}", users::UsersServer::get_hash())), "{text}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `netcore check … | head -1`: the reader goes away after one line; the command must not
    // panic on the broken pipe (exit 101 and a backtrace hint), it ends with success.
    // Far more than a pipe's buffer (64 KiB), so the command is still writing when the reader goes.
    let args: Vec<&str> = std::iter::once("check").chain(std::iter::repeat_n(USERS, 600)).collect();
    let mut child = netcore()
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    drop(out);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

#[test]
fn check_reports_the_compilers_errors_with_positions_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ncs");
    std::fs::write(&bad, "service X @prefix(\"/x\") {\n    rpc a(b: Nope) -> u32;\n    rpc a() -> u32;\n}\n").unwrap();
    let output = run(&["check", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains(&format!("{}:2:11: unknown type `Nope`", bad.display())), "{text}");
    assert!(text.contains("3 error(s)"), "{text}");

    let output = run(&["--json", "check", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let errors = report["schemas"][0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert!(errors
        .iter()
        .any(|e| e["line"] == 2 && e["column"] == 11 && e["message"].as_str().unwrap().contains("Nope")));

    let output = run(&["check", "no/such.ncs"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read no/such.ncs"), "{}", stderr(&output));
}

/// A copy of schemas/users.ncs (and the file it imports) in `dir`, edited by `edit`.
fn edited_users(dir: &std::path::Path, edit: impl Fn(String) -> String) -> String {
    std::fs::copy("../schemas/common.ncs", dir.join("common.ncs")).unwrap();
    let path = dir.join("users.ncs");
    std::fs::write(&path, edit(std::fs::read_to_string(USERS).unwrap())).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn diff_classifies_every_change_with_its_position_and_exits_1_when_one_breaks() {
    let dir = tempfile::tempdir().unwrap();
    // A method added: compatible, exit 0.
    let added = edited_users(dir.path(), |s| s.replace("    /// Tells", "    rpc ping() -> bool;\n    /// Tells"));
    let output = run(&["diff", USERS, &added]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(&format!("{added}:32:9: compatible: ")), "{text}");
    assert!(text.contains("0 breaking, 1 compatible, 0 cosmetic"), "{text}");

    // An argument changed and a field added: breaking, exit 1, each with its position.
    let broken = edited_users(dir.path(), |s| {
        s.replace("rpc delete(id: u32)", "rpc delete(id: u64)").replace("    tags:", "    phone: string?,\n    tags:")
    });
    let output = run(&["diff", USERS, &broken]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains(&format!("{broken}:32:9: breaking: argument `id` of `/user/delete` changed")), "{text}");
    assert!(text.contains(&format!("{broken}:9:5: breaking: field `phone` added to struct `User`")), "{text}");
    assert!(stderr(&output).contains("break peers built from ../schemas/users.ncs"), "{}", stderr(&output));

    let output = run(&["--json", "diff", USERS, &broken]);
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["breaking"], true);
    let changes = report["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["impact"] == "breaking" && c["new"]["file"] == broken.as_str()), "{report}");
    assert!(changes.iter().any(|c| c["new"]["line"] == 9 && c["new"]["column"] == 5), "{report}");

    // Docs only: cosmetic, exit 0; the same file: no change at all.
    let docs = edited_users(dir.path(), |s| s.replace("/// A user account.", "/// An account."));
    let report = json_of(&run(&["--json", "diff", USERS, &docs]));
    assert_eq!(report["changes"][0]["impact"], "cosmetic", "{report}");
    assert_eq!(json_of(&run(&["--json", "diff", USERS, USERS]))["changes"], json!([]));

    // A declaration that does not load, or a missing argument: usage, exit 2.
    std::fs::write(dir.path().join("bad.ncs"), "struct {").unwrap();
    let output = run(&["diff", USERS, dir.path().join("bad.ncs").to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("bad.ncs:1:8: "), "{}", stderr(&output));
    assert_eq!(run(&["diff", USERS]).status.code(), Some(2));
}

#[test]
fn fmt_rewrites_schemas_in_canonical_form_and_check_names_the_ones_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let messy = dir.path().join("messy.ncs");
    std::fs::write(&messy, "// kept\nstruct A{x:u32 // why\n}\nservice S{rpc get(a:A)->A?;}\n").unwrap();
    let messy = messy.to_str().unwrap();

    let output = run(&["fmt", "--check", USERS, messy]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), format!("would reformat {messy}\n"));
    assert!(stderr(&output).contains("1 of 2 schema(s) not in canonical form"), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&run(&["--json", "fmt", "--check", messy]).stdout).unwrap();
    assert_eq!(report["files"][0]["changed"], true, "{report}");

    let output = run(&["fmt", messy]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("formatted {messy}\n"));
    let tidy = "// kept\nstruct A {\n    x: u32, // why\n}\n\nservice S {\n    rpc get(a: A) -> A?;\n}\n";
    assert_eq!(std::fs::read_to_string(messy).unwrap(), tidy);
    let output = run(&["fmt", "--check", USERS, messy]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");

    // What does not parse: the compiler's error, the file left alone, exit 1.
    std::fs::write(messy, "struct A {").unwrap();
    let output = run(&["fmt", messy]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("{messy}:1:11: ")), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(messy).unwrap(), "struct A {");
}

#[test]
fn gen_prints_what_build_rs_generates() {
    let output = run(&["gen", USERS]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), include_str!(concat!(env!("OUT_DIR"), "/users.rs")));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.rs");
    let output = run(&["gen", USERS, "-o", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(file).unwrap(), include_str!(concat!(env!("OUT_DIR"), "/users.rs")));
}

#[test]
fn call_sends_json_arguments_to_a_generated_server_and_prints_its_answer() {
    let addr = users_server().to_string();
    let call =
        |method: &str, args: &str| json_of(&run(&["--json", "call", "--schema", USERS, "--tcp", &addr, method, args]));
    assert_eq!(
        call("Users.get", r#"{"id": 7}"#)["result"],
        json!({"id": 7, "name": "Ada", "email": null, "tags": ["admin"], "created": {"millis": 1_700_000_000_000u64}})
    );
    assert_eq!(call("Users.get", "[8]")["result"], Value::Null);
    assert_eq!(call("Users.create", r#"{"name": "Ada", "email": "a@b"}"#)["result"], 3003);
    assert_eq!(call("Users.create", r#"{"name": "Ada"}"#)["result"], 3);
    assert_eq!(call("Users.status", r#"{"id": 0}"#)["result"], "Active");
    assert_eq!(call("Users.status", r#"{"id": 1}"#)["result"], json!({"Suspended": {"reason": "spam", "until": null}}));
    assert_eq!(call("Users.status", r#"{"id": 9}"#)["result"], json!({"Deleted": 9}));
    let list = call("Users.list", r#"{"prefix": "u", "limit": 3}"#);
    assert_eq!(list["result"].as_array().unwrap().len(), 3);
    assert_eq!(list["result"][2]["email"], "2@example.com");
    // A one-way event: nothing to answer.
    assert_eq!(call("Users.changed", r#"{"id": 1}"#)["result"], Value::Null);

    // Text output: the answer as pretty JSON.
    let output = run(&["call", "--schema", USERS, "--tcp", &addr, "Users.status", r#"{"id": 4}"#]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "{\n  \"Deleted\": 4\n}\n");
}

#[test]
fn call_rejects_arguments_that_do_not_fit_naming_the_field_with_exit_2() {
    // No server: the arguments are checked before connecting.
    let cases = [
        ("Users.get", r#"{"id": -1}"#, "Users.get: argument `id`: -1 does not fit in u32"),
        ("Users.get", r#"{"di": 1}"#, "Users.get: argument `di`: no such argument; `get` takes (id)"),
        ("Users.list", r#"{"prefix": 3, "limit": 1}"#, "`prefix`: expected string, found a number 3"),
        ("Users.get", "{id: 1}", "arguments are not JSON"),
        ("Users.nope", "{}", "no method `Users.nope` in the schema (methods: Users.get, Users.create"),
        ("get", "{}", "name a method as Service.method"),
    ];
    for (method, args, message) in cases {
        let output = run(&["call", "--schema", USERS, "--tcp", "127.0.0.1:1", method, args]);
        assert_eq!(output.status.code(), Some(2), "{method} {args}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{method} {args}: {}", stderr(&output));
    }
    // clap's own usage errors are exit 2 too.
    assert_eq!(run(&["call", "--tcp", "127.0.0.1:1"]).status.code(), Some(2));
}

#[test]
fn call_failures_exit_1_with_the_reason() {
    let addr = users_server().to_string();
    let output = run(&["call", "--schema", USERS, "--tcp", &addr, "Users.create", r#"{"name": ""}"#]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("a user needs a name"), "{}", stderr(&output));

    let output = run(&["call", "--schema", USERS, "--tcp", &addr, "--timeout", "200ms", "Users.delete", "[1]"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("timed out after"), "{}", stderr(&output));

    // Nothing listens on port 1.
    let output = run(&["call", "--tcp", "127.0.0.1:1", "--route", "/echo", "--data", "x"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("tcp 127.0.0.1:1: "), "{}", stderr(&output));
}

#[test]
fn call_sends_raw_bytes_to_untyped_routes_with_headers_and_repeats() {
    let addr = users_server().to_string();
    let output = run(&["call", "--tcp", &addr, "--route", "/echo", "--data", "hello"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"hello");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let output = run(&["call", "--tcp", &addr, "--route", "/echo", "--file", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, body);

    let report = json_of(&run(&[
        "--json",
        "call",
        "--tcp",
        &addr,
        "--route",
        "/echo",
        "--data",
        "hi",
        "-H",
        "x-test=yes",
        "--priority",
        "6",
        "--repeat",
        "20",
    ]));
    assert_eq!(report["result"]["text"], "hi");
    assert_eq!(report["result"]["headers"]["x-seen"], "yes");
    let latency = &report["latency_ms"];
    assert_eq!(latency["count"], 20);
    assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap(), "{latency}");

    let output = run(&["call", "--tcp", &addr, "--route", "/echo", "--data", "x", "--repeat", "5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("5 calls: p50 "), "{}", stderr(&output));
}

#[test]
fn serve_echoes_and_sinks() {
    let echo = Served::start(&[]);
    let output = run(&["call", "--tcp", &echo.addr, "--route", "/anything", "--data", "ping"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout, b"ping");

    let sink = Served::start(&["--sink"]);
    let report = json_of(&run(&["--json", "call", "--tcp", &sink.addr, "--route", "/up", "--data", "12345"]));
    assert_eq!(report["result"]["text"], "5");
}

#[test]
fn serve_mock_answers_every_method_with_a_default() {
    let mock = Served::start(&["--schema", USERS, "--mock"]);
    let call = |method: &str, args: &str| {
        json_of(&run(&["--json", "call", "--schema", USERS, "--tcp", &mock.addr, method, args]))["result"].clone()
    };
    assert_eq!(call("Users.get", "[1]"), Value::Null);
    assert_eq!(call("Users.create", r#"["a", null]"#), 0);
    assert_eq!(call("Users.list", r#"["", 5]"#), json!([]));
    assert_eq!(call("Users.status", "[1]"), "Active");
    assert_eq!(call("Users.delete", "[1]"), false);

    let telemetry = "../schemas/telemetry.ncs";
    let mock = Served::start(&["--schema", telemetry, "--mock"]);
    let output = run(&["--json", "call", "--schema", telemetry, "--tcp", &mock.addr, "Device.settings"]);
    assert_eq!(json_of(&output)["result"], json!({}));
}

#[test]
fn send_uploads_a_file_and_reports_its_size() {
    let sink = Served::start(&["--sink"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.bin");
    std::fs::write(&file, vec![0x5a; 3 << 20]).unwrap();
    let report = json_of(&run(&["--json", "send", file.to_str().unwrap(), "--route", "/upload", "--tcp", &sink.addr]));
    assert_eq!(report["bytes"], 3 << 20);
    assert_eq!(report["reply"]["text"], (3 << 20).to_string());

    // Not a terminal: no progress bar, a summary line on stderr and the reply on stdout.
    let output = run(&["send", file.to_str().unwrap(), "--route", "/upload", "--tcp", &sink.addr]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), (3 << 20).to_string());
    assert!(stderr(&output).starts_with("sent 3145728 bytes to /upload in "), "{}", stderr(&output));

    let output = run(&["send", "no/such/file", "--route", "/upload", "--tcp", &sink.addr]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no/such/file"), "{}", stderr(&output));
}

#[test]
fn dump_decodes_captures_frame_by_frame_and_marks_damage() {
    use netcore::frame::{self, Data, Frame, Framing, Head, Kind, Priority, Route, Xid};
    let head = Frame::Head(Head {
        xid: Xid::sender(1),
        kind: Kind::Request,
        priority: Priority::HIGH,
        route: Some(Route::Id(netcore::route_id("/user/get"))),
        meta: None,
        total: 6,
        payload: bytes::Bytes::from_static(b"abc"),
    });
    let data =
        Frame::Data(Data { xid: Xid::sender(1), offset: 3, end: true, payload: bytes::Bytes::from_static(b"def") });
    let dir = tempfile::tempdir().unwrap();

    // Lossy framing: a damaged frame between two good ones is marked, and decoding resyncs.
    let mut capture = bytes::BytesMut::new();
    frame::encode(Framing::Lossy, &head, &mut capture).unwrap();
    let mut damaged = bytes::BytesMut::new();
    frame::encode(Framing::Lossy, &Frame::Ping { nonce: 9 }, &mut damaged).unwrap();
    damaged[2] ^= 0x40;
    capture.extend_from_slice(&damaged);
    frame::encode(Framing::Lossy, &data, &mut capture).unwrap();
    let file = dir.path().join("lossy.bin");
    std::fs::write(&file, &capture).unwrap();
    let output = run(&["--json", "dump", file.to_str().unwrap(), "--lossy", "--schema", USERS, "--direction", "host"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let records: Vec<Value> = stdout(&output).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0]["type"], "HEAD");
    assert_eq!(records[0]["route"], "/user/get (Users.get)");
    assert_eq!(records[0]["priority"], 5);
    assert_eq!(records[0]["direction"], "host");
    assert_eq!(records[0]["crc"], "ok");
    assert_eq!(records[1]["type"], "DAMAGED");
    assert_eq!(records[1]["resync"], true, "{}", records[1]);
    assert!(records[1]["damaged"].is_string());
    assert_eq!(records[2]["type"], "DATA");
    assert_eq!(records[2]["end"], true);
    // The message reassembled from HEAD and DATA (its bytes are not the arguments of Users.get).
    assert_eq!(records[3]["type"], "MESSAGE");
    assert_eq!(records[3]["bytes"], 6);
    assert!(records[3]["undecodable"].as_str().unwrap().contains("`get`"), "{}", records[3]);
    assert_eq!(records[4]["summary"]["frames"], 2);
    assert_eq!(records[4]["summary"]["damaged"], 1);
    assert_eq!(records[4]["summary"]["messages"], 1);

    // Stream framing, text output; a truncated last frame is reported as a tail.
    let mut capture = bytes::BytesMut::new();
    frame::encode(Framing::Stream, &head, &mut capture).unwrap();
    frame::encode(Framing::Stream, &data, &mut capture).unwrap();
    let file = dir.path().join("stream.bin");
    std::fs::write(&file, &capture[..capture.len() - 2]).unwrap();
    let output = run(&["dump", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("HEAD") && text.contains("route=#"), "{text}");
    assert!(text.contains("1 frames, 0 damaged, "), "{text}");

    // Two raw files, one per direction: the answer is named after the request, and an ERROR
    // payload shows its code's name.
    let mut answer = bytes::BytesMut::new();
    let error = Frame::Head(Head {
        xid: Xid::receiver(1),
        kind: Kind::Error,
        priority: Priority::HIGH,
        route: None,
        meta: None,
        total: 6,
        payload: bytes::Bytes::from_static(b"\x01\x00nope"),
    });
    frame::encode(Framing::Stream, &error, &mut answer).unwrap();
    let (out, back) = (dir.path().join("out.bin"), dir.path().join("back.bin"));
    let mut request = bytes::BytesMut::new();
    frame::encode(Framing::Stream, &head, &mut request).unwrap();
    frame::encode(Framing::Stream, &data, &mut request).unwrap();
    std::fs::write(&out, &request).unwrap();
    std::fs::write(&back, &answer).unwrap();
    let output = run(&[
        "--json",
        "dump",
        out.to_str().unwrap(),
        back.to_str().unwrap(),
        "--schema",
        USERS,
        "--direction",
        "host",
        "--direction",
        "board",
    ]);
    let records = json_lines(&stdout(&output));
    let answer = records.iter().find(|r| r["type"] == "MESSAGE" && r["direction"] == "board").unwrap();
    assert_eq!(answer["route"], "/user/get (Users.get)");
    assert_eq!(answer["error"], json!({"code": 1, "name": "NOT_FOUND", "message": "nope"}));

    // Stream framing cannot resynchronise: damage stops the decoding, exit 1 with a hint.
    let mut broken = request.to_vec();
    broken[6] ^= 0xff;
    std::fs::write(&out, &broken).unwrap();
    let output = run(&["dump", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot resynchronise") && stderr(&output).contains("--lossy"),
        "{}",
        stderr(&output)
    );
}

/// Every line of a `--json` run's stdout as a value.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[test]
fn call_send_and_serve_over_a_unix_socket_storing_uploads_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("netcore.sock");
    let store = dir.path().join("received");
    let served = Served::spawn(&["serve", "--unix", socket.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    assert_eq!(served.addr, socket.to_str().unwrap());

    // A streamed upload lands in the directory byte for byte.
    let file = dir.path().join("image.bin");
    let body: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let report = json_of(&run(&[
        "--json",
        "send",
        file.to_str().unwrap(),
        "--route",
        "/upload",
        "--unix",
        socket.to_str().unwrap(),
    ]));
    assert_eq!(report["bytes"], 2 << 20);
    assert_eq!(report["reply"]["text"], (2 << 20).to_string());
    let stored = store.join("000001-upload.bin");
    assert_eq!(std::fs::read(&stored).unwrap(), body);

    // Another route is stored whole; the reply names the file.
    let report =
        json_of(&run(&["--json", "call", "--unix", socket.to_str().unwrap(), "--route", "/log/a", "--data", "hello"]));
    assert_eq!(report["result"]["text"], "5");
    let path = report["result"]["headers"]["x-stored"].as_str().unwrap().to_owned();
    assert!(path.ends_with("000002-log_a.bin"), "{path}");
    assert_eq!(std::fs::read(path).unwrap(), b"hello");

    // A socket nobody serves: the error names the path; exit 1.
    let missing = dir.path().join("nobody.sock");
    let output = run(&["call", "--unix", missing.to_str().unwrap(), "--route", "/x"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("unix {}: ", missing.display())), "{}", stderr(&output));
}

#[test]
fn headers_priority_and_timeout_reach_the_server() {
    let echo = Served::start(&[]);
    let report = json_of(&run(&[
        "--json",
        "call",
        "--tcp",
        &echo.addr,
        "--route",
        "/x",
        "--data",
        "hi",
        "-H",
        "x-a=1",
        "-H",
        "x-b=two words",
        "--priority",
        "6",
    ]));
    let headers = &report["result"]["headers"];
    assert_eq!(headers["x-a"], "1");
    assert_eq!(headers["x-b"], "two words");
    assert_eq!(headers["x-priority"], "6");
    let report = json_of(&run(&["--json", "call", "--tcp", &echo.addr, "--route", "/x", "--data", "hi"]));
    assert_eq!(report["result"]["headers"]["x-priority"], "3", "the default class");

    // The client gives up after its timeout and cancels: the server sees the cancel's reason.
    let slow = Served::start(&["--delay", "5s"]);
    let output = run(&["call", "--tcp", &slow.addr, "--route", "/slow", "--data", "x", "--timeout", "300ms"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("timed out after"), "{}", stderr(&output));
    let line = slow.line_with("cancel");
    assert!(line.contains("reason=timed out"), "{line}");
}

#[test]
fn call_serve_and_send_over_a_pty_pair() {
    // `call` over a serial line (lossy framing by default) to a generated server.
    let (port, _slave) = users_on_pty(netcore::session::Config::lossy().wait_for_peer());
    let report = json_of(&run(&[
        "--json",
        "call",
        "--schema",
        USERS,
        "--serial",
        &port,
        "--baud",
        "115200",
        "Users.get",
        r#"{"id": 7}"#,
    ]));
    assert_eq!(report["result"]["name"], "Ada");
    let report = json_of(&run(&[
        "--json",
        "call",
        "--serial",
        &port,
        "--route",
        "/echo",
        "--data",
        "over a pty",
        "-H",
        "x-test=1",
    ]));
    assert_eq!(report["result"]["text"], "over a pty");
    assert_eq!(report["result"]["headers"]["x-seen"], "1");

    // Reliable delivery on both ends.
    let (port, _slave) =
        users_on_pty(netcore::session::Config::lossy().with_reliable(Some(Default::default())).wait_for_peer());
    let report = json_of(&run(&[
        "--json",
        "call",
        "--schema",
        USERS,
        "--serial",
        &port,
        "--reliable",
        "Users.create",
        r#"["Bob", null]"#,
    ]));
    assert_eq!(report["result"], 3);

    // `send` over the line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.bin");
    std::fs::write(&file, vec![0xa5; 100_000]).unwrap();
    let (port, _slave) = users_on_pty(netcore::session::Config::lossy().wait_for_peer());
    let report = json_of(&run(&["--json", "send", file.to_str().unwrap(), "--route", "/echo", "--serial", &port]));
    assert_eq!(report["bytes"], 100_000);
    assert_eq!(report["reply"]["bytes"], 100_000);

    // `serve` on a serial line, called from this process through the pty's other end.
    let (tx, rx) = std::sync::mpsc::channel();
    let (port, _slave) = pty(move |io| async move {
        let client = Endpoint::builder().build().unwrap();
        let connection = client.connect_with(io, "pty host", netcore::session::Config::lossy());
        let opts = netcore::CallOptions::default().header("x-k", "v");
        let reply = connection
            .call_with(netcore::Route::Name("/any".into()), netcore::Body::from(b"board?".to_vec()), opts)
            .await;
        tx.send(reply.map(|r| (r.bytes().unwrap(), r.headers().clone()))).unwrap();
    });
    let served = Served::spawn(&["serve", "--serial", &port]);
    assert_eq!(served.addr, port);
    let (bytes, headers) = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(&bytes[..], b"board?");
    assert_eq!(headers["x-k"], "v");
}

#[test]
fn link_errors_name_the_address_or_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let missing = "/dev/netcore-no-such-port";
    let cases: Vec<Vec<&str>> = vec![
        vec!["call", "--serial", missing, "--route", "/x"],
        vec!["send", file.to_str().unwrap(), "--route", "/x", "--serial", missing],
        vec!["serve", "--serial", missing],
        vec!["tap", "--serial", missing, "--serial", "/dev/null"],
    ];
    for args in cases {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains(&format!("serial {missing}: ")), "{args:?}: {}", stderr(&output));
    }
    // Refused TCP connections name the address, for every subcommand that connects.
    for args in [
        vec!["send", file.to_str().unwrap(), "--route", "/x", "--tcp", "127.0.0.1:1"],
        vec!["call", "--tcp", "127.0.0.1:1", "--route", "/x"],
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains("tcp 127.0.0.1:1: "), "{args:?}: {}", stderr(&output));
    }
    // A port already taken: serve and tap name it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for args in [vec!["serve", "--tcp", &addr], vec!["tap", "--tcp", &addr, "--to", "127.0.0.1:1"]] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert!(stderr(&output).contains(&format!("tcp {addr}: ")), "{args:?}: {}", stderr(&output));
    }
    // Usage errors: exit 2.
    let output = run(&["tap", "--serial", "/dev/a"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--serial takes two ports"), "{}", stderr(&output));
    assert_eq!(run(&["tap", "--tcp", "127.0.0.1:0"]).status.code(), Some(2), "--tcp needs --to");
    for args in [
        vec!["call", "--tcp", "127.0.0.1:1", "--baud", "9600", "--route", "/x"],
        vec!["serve", "--unix", "/tmp/x", "--reliable"],
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains("applies to a serial link: give --serial PORT"), "{}", stderr(&output));
    }
    let output = run(&["dump", "no/such/capture"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no/such/capture"), "{}", stderr(&output));
}

#[test]
fn tap_forwards_tcp_decodes_live_and_its_capture_dumps_the_same() {
    let server = users_server().to_string();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("cap.nccap");
    let tap = Served::spawn(&[
        "--json",
        "tap",
        "--tcp",
        "127.0.0.1:0",
        "--to",
        &server,
        "--once",
        "--schema",
        USERS,
        "--capture",
        capture.to_str().unwrap(),
    ]);
    let report = json_of(&run(&[
        "--json",
        "call",
        "--schema",
        USERS,
        "--tcp",
        &tap.addr,
        "-H",
        "x-k=v",
        "Users.get",
        r#"{"id": 7}"#,
    ]));
    assert_eq!(report["result"]["name"], "Ada", "the call went through the tap");
    let (lines, code) = tap.finish();
    assert_eq!(code, Some(0), "{lines:?}");
    let records = json_lines(&lines.join("\n"));

    let hellos: Vec<&Value> = records.iter().filter(|r| r["type"] == "HELLO").collect();
    assert_eq!(hellos.len(), 2, "{records:?}");
    assert!(hellos.iter().any(|h| h["direction"] == "client→server"));
    assert!(hellos.iter().any(|h| h["direction"] == "server→client"));
    assert!(hellos.iter().all(|h| h["crc"] == "ok" && h["hello"]["codec"] == "postcard"));
    let head = records.iter().find(|r| r["type"] == "HEAD" && r["kind"] == "request").unwrap();
    assert_eq!(head["route"], "/user/get (Users.get)");
    assert!(head["time"].as_f64().is_some() && head["wire_bytes"].as_u64().unwrap() > 0, "{head}");
    let messages: Vec<&Value> = records.iter().filter(|r| r["type"] == "MESSAGE").collect();
    assert_eq!(messages[0]["direction"], "client→server");
    assert_eq!(messages[0]["args"], json!({"id": 7}));
    assert_eq!(messages[0]["headers"], json!({"x-k": "v"}));
    assert_eq!(messages[1]["direction"], "server→client");
    assert_eq!(messages[1]["route"], "/user/get (Users.get)", "the answer is named after its request");
    assert_eq!(messages[1]["result"]["name"], "Ada");
    assert_eq!(messages[0]["exchange"], messages[1]["exchange"]);
    assert!(records.iter().any(|r| r["type"] == "CLOSE"));
    let summary = &records.last().unwrap()["summary"];
    assert_eq!(summary["messages"], 2);
    assert_eq!(summary["damaged"], 0);

    // The capture file decodes to the very same records.
    let output = run(&["--json", "dump", capture.to_str().unwrap(), "--schema", USERS]);
    assert!(output.status.success(), "{}", stderr(&output));
    let dumped = json_lines(&stdout(&output));
    assert_eq!(dumped[..dumped.len() - 1], records[..records.len() - 1]);
    // Text output: one line per frame, with time and direction.
    let output = run(&["dump", capture.to_str().unwrap(), "--schema", USERS]);
    let text = stdout(&output);
    assert!(
        text.lines().any(|l| l.contains("client→server") && l.contains("MESSAGE") && l.contains(r#"args={"id":7}"#)),
        "{text}"
    );
    assert!(text.contains("2 messages"), "{text}");

    // Without --once the tap forwards one connection after another, each decoded on its own.
    let tap = Served::spawn(&["tap", "--tcp", "127.0.0.1:0", "--to", &server]);
    for (n, data) in [(1, "first"), (2, "second")] {
        let output = run(&["call", "--tcp", &tap.addr, "--route", "/echo", "--data", data]);
        assert_eq!(stdout(&output), data, "{}", stderr(&output));
        let line = tap.line_with(&format!("#{n} server→client  MESSAGE"));
        assert!(line.contains(&format!("text={data}")) && line.contains("route=/echo"), "{line}");
    }

    // A server the tap cannot reach: the client is dropped, the tap names the address, exit 1.
    let tap = Served::spawn(&["tap", "--tcp", "127.0.0.1:0", "--to", "127.0.0.1:1", "--once"]);
    let output = run(&["call", "--tcp", &tap.addr, "--route", "/x"]);
    assert_eq!(output.status.code(), Some(1));
    let (lines, code) = tap.finish();
    assert_eq!(code, Some(1));
    assert!(lines.iter().any(|l| l.contains("FAILED") && l.contains("cannot reach tcp 127.0.0.1:1")), "{lines:?}");
}

#[test]
fn tap_bridges_two_serial_ports_and_marks_damage_and_resyncs() {
    use std::io::Write as _;
    // Board: the Users server on pty A's master. Host: a client on pty B's master. The tap
    // bridges the two slaves; it opens them (and drops what they hold) before either side starts.
    let (master_a, port_a, _slave_a) = pty_pair();
    let (master_b, port_b, _slave_b) = pty_pair();
    let mut noise = master_a.try_clone_native().unwrap();
    let tap = Served::spawn(&["--json", "tap", "--serial", &port_a, "--serial", &port_b, "--schema", USERS]);
    // Garbage on the line before the board starts: the tap marks it and resynchronises.
    noise.write_all(b"\x13\x37 line noise\x00").unwrap();
    let (board_tx, board_rx) = std::sync::mpsc::channel::<()>();
    run_on(master_a, move |io| async move {
        let connection = users_endpoint().connect_with(io, "pty board", netcore::session::Config::lossy());
        let _ = tokio::task::spawn_blocking(move || board_rx.recv()).await;
        drop(connection);
    });
    let (reply_tx, reply_rx) = std::sync::mpsc::channel();
    run_on(master_b, move |io| async move {
        let client = Endpoint::builder().build().unwrap();
        let connection = client.connect_with(io, "pty host", netcore::session::Config::lossy());
        let users = users::UsersClient::new(connection);
        let name = users.get(7).await.map(|u| u.map(|u| u.name));
        let status = users.status(1).await.map(|_| ());
        reply_tx.send((name, status)).unwrap();
    });
    let (name, status) = reply_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(name.unwrap().as_deref(), Some("Ada"));
    status.unwrap();
    let damaged: Value = serde_json::from_str(&tap.line_with("DAMAGED")).unwrap();
    assert_eq!(damaged["direction"], format!("{port_a}→{port_b}"));
    assert_eq!(damaged["resync"], true);
    let request: Value = serde_json::from_str(&tap.line_with(r#""args":{"id":7}"#)).unwrap();
    assert_eq!(request["direction"], format!("{port_b}→{port_a}"));
    assert_eq!(request["route"], "/user/get (Users.get)");
    let answer: Value = serde_json::from_str(&tap.line_with(r#""result":{"Suspended""#)).unwrap();
    assert_eq!(answer["result"]["Suspended"]["reason"], "spam");
    assert_eq!(answer["direction"], format!("{port_a}→{port_b}"));
    drop(board_tx);
}

#[test]
fn send_draws_a_progress_bar_with_rate_and_eta_on_a_terminal() {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    let sink = Served::start(&["--sink"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.bin");
    std::fs::write(&file, vec![0x33; 8 << 20]).unwrap();
    // stdout and stderr on a pseudo-terminal, as in an interactive shell.
    let (mut master, slave) = serialport::TTYPort::pair().unwrap();
    serialport::SerialPort::set_timeout(&mut master, Duration::from_millis(100)).unwrap();
    let err = slave.try_clone_native().unwrap();
    // Held open here: a pty whose last slave closes drops what the master has not read yet.
    let _keep = slave.try_clone_native().unwrap();
    // SAFETY: each raw fd comes from `into_raw_fd`, which gives up its ownership.
    let (out, err) = unsafe { (OwnedFd::from_raw_fd(slave.into_raw_fd()), OwnedFd::from_raw_fd(err.into_raw_fd())) };
    let mut child = netcore()
        .args(["send", file.to_str().unwrap(), "--route", "/upload", "--tcp", &sink.addr])
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap();
    let text = drain_terminal(&mut master, &mut child);
    // The bar shows the total from its first draw; how far it got before the upload ended depends
    // on the machine's speed (a fast one finishes while it still reads KiB).
    assert!(text.contains("/upload ") && text.contains("/8.00 MiB") && text.contains("ETA"), "{text}");
    assert!(text.contains("/s"), "a rate: {text}");
    assert!(text.contains(&(8 << 20).to_string()), "the reply: {text}");
}

/// The lines `first` to `last` as `serve`'s /stream/count sends them.
fn count_lines(first: u64, last: u64) -> String {
    (first..=last).map(|n| format!("{n}\n")).collect()
}

#[test]
fn call_streamed_writes_a_streamed_answer_and_fails_when_it_stops_short() {
    let server = Served::start(&[]);
    let output = run(&["call", "--tcp", &server.addr, "--route", "/stream/count", "--streamed", "--data", "20000"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), count_lines(1, 20000));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("count.txt");
    let report = json_of(&run(&[
        "--json",
        "call",
        "--tcp",
        &server.addr,
        "--route",
        "/stream/count",
        "--streamed",
        "--data",
        "3000",
        "--out",
        out.to_str().unwrap(),
    ]));
    let expected = count_lines(1, 3000);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    assert_eq!(report["bytes"], expected.len());
    assert_eq!(report["open"], true);

    // The server stops after line 40 of 100: the bytes before are written, then exit 1 naming
    // the route and how far it got.
    let output = run(&["call", "--tcp", &server.addr, "--route", "/stream/count", "--streamed", "--data", "100 40"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let got = count_lines(1, 40);
    assert_eq!(stdout(&output), got);
    let message = stderr(&output);
    assert!(
        message.contains(&format!("/stream/count: the answer stopped short after {} bytes", got.len())),
        "{message}"
    );

    // A payload the route does not take: its BAD_REQUEST, exit 1.
    let output = run(&["call", "--tcp", &server.addr, "--route", "/stream/count", "--streamed", "--data", "many"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("BAD_REQUEST") && stderr(&output).contains("`N K`"), "{}", stderr(&output));
    // --json needs --out: stdout carries the JSON.
    let output = run(&["--json", "call", "--tcp", &server.addr, "--route", "/stream/count", "--streamed"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn tap_and_dump_show_a_streamed_answer_as_an_open_length_message() {
    let server = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("stream.nccap");
    let tap = Served::spawn(&[
        "--json",
        "tap",
        "--tcp",
        "127.0.0.1:0",
        "--to",
        &server.addr,
        "--once",
        "--capture",
        capture.to_str().unwrap(),
    ]);
    // 5000 lines are 23893 bytes: more than one frame holds, so the answer starts open-length.
    let output = run(&["call", "--tcp", &tap.addr, "--route", "/stream/count", "--streamed", "--data", "5000"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = count_lines(1, 5000);
    assert_eq!(stdout(&output), expected);
    let (lines, code) = tap.finish();
    assert_eq!(code, Some(0), "{lines:?}");
    let records = json_lines(&lines.join("\n"));

    let hellos: Vec<&Value> = records.iter().filter(|r| r["type"] == "HELLO").collect();
    assert_eq!(hellos.len(), 2, "{records:?}");
    assert!(hellos.iter().all(|h| h["hello"]["open"] == true), "{hellos:?}");
    let head = records.iter().find(|r| r["type"] == "HEAD" && r["kind"] == "response").unwrap();
    assert_eq!(head["total"], "open", "{head}");
    let last_data = records.iter().rev().find(|r| r["type"] == "DATA" && r["direction"] == "server→client").unwrap();
    assert_eq!(last_data["end"], true, "{last_data}");
    let answer = records.iter().find(|r| r["type"] == "MESSAGE" && r["direction"] == "server→client").unwrap();
    assert_eq!(answer["open"], true, "{answer}");
    assert_eq!(answer["bytes"], expected.len());
    assert_eq!(answer["route"], "/stream/count");
    assert!(answer.get("note").is_none() && answer["hex"].as_str().is_some(), "{answer}");
    let summary = &records.last().unwrap()["summary"];
    assert_eq!(summary["messages"], 2);
    assert_eq!(summary["damaged"], 0);

    // The capture reads back to the same records; as text the HEAD says it is open.
    let output = run(&["--json", "dump", capture.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let dumped = json_lines(&stdout(&output));
    assert_eq!(dumped[..dumped.len() - 1], records[..records.len() - 1]);
    let text = stdout(&run(&["dump", capture.to_str().unwrap()]));
    assert!(text.lines().any(|l| l.contains("HEAD") && l.contains("total=open")), "{text}");
}

#[test]
fn call_streamed_draws_bytes_and_rate_on_a_terminal() {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    let server = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("count.txt");
    // stdout and stderr on a pseudo-terminal, as in an interactive shell; the answer to a file.
    let (mut master, slave) = serialport::TTYPort::pair().unwrap();
    serialport::SerialPort::set_timeout(&mut master, Duration::from_millis(100)).unwrap();
    let err = slave.try_clone_native().unwrap();
    // Held open here: a pty whose last slave closes drops what the master has not read yet.
    let _keep = slave.try_clone_native().unwrap();
    // SAFETY: each raw fd comes from `into_raw_fd`, which gives up its ownership.
    let (out, err) = unsafe { (OwnedFd::from_raw_fd(slave.into_raw_fd()), OwnedFd::from_raw_fd(err.into_raw_fd())) };
    let lines = 1_000_000;
    let mut child = netcore()
        .args(["call", "--tcp", &server.addr, "--route", "/stream/count", "--streamed", "--out"])
        .arg(&file)
        .args(["--data", &lines.to_string()])
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap();
    let text = drain_terminal(&mut master, &mut child);
    let expected = count_lines(1, lines);
    // The bar's rate is binary (KiB/s, MiB/s), unlike the closing line's B/s.
    assert!(text.contains("/stream/count ") && text.contains("iB/s"), "the bar, bytes and a rate: {text}");
    assert!(text.contains(&format!("received {} bytes from /stream/count", expected.len())), "{text}");
    assert_eq!(std::fs::read(&file).unwrap().len(), expected.len());
}
