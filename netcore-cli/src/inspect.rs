//! Link traffic decoded frame by frame, shared by `dump` (a capture) and `tap` (live): frames,
//! damage and resynchronisation, reassembled messages decoded to JSON through a schema.
//!
//! ```text
//! bytes of side 0 ─▶ frame::Decoder ─┐                      ┌─▶ a record per frame
//! bytes of side 1 ─▶ frame::Decoder ─┴▶ Link (reassembly) ──┴─▶ a record per complete message
//! ```
//!
//! Nothing here allocates what a frame claims: message bytes are appended as they arrive, and a
//! message over [`MAX_DECODED`] is counted, not kept.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use netcore_codegen::model::Method;
use netcore_runtime::frame::{Decoder, Frame, FrameError, Framing, Hello, Kind, Route, Xid};
use serde_json::{json, Value};

use crate::value::Types;
use crate::{schema, Failure};

/// Bodies longer than this are reported as damaged (the protocol's largest frames are far smaller).
const MAX_BODY: usize = 16 << 20;

/// Messages up to this size are kept and decoded; larger ones are only counted.
pub const MAX_DECODED: usize = 1 << 20;

/// Messages reassembled at once per link (the protocol's default in-flight limit is 64): beyond,
/// a new message is described frame by frame but not reassembled, so that at most
/// `MAX_PARTIAL × MAX_DECODED` bytes are held.
const MAX_PARTIAL: usize = 128;

/// Open exchanges whose route is remembered to name their answers.
const MAX_ROUTES: usize = 4096;

/// How many sequence numbers of a reliable link (§16) are remembered to spot retransmissions.
const SEQ_MEMORY: usize = 64;

/// What a schema tells about routes: names and the methods behind them.
#[derive(Default)]
pub struct Catalog {
    types: Types,
    methods: HashMap<u32, (String, Method)>,
}

impl Catalog {
    /// The routes of `schema`, or none.
    pub fn load(schema: Option<&Path>) -> Result<Self, Failure> {
        let Some(path) = schema else { return Ok(Self::default()) };
        let schema = schema::load(path)?;
        let mut methods = HashMap::new();
        for service in &schema.services {
            for method in &service.methods {
                let route = service.route(method);
                let label = format!("{route} ({}.{})", service.name, method.name);
                methods.insert(netcore_runtime::route_id(&route), (label, method.clone()));
            }
        }
        Ok(Self { types: Types::new(&schema), methods })
    }

    fn route_name(&self, route: &Route) -> String {
        match route {
            Route::Name(name) => name.clone(),
            Route::Id(id) => self.methods.get(id).map_or_else(|| format!("#{id:08x}"), |(label, _)| label.clone()),
        }
    }
}

/// Frames, damage and messages seen, for the summaries.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Frames decoded with a good CRC.
    pub frames: u64,
    /// Damaged frames (bad CRC, bad header, too long).
    pub damaged: u64,
    /// Complete messages reassembled.
    pub messages: u64,
    /// Frames of a reliable link seen twice (retransmissions).
    pub retransmissions: u64,
}

impl Counts {
    /// Adds another link's counts.
    pub fn add(&mut self, other: Counts) {
        self.frames += other.frames;
        self.damaged += other.damaged;
        self.messages += other.messages;
        self.retransmissions += other.retransmissions;
    }
}

struct Side {
    decoder: Decoder,
    fed: u64,
    consumed: u64,
    /// Stream framing cannot resynchronise: after damage, bytes are only counted.
    stopped: Option<String>,
    seqs: VecDeque<u8>,
}

/// A message being reassembled.
struct Partial {
    kind: Kind,
    priority: u8,
    route: Option<Route>,
    headers: Value,
    /// Open-length (docs/PROTOCOL.md §5.2): no total, it ends at its END DATA.
    open: bool,
    total: u64,
    received: u64,
    /// At most this many bytes are kept: the total when it is at most [`MAX_DECODED`] (0 when
    /// larger), [`MAX_DECODED`] for an open-length message, whose end is not known.
    keep: usize,
    bytes: Vec<u8>,
}

/// One connection's two directions.
pub struct Link<'c> {
    catalog: &'c Catalog,
    framing: Framing,
    directions: [String; 2],
    sides: [Side; 2],
    /// Messages in progress by (direction, exchange opener, exchange id).
    partial: HashMap<(usize, usize, u32), Partial>,
    /// The route of each open exchange by (opener, id), to name its response.
    routes: HashMap<(usize, u32), Route>,
    /// What was seen so far.
    pub counts: Counts,
}

impl<'c> Link<'c> {
    /// A link whose sides are called `directions[0]` (bytes side A wrote) and `directions[1]`.
    pub fn new(catalog: &'c Catalog, framing: Framing, directions: [String; 2]) -> Self {
        let side = || Side {
            decoder: Decoder::new(framing, MAX_BODY),
            fed: 0,
            consumed: 0,
            stopped: None,
            seqs: VecDeque::new(),
        };
        Self {
            catalog,
            framing,
            directions,
            sides: [side(), side()],
            partial: HashMap::new(),
            routes: HashMap::new(),
            counts: Counts::default(),
        }
    }

    /// Bytes of an incomplete frame left at the end of each direction.
    pub fn tails(&self) -> u64 {
        self.sides.iter().map(|s| s.decoder.buffered() as u64).sum()
    }

    /// Why decoding stopped on a stream-framed direction, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.sides.iter().find_map(|s| s.stopped.as_deref())
    }

    /// Feeds bytes side `dir` wrote, at `time` seconds if known; gives a record per frame and per
    /// completed message.
    pub fn feed(&mut self, dir: usize, time: Option<f64>, bytes: &[u8], out: &mut Vec<Value>) {
        let side = &mut self.sides[dir];
        side.fed += bytes.len() as u64;
        if side.stopped.is_some() {
            return;
        }
        side.decoder.extend(bytes);
        loop {
            let side = &mut self.sides[dir];
            let result = side.decoder.decode();
            let end = side.fed - side.decoder.buffered() as u64;
            let mut record = json!({ "direction": self.directions[dir], "offset": side.consumed, "wire_bytes": end - side.consumed });
            if let Some(time) = time {
                record["time"] = json!(time);
            }
            side.consumed = end;
            match result {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    self.counts.frames += 1;
                    record["crc"] = json!("ok");
                    let mut message = None;
                    self.describe(dir, &frame, &mut record, &mut message);
                    out.push(record);
                    if let Some(mut message) = message {
                        if let Some(time) = time {
                            message["time"] = json!(time);
                        }
                        out.push(message);
                    }
                }
                Err(err) => {
                    self.counts.damaged += 1;
                    record["type"] = json!("DAMAGED");
                    record["damaged"] = json!(err.to_string());
                    record["crc"] = json!(if matches!(err, FrameError::BadCrc { .. }) { "bad" } else { "unchecked" });
                    if self.framing == Framing::Lossy {
                        record["resync"] = json!(true);
                        out.push(record);
                    } else {
                        let why =
                            format!("stream framing cannot resynchronise after: {err} (a serial capture? try --lossy)");
                        record["stopped"] = json!(why);
                        side.stopped = Some(why);
                        out.push(record);
                        break;
                    }
                }
            }
        }
    }

    fn describe(&mut self, dir: usize, frame: &Frame, record: &mut Value, message: &mut Option<Value>) {
        let opener = |xid: &Xid| if xid.opened_by_receiver { 1 - dir } else { dir };
        let exchange = |xid: &Xid| json!(format!("{}{}", if opener(xid) == 0 { "a" } else { "b" }, xid.id));
        match frame {
            Frame::Hello(hello) => {
                record["type"] = json!("HELLO");
                record["hello"] = hello_json(hello);
            }
            Frame::Head(head) => {
                record["type"] = json!("HEAD");
                record["exchange"] = exchange(&head.xid);
                record["kind"] = json!(kind_name(head.kind));
                record["priority"] = json!(head.priority.level());
                if let Some(route) = &head.route {
                    record["route"] = json!(self.catalog.route_name(route));
                }
                if head.is_open() {
                    record["total"] = json!("open");
                } else {
                    record["total"] = json!(head.total);
                }
                record["payload"] = json!(head.payload.len());
                let key = (opener(&head.xid), head.xid.id);
                if head.kind.opens_exchange() && self.routes.len() < MAX_ROUTES {
                    if let Some(route) = &head.route {
                        self.routes.insert(key, route.clone());
                    }
                }
                let route = head.route.clone().or_else(|| self.routes.get(&key).cloned());
                let open = head.is_open();
                let keep = match usize::try_from(head.total) {
                    _ if open => MAX_DECODED,
                    Ok(total) if total <= MAX_DECODED => total,
                    _ => 0,
                };
                let mut partial = Partial {
                    kind: head.kind,
                    priority: head.priority.level(),
                    route,
                    headers: headers_json(head.meta.as_deref()),
                    open,
                    total: head.total,
                    received: head.payload.len() as u64,
                    keep,
                    bytes: Vec::new(),
                };
                partial.bytes.extend_from_slice(&head.payload[..head.payload.len().min(keep)]);
                if !open && partial.received >= partial.total {
                    *message = Some(self.complete(dir, key, partial));
                } else if self.partial.len() < MAX_PARTIAL {
                    self.partial.insert((dir, key.0, key.1), partial);
                } else {
                    record["note"] = json!(format!("not reassembled: {MAX_PARTIAL} messages already in progress"));
                }
            }
            Frame::Data(data) => {
                record["type"] = json!("DATA");
                record["exchange"] = exchange(&data.xid);
                record["offset_in_message"] = json!(data.offset);
                record["payload"] = json!(data.payload.len());
                record["end"] = json!(data.end);
                let key = (opener(&data.xid), data.xid.id);
                match self.partial.get_mut(&(dir, key.0, key.1)) {
                    None => record["orphan"] = json!("no HEAD seen for this exchange"),
                    Some(partial) => {
                        if data.offset != partial.received {
                            record["gap"] = json!(format!("expected offset {}", partial.received));
                        }
                        partial.received += data.payload.len() as u64;
                        // Never more than the announced total (at most MAX_DECODED) is kept, nor
                        // more than MAX_DECODED of an open-length message.
                        let room = partial.keep.saturating_sub(partial.bytes.len());
                        partial.bytes.extend_from_slice(&data.payload[..data.payload.len().min(room)]);
                        // An open-length message ends at its END DATA only (§5.3), empty or not.
                        if data.end || (!partial.open && partial.received >= partial.total) {
                            let partial = self.partial.remove(&(dir, key.0, key.1)).expect("present");
                            *message = Some(self.complete(dir, key, partial));
                        }
                    }
                }
            }
            Frame::Cancel { xid, reason } => {
                record["type"] = json!("CANCEL");
                record["exchange"] = exchange(xid);
                record["reason"] = json!(reason.describe().map_or_else(|| reason.0.to_string(), str::to_owned));
                let key = (opener(xid), xid.id);
                self.partial.retain(|(_, o, id), _| (*o, *id) != key);
                self.routes.remove(&key);
            }
            Frame::Credit { limit } => {
                record["type"] = json!("CREDIT");
                record["limit"] = json!(limit);
            }
            Frame::Ping { nonce } | Frame::Pong { nonce } => {
                record["type"] = json!(if matches!(frame, Frame::Ping { .. }) { "PING" } else { "PONG" });
                record["nonce"] = json!(nonce);
            }
            Frame::GoAway { code, message: text } => {
                record["type"] = json!("GOAWAY");
                record["code"] = json!(code.0);
                record["message"] = json!(text);
            }
            Frame::Seq { seq, frame } => {
                let seqs = &mut self.sides[dir].seqs;
                if seqs.contains(seq) {
                    // A retransmission: shown, but its bytes were already reassembled.
                    self.counts.retransmissions += 1;
                    let mut ignored = None;
                    let (partial, routes) = (std::mem::take(&mut self.partial), std::mem::take(&mut self.routes));
                    self.describe_only(dir, frame, record, &mut ignored);
                    (self.partial, self.routes) = (partial, routes);
                    record["retransmission"] = json!(true);
                } else {
                    if seqs.len() == SEQ_MEMORY {
                        seqs.pop_front();
                    }
                    seqs.push_back(*seq);
                    self.describe(dir, frame, record, message);
                }
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

    /// Describes a frame without touching the reassembly state (the caller restores it).
    fn describe_only(&mut self, dir: usize, frame: &Frame, record: &mut Value, message: &mut Option<Value>) {
        let counts = self.counts;
        self.describe(dir, frame, record, message);
        self.counts = counts;
    }

    /// The record of a complete message, its payload decoded through the schema when it names
    /// the route.
    fn complete(&mut self, dir: usize, key: (usize, u32), partial: Partial) -> Value {
        self.counts.messages += 1;
        if !partial.kind.opens_exchange() || partial.kind == Kind::OneWay {
            self.routes.remove(&key);
        }
        let mut record = json!({
            "direction": self.directions[dir],
            "type": "MESSAGE",
            "exchange": format!("{}{}", if key.0 == 0 { "a" } else { "b" }, key.1),
            "kind": kind_name(partial.kind),
            "priority": partial.priority,
            "bytes": partial.received,
        });
        if partial.open {
            record["open"] = json!(true);
        }
        if partial.headers.as_object().is_some_and(|h| !h.is_empty()) || partial.headers.is_string() {
            record["headers"] = partial.headers;
        }
        let method = partial.route.as_ref().and_then(|route| {
            record["route"] = json!(self.catalog.route_name(route));
            self.catalog.methods.get(&route.id()).map(|(_, method)| method)
        });
        if partial.open && partial.received > MAX_DECODED as u64 {
            record["note"] = json!(format!(
                "truncated: an open-length message over {MAX_DECODED} bytes, not decoded (first {} bytes kept)",
                partial.bytes.len()
            ));
            return record;
        }
        if !partial.open && partial.total > MAX_DECODED as u64 {
            record["note"] = json!(format!("not decoded: larger than {MAX_DECODED} bytes"));
            return record;
        }
        let bytes = &partial.bytes;
        match (partial.kind, method) {
            (Kind::Error, _) => record["error"] = error_json(bytes),
            (Kind::Request | Kind::OneWay, Some(method)) => {
                match netcore_runtime::codec::decode_seed(self.catalog.types.args_decoder(method), bytes) {
                    Ok(value) => record["args"] = value,
                    Err(e) => record["undecodable"] = json!(format!("not the arguments of `{}`: {e}", method.name)),
                }
            }
            (Kind::Response, Some(method)) => {
                let ty = &method.returns.ty;
                match netcore_runtime::codec::decode_seed(self.catalog.types.decoder(ty), bytes) {
                    Ok(value) => record["result"] = value,
                    Err(e) => record["undecodable"] = json!(format!("not a {}: {e}", ty.canonical())),
                }
            }
            _ => match std::str::from_utf8(bytes) {
                Ok(text) if text.len() <= 512 && !text.chars().any(|c| c.is_control() && c != '\n') => {
                    record["text"] = json!(text)
                }
                _ => record["hex"] = json!(hex_prefix(bytes)),
            },
        }
        record
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "request",
        Kind::Response => "response",
        Kind::Error => "error",
        Kind::OneWay => "one-way",
    }
}

fn hello_json(hello: &Hello) -> Value {
    json!({
        "versions": format!("{}..={}", hello.version_min, hello.version_max),
        "fingerprint": format!("{:016x}", hello.fingerprint),
        "codec": hello.codec.name(),
        "max_frame": hello.limits.max_frame,
        "max_message": hello.limits.max_message,
        "window": hello.limits.window,
        "max_in_flight": hello.limits.max_in_flight,
        "reliable_window": hello.reliable,
        "nonce": hello.nonce.map(|n| format!("{n:016x}")),
        "methods": hello.methods.as_ref().map(|m| m.len()),
        // The OPEN option (§5.1): the sender accepts and sends open-length messages.
        "open": hello.open,
    })
}

/// The ERROR payload: code (u16 little endian) then the UTF-8 message (docs/PROTOCOL.md §15).
fn error_json(bytes: &[u8]) -> Value {
    match bytes {
        [a, b, rest @ ..] => {
            let code = u16::from_le_bytes([*a, *b]);
            let name = match code {
                0 => "HANDLER",
                1 => "NOT_FOUND",
                2 => "BAD_REQUEST",
                3 => "INTERNAL",
                4 => "UNAVAILABLE",
                5 => "TIMEOUT",
                6 => "TOO_LARGE",
                7 => "RESUME",
                _ => "unknown",
            };
            json!({ "code": code, "name": name, "message": String::from_utf8_lossy(rest) })
        }
        _ => json!({ "malformed": hex_prefix(bytes) }),
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    let mut out: String = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 32 {
        out.push('…');
    }
    out
}

/// HEAD metadata as headers (docs/PROTOCOL.md §15: varint count, then varint-length name and
/// value pairs); anything else is shown as hex.
fn headers_json(meta: Option<&[u8]>) -> Value {
    let Some(meta) = meta else { return json!({}) };
    fn varint(r: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = r.split_first()?;
            *r = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn text(r: &mut &[u8]) -> Option<String> {
        let len = usize::try_from(varint(r)?).ok()?;
        let field = r.get(..len)?;
        *r = &r[len..];
        String::from_utf8(field.to_vec()).ok()
    }
    let parse = || {
        let mut r = meta;
        let count = varint(&mut r)?;
        let mut map = serde_json::Map::new();
        for _ in 0..count.min(64) {
            let name = text(&mut r)?;
            map.insert(name, json!(text(&mut r)?));
        }
        r.is_empty().then_some(Value::Object(map))
    };
    parse().unwrap_or_else(|| json!(format!("metadata {}", hex_prefix(meta))))
}

/// One record as a line of text: `time  direction  offset  size  TYPE  field=value …`.
pub fn line(record: &Value) -> String {
    let mut out = String::new();
    if let Some(time) = record.get("time").and_then(Value::as_f64) {
        out.push_str(&format!("{time:>11.6}  "));
    }
    if let Some(conn) = record.get("conn") {
        out.push_str(&format!("#{conn} "));
    }
    if let Some(direction) = record.get("direction").and_then(Value::as_str) {
        out.push_str(&format!("{direction}  "));
    }
    if record.get("offset").is_some() {
        out.push_str(&format!("{:>8}  {:>6}B  ", record["offset"], record["wire_bytes"]));
    }
    out.push_str(record.get("type").and_then(Value::as_str).unwrap_or("?"));
    if let Some(map) = record.as_object() {
        for (key, value) in map {
            if matches!(key.as_str(), "offset" | "wire_bytes" | "type" | "time" | "conn" | "direction") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use netcore_runtime::frame::{self, Data, Head, Priority};

    fn head(xid: Xid, kind: Kind, route: Option<Route>, total: u64, payload: &'static [u8]) -> Frame {
        Frame::Head(Head {
            xid,
            kind,
            priority: Priority::HIGH,
            route,
            meta: None,
            total,
            payload: Bytes::from_static(payload),
        })
    }

    #[test]
    fn messages_are_reassembled_across_frames_and_named_in_the_answer() {
        let catalog = Catalog::default();
        let mut link = Link::new(&catalog, Framing::Stream, ["a→b".into(), "b→a".into()]);
        let mut a = BytesMut::new();
        frame::encode(
            Framing::Stream,
            &head(Xid::sender(1), Kind::Request, Some(Route::Name("/echo".into())), 6, b"hel"),
            &mut a,
        )
        .unwrap();
        frame::encode(
            Framing::Stream,
            &Frame::Data(Data { xid: Xid::sender(1), offset: 3, end: true, payload: Bytes::from_static(b"lo!") }),
            &mut a,
        )
        .unwrap();
        let mut b = BytesMut::new();
        frame::encode(Framing::Stream, &head(Xid::receiver(1), Kind::Response, None, 2, b"ok"), &mut b).unwrap();
        let mut out = Vec::new();
        // Split anywhere: the same records.
        link.feed(0, None, &a[..4], &mut out);
        link.feed(0, None, &a[4..], &mut out);
        link.feed(1, Some(0.5), &b, &mut out);
        let messages: Vec<&Value> = out.iter().filter(|r| r["type"] == "MESSAGE").collect();
        assert_eq!(messages.len(), 2, "{out:?}");
        assert_eq!(messages[0]["text"], "hello!");
        assert_eq!(messages[0]["exchange"], "a1");
        assert_eq!(messages[1]["route"], "/echo");
        assert_eq!(messages[1]["exchange"], "a1");
        assert_eq!(messages[1]["text"], "ok");
        assert_eq!(messages[1]["time"], 0.5);
        assert_eq!(link.counts.frames, 3);
    }

    #[test]
    fn a_retransmitted_frame_is_marked_and_not_reassembled_twice() {
        let catalog = Catalog::default();
        let mut link = Link::new(&catalog, Framing::Lossy, ["a".into(), "b".into()]);
        let request = head(Xid::sender(3), Kind::Request, Some(Route::Name("/x".into())), 2, b"hi");
        let mut bytes = BytesMut::new();
        for _ in 0..2 {
            frame::encode(Framing::Lossy, &Frame::Seq { seq: 9, frame: Box::new(request.clone()) }, &mut bytes)
                .unwrap();
        }
        let mut out = Vec::new();
        link.feed(0, None, &bytes, &mut out);
        let types: Vec<&str> = out.iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["HEAD", "MESSAGE", "HEAD"], "{out:?}");
        assert_eq!(out[2]["retransmission"], true);
        assert_eq!(out[2]["seq"], 9);
        assert_eq!((link.counts.messages, link.counts.retransmissions, link.counts.frames), (1, 1, 2));
    }

    #[test]
    fn messages_in_progress_and_their_bytes_are_bounded() {
        let catalog = Catalog::default();
        let mut link = Link::new(&catalog, Framing::Stream, ["a".into(), "b".into()]);
        let mut bytes = BytesMut::new();
        for id in 0..(MAX_PARTIAL as u32 + 10) {
            let request = head(Xid::sender(id), Kind::Request, Some(Route::Id(1)), 10, b"x");
            frame::encode(Framing::Stream, &request, &mut bytes).unwrap();
        }
        let mut out = Vec::new();
        link.feed(0, None, &bytes, &mut out);
        assert_eq!(out.iter().filter(|r| r.get("note").is_some()).count(), 10);
        assert_eq!(link.partial.len(), MAX_PARTIAL);
        // DATA beyond the announced total is counted, not kept.
        let data = Data { xid: Xid::sender(0), offset: 1, end: false, payload: Bytes::from(vec![7u8; 100]) };
        let mut bytes = BytesMut::new();
        frame::encode(Framing::Stream, &Frame::Data(data), &mut bytes).unwrap();
        out.clear();
        link.feed(0, None, &bytes, &mut out);
        let message = out.last().unwrap();
        assert_eq!(message["type"], "MESSAGE");
        assert_eq!(message["bytes"], 101);
        assert_eq!(message["hex"], format!("78{}", "07".repeat(9)));
    }

    #[test]
    fn open_length_messages_end_at_their_end_data_and_are_bounded() {
        let catalog = Catalog::default();
        let mut link = Link::new(&catalog, Framing::Stream, ["a".into(), "b".into()]);
        let mut hello = Hello::new(1, 1, 0, frame::Limits::default());
        hello.open = true;
        let data = |id: u32, offset: u64, end: bool, payload: Vec<u8>| {
            Frame::Data(Data { xid: Xid::receiver(id), offset, end, payload: Bytes::from(payload) })
        };
        let mut bytes = BytesMut::new();
        for frame in [
            Frame::Hello(hello),
            head(Xid::receiver(1), Kind::Response, None, frame::OPEN_TOTAL, b"ab"),
            data(1, 2, false, b"cd".to_vec()),
            // The end of an open-length message may carry no byte (§5.3).
            data(1, 4, true, Vec::new()),
        ] {
            frame::encode(Framing::Stream, &frame, &mut bytes).unwrap();
        }
        let mut out = Vec::new();
        link.feed(1, None, &bytes, &mut out);
        let types: Vec<&str> = out.iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["HELLO", "HEAD", "DATA", "DATA", "MESSAGE"], "{out:?}");
        assert_eq!(out[0]["hello"]["open"], true);
        assert_eq!(out[1]["total"], "open");
        assert!(line(&out[1]).contains("total=open"), "{}", line(&out[1]));
        assert_eq!(out[3]["end"], true);
        assert_eq!(out[4]["open"], true);
        assert_eq!(out[4]["text"], "abcd");
        assert_eq!(out[4]["bytes"], 4);
        assert!(link.partial.is_empty());

        // Over MAX_DECODED: counted to its end, at most MAX_DECODED bytes kept, shown truncated.
        let mut bytes = BytesMut::new();
        frame::encode(
            Framing::Stream,
            &head(Xid::receiver(2), Kind::Response, None, frame::OPEN_TOTAL, b""),
            &mut bytes,
        )
        .unwrap();
        let chunk = 64 << 10;
        let chunks = MAX_DECODED / chunk + 2;
        for i in 0..chunks {
            frame::encode(Framing::Stream, &data(2, (i * chunk) as u64, false, vec![1; chunk]), &mut bytes).unwrap();
        }
        frame::encode(Framing::Stream, &data(2, (chunks * chunk) as u64, true, vec![2; 10]), &mut bytes).unwrap();
        out.clear();
        link.feed(1, None, &bytes, &mut out);
        assert!(link.partial.values().all(|p| p.bytes.len() <= MAX_DECODED));
        let message = out.last().unwrap();
        assert_eq!(message["type"], "MESSAGE", "{message}");
        assert_eq!(message["bytes"], (chunks * chunk + 10) as u64);
        assert!(message["note"].as_str().unwrap().starts_with("truncated"), "{message}");
        assert!(message.get("hex").is_none() && message.get("text").is_none());
        assert_eq!(link.counts.messages, 2);
    }

    #[test]
    fn headers_and_error_payloads_decode_and_garbage_does_not_panic() {
        assert_eq!(headers_json(Some(&[1, 1, b'k', 2, b'v', b'w'])), json!({"k": "vw"}));
        assert!(headers_json(Some(&[9, 200])).is_string());
        assert_eq!(error_json(&[1, 0, b'n', b'o'])["name"], "NOT_FOUND");
        assert!(error_json(&[1]).get("malformed").is_some());
        let catalog = Catalog::default();
        let mut link = Link::new(&catalog, Framing::Lossy, ["a".into(), "b".into()]);
        let mut out = Vec::new();
        link.feed(0, None, &[0xff; 300], &mut out);
        link.feed(0, None, &[0x00, 0x13, 0x00], &mut out);
        assert!(out.iter().all(|r| r["type"] == "DAMAGED"), "{out:?}");
    }
}
