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

/// A server of the generated Users service and an /echo route (it echoes header `x-test` as
/// `x-seen`), on its own thread and runtime.
fn users_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let endpoint = Endpoint::builder()
                .blueprint(users::UsersServer::blueprint(Accounts))
                .route("/echo", |request: netcore::Request| async move {
                    let seen = request.headers().get("x-test").cloned().unwrap_or_default();
                    Ok(Response::bytes(request.bytes()?).with_header("x-seen", seen))
                })
                .build()
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            endpoint.serve_tcp(listener).await.unwrap();
        });
    });
    rx.recv().unwrap()
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

/// `netcore serve …` as a child process, and the address it printed.
struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child = netcore()
            .arg("serve")
            .args(["--tcp", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on tcp ").unwrap_or_else(|| panic!("{line}")).to_owned();
        Self { child, addr }
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
    assert_eq!(records[1]["resync"], true, "{}", records[1]);
    assert!(records[1]["damaged"].is_string());
    assert_eq!(records[2]["type"], "DATA");
    assert_eq!(records[2]["end"], true);
    assert_eq!(records[3]["summary"]["frames"], 2);
    assert_eq!(records[3]["summary"]["damaged"], 1);

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
}
