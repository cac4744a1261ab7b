//! `netcore dump`: a capture of raw link bytes, decoded frame by frame.

use std::collections::HashMap;
use std::path::PathBuf;

use netcore_runtime::frame::{Decoder, Frame, FrameError, Framing, Route, Xid};
use serde_json::{json, Value};

use crate::{print_json, schema, Failure};

/// `netcore dump FILE`
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The capture: the bytes one side wrote to the link, as they were written.
    file: PathBuf,
    /// The capture is of a byte-lossy link (COBS framing) rather than a stream.
    #[arg(long)]
    lossy: bool,
    /// A label for the capture's direction, shown on every frame (e.g. host→board).
    #[arg(long)]
    direction: Option<String>,
    /// Resolve route ids to method names from this schema.
    #[arg(long)]
    schema: Option<PathBuf>,
}

/// Bodies longer than this are reported as damaged (the protocol's largest frames are far smaller).
const MAX_BODY: usize = 16 << 20;

/// `netcore dump`
pub fn dump(args: DumpArgs, json: bool) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.file).map_err(|e| Failure::failed(format!("{}: {e}", args.file.display())))?;
    let mut names = HashMap::new();
    if let Some(path) = &args.schema {
        for service in schema::load(path)?.services {
            for method in &service.methods {
                let route = service.route(method);
                names.insert(netcore_runtime::route_id(&route), format!("{route} ({}.{})", service.name, method.name));
            }
        }
    }
    let framing = if args.lossy { Framing::Lossy } else { Framing::Stream };
    let mut decoder = Decoder::new(framing, MAX_BODY);
    decoder.extend(&bytes);
    let (mut frames, mut damaged, mut at) = (0u64, 0u64, 0usize);
    let mut fatal = None;
    loop {
        let result = decoder.decode();
        let end = bytes.len() - decoder.buffered();
        let mut record = json!({ "offset": at, "wire_bytes": end - at });
        if let Some(direction) = &args.direction {
            record["direction"] = json!(direction);
        }
        match result {
            Ok(None) => break,
            Ok(Some(frame)) => {
                frames += 1;
                describe(&frame, &names, &mut record);
                record["crc"] = json!("ok");
            }
            Err(err) => {
                damaged += 1;
                record["damaged"] = json!(err.to_string());
                record["crc"] = json!(if matches!(err, FrameError::BadCrc { .. }) { "bad" } else { "unchecked" });
                if framing == Framing::Lossy {
                    record["resync"] = json!(true);
                } else {
                    fatal = Some(err);
                }
            }
        }
        at = end;
        if json {
            print_json(&record);
        } else {
            println!("{}", line(&record));
        }
        if fatal.is_some() {
            break;
        }
    }
    let tail = bytes.len() - at;
    let summary = json!({ "frames": frames, "damaged": damaged, "incomplete_tail_bytes": tail, "bytes": bytes.len() });
    if json {
        print_json(&json!({ "summary": summary }));
    } else {
        println!("{frames} frames, {damaged} damaged, {tail} bytes of an incomplete frame at the end");
    }
    match fatal {
        Some(err) => Err(Failure::failed(format!("stream framing cannot resynchronise after: {err}"))),
        None => Ok(()),
    }
}

fn xid(xid: &Xid) -> Value {
    json!({ "id": xid.id, "opened_by": if xid.opened_by_receiver { "receiver" } else { "sender" } })
}

fn describe(frame: &Frame, names: &HashMap<u32, String>, record: &mut Value) {
    let route_name = |route: &Route| match route {
        Route::Name(name) => name.clone(),
        Route::Id(id) => names.get(id).cloned().unwrap_or_else(|| format!("#{id:08x}")),
    };
    record["type"] = json!(format!("{:?}", frame.frame_type()));
    match frame {
        Frame::Hello(hello) => {
            record["type"] = json!("HELLO");
            record["hello"] = json!(format!("{hello:?}"));
        }
        Frame::Head(head) => {
            record["type"] = json!("HEAD");
            record["exchange"] = xid(&head.xid);
            record["kind"] = json!(format!("{:?}", head.kind));
            record["priority"] = json!(head.priority.level());
            record["route"] = json!(head.route.as_ref().map(route_name));
            record["total"] = json!(head.total);
            record["payload"] = json!(head.payload.len());
        }
        Frame::Data(data) => {
            record["type"] = json!("DATA");
            record["exchange"] = xid(&data.xid);
            record["offset_in_message"] = json!(data.offset);
            record["payload"] = json!(data.payload.len());
            record["end"] = json!(data.end);
        }
        Frame::Cancel { xid: x, reason } => {
            record["type"] = json!("CANCEL");
            record["exchange"] = xid(x);
            record["reason"] = json!(reason.describe().map_or_else(|| reason.0.to_string(), str::to_owned));
        }
        Frame::Credit { limit } => {
            record["type"] = json!("CREDIT");
            record["limit"] = json!(limit);
        }
        Frame::Ping { nonce } | Frame::Pong { nonce } => {
            record["type"] = json!(if matches!(frame, Frame::Ping { .. }) { "PING" } else { "PONG" });
            record["nonce"] = json!(nonce);
        }
        Frame::GoAway { code, message } => {
            record["type"] = json!("GOAWAY");
            record["code"] = json!(code.0);
            record["message"] = json!(message);
        }
        Frame::Seq { seq, frame } => {
            describe(frame, names, record);
            record["seq"] = json!(seq);
        }
        Frame::Ack { next, received } => {
            record["type"] = json!("ACK");
            record["next"] = json!(next);
            record["received"] = json!(format!("{received:#x}"));
        }
        other => record["type"] = json!(format!("type {:#04x}", other.frame_type().0)),
    }
}

/// One record as a line of text: `offset  size  TYPE  field=value …`.
fn line(record: &Value) -> String {
    let mut out = format!(
        "{:>8}  {:>6}B  {}",
        record["offset"],
        record["wire_bytes"],
        record.get("type").and_then(Value::as_str).unwrap_or("DAMAGED")
    );
    if let Some(map) = record.as_object() {
        for (key, value) in map {
            if matches!(key.as_str(), "offset" | "wire_bytes" | "type") {
                continue;
            }
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key}={value}"));
        }
    }
    out
}
