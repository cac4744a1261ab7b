//! Frame bodies: `type ‖ fields ‖ payload ‖ crc32` (docs/PROTOCOL.md §3, §5).

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::sync::Arc;

use bytes::{Buf, BufMut, Bytes};

use super::types::*;
use super::{FrameError, CRC_LEN, MIN_BODY};
use crate::varint;

/// Exact number of bytes [`encode_body`] appends for `frame`, CRC included.
pub fn encoded_body_len(frame: &Frame) -> usize {
    1 + fields_len(frame) + CRC_LEN
}

fn fields_len(frame: &Frame) -> usize {
    let vlen = varint::encoded_len;
    match frame {
        Frame::Hello(h) => {
            2 + 2
                + 8
                + vlen(h.limits.max_frame.into())
                + vlen(h.limits.max_message)
                + vlen(h.limits.inline_limit)
                + vlen(h.limits.window)
                + vlen(h.limits.max_in_flight.into())
                + if h.reliable.is_some() { 3 } else { 0 }
                + if h.nonce.is_some() { 10 } else { 0 }
                + if h.codec != PayloadCodec::POSTCARD { 3 } else { 0 }
                + if h.open { 2 } else { 0 }
                + h.methods.as_ref().map_or(0, |m| {
                    let len = methods_len(m);
                    1 + vlen(len as u64) + len
                })
        }
        Frame::Head(h) => {
            let route = match &h.route {
                None => 0,
                Some(Route::Id(_)) => 4,
                Some(Route::Name(n)) => vlen(n.len() as u64) + n.len(),
            };
            let total = match (h.is_complete(), h.is_open()) {
                (true, _) => 0,
                (false, true) => 1,
                (false, false) => vlen(h.total),
            };
            let meta = h.meta.as_ref().map_or(0, |m| vlen(m.len() as u64) + m.len());
            1 + vlen(h.xid.to_wire()) + route + total + meta + h.payload.len()
        }
        Frame::Data(d) => 1 + vlen(d.xid.to_wire()) + vlen(d.offset) + d.payload.len(),
        Frame::Cancel { xid, .. } => vlen(xid.to_wire()) + 1,
        Frame::Credit { limit } => vlen(*limit),
        Frame::Ping { nonce } | Frame::Pong { nonce } => vlen(*nonce),
        Frame::GoAway { message, .. } => 1 + message.len(),
        Frame::Seq { frame, .. } => 1 + 1 + fields_len(frame),
        Frame::Ack { received, .. } => 1 + bitmap_len(*received),
        Frame::Extension { body, .. } => body.len(),
    }
}

/// Bytes of a METHODS option's value: `varint count ‖ (u32le route_id ‖ u64le hash)*` (§5.1).
fn methods_len(methods: &[(u32, u64)]) -> usize {
    varint::encoded_len(methods.len() as u64) + 12 * methods.len()
}

/// Bytes of an ACK bitmap: up to its last set bit (§16).
fn bitmap_len(received: u128) -> usize {
    (128 - received.leading_zeros() as usize).div_ceil(8)
}

/// Appends the body of `frame`, its CRC32 included, to `out`.
///
/// # Errors
/// [`FrameError::Unencodable`], with nothing written, for a frame the decoder would reject or
/// read differently ([`check`]).
pub fn encode_body(frame: &Frame, out: &mut impl BufMutSlice) -> Result<(), FrameError> {
    check(frame)?;
    encode_body_valid(frame, out);
    Ok(())
}

/// Whether `frame` can be encoded: the rules of §5 that the decoder enforces on the fields. A HEAD
/// whose payload is longer than its `total`, whose route is missing for a REQUEST/ONEWAY or present
/// for a RESPONSE/ERROR, or whose exchange side does not match its kind; an empty DATA payload; an
/// extension type below 0x80 (an empty one is allowed with END, §5.3); an open-length ERROR (§5.2); a SEQ carrying anything but a HEAD, DATA or CANCEL; a reliable window
/// of 0 or above [`MAX_RELIABLE_WINDOW`]; a METHODS table above [`MAX_METHODS`] entries.
pub fn check(frame: &Frame) -> Result<(), FrameError> {
    let refuse = |frame: &'static str, rule: String| Err(FrameError::Unencodable { frame, rule });
    match frame {
        Frame::Hello(h) => {
            if let Some(window) = h.reliable.filter(|w| !(1..=MAX_RELIABLE_WINDOW).contains(w)) {
                return refuse(
                    "HELLO",
                    format!("reliable window of {window} frames is outside 1 to {MAX_RELIABLE_WINDOW} (§5.1)"),
                );
            }
            if let Some(len) = h.methods.as_ref().map(|m| m.len()).filter(|&len| len > MAX_METHODS) {
                return refuse(
                    "HELLO",
                    format!("METHODS table of {len} entries exceeds the limit of {MAX_METHODS} (§5.1)"),
                );
            }
        }
        Frame::Head(h) => {
            if h.is_open() && h.kind == Kind::Error {
                return refuse("HEAD", "an ERROR is never open-length (§5.2)".into());
            }
            if !h.is_open() && h.payload.len() as u64 > h.total {
                let len = h.payload.len();
                return refuse(
                    "HEAD",
                    format!("payload of {len} bytes is longer than its total of {} (§5.2)", h.total),
                );
            }
            if h.route.is_some() != h.kind.opens_exchange() {
                let rule = match h.route {
                    Some(_) => format!("a {:?} carries no route (§5.2)", h.kind),
                    None => format!("a {:?} needs a route (§5.2)", h.kind),
                };
                return refuse("HEAD", rule);
            }
            if h.xid.opened_by_receiver == h.kind.opens_exchange() {
                return refuse("HEAD", format!("the exchange side of a {:?} does not match its kind (§6)", h.kind));
            }
        }
        Frame::Data(d) if d.payload.is_empty() && !d.end => {
            return refuse("DATA", "a DATA frame without END carries at least one byte (§5.3)".into());
        }
        Frame::Seq { frame, .. } => {
            if !is_sequenced(frame) {
                return refuse("SEQ", "a SEQ carries a HEAD, DATA or CANCEL (§16)".into());
            }
            check(frame)?;
        }
        Frame::Extension { ty, .. } if !ty.is_ignorable() => {
            return refuse("extension", format!("type {:#04x} is below 0x80, the extension range (§3.1)", ty.0));
        }
        _ => {}
    }
    Ok(())
}

/// [`encode_body`] of a frame this crate built, valid by construction (checked in debug builds).
pub(crate) fn encode_body_valid(frame: &Frame, out: &mut impl BufMutSlice) {
    debug_assert_eq!(check(frame), Ok(()));
    let start = out.written();
    out.reserve_more(encoded_body_len(frame));
    encode_typed(frame, out);
    let crc = crc32fast::hash(out.since(start));
    out.put_u32_le(crc);
}

/// The type byte and fields of `frame`, without the CRC.
fn encode_typed(frame: &Frame, out: &mut impl BufMut) {
    match frame {
        Frame::Hello(h) => {
            out.put_u8(FrameType::HELLO.0);
            out.put_slice(&HELLO_MAGIC);
            out.put_u8(h.version_min);
            out.put_u8(h.version_max);
            out.put_u64_le(h.fingerprint);
            varint::put(out, h.limits.max_frame.into());
            varint::put(out, h.limits.max_message);
            varint::put(out, h.limits.inline_limit);
            varint::put(out, h.limits.window);
            varint::put(out, h.limits.max_in_flight.into());
            if let Some(window) = h.reliable {
                out.put_slice(&[HELLO_OPTION_RELIABLE, 1, window]);
            }
            if let Some(nonce) = h.nonce {
                out.put_slice(&[HELLO_OPTION_NONCE, 8]);
                out.put_u64_le(nonce);
            }
            if h.codec != PayloadCodec::POSTCARD {
                out.put_slice(&[HELLO_OPTION_CODEC, 1, h.codec.0]);
            }
            if h.open {
                out.put_slice(&[HELLO_OPTION_OPEN, 0]);
            }
            if let Some(methods) = &h.methods {
                out.put_u8(HELLO_OPTION_METHODS);
                varint::put(out, methods_len(methods) as u64);
                varint::put(out, methods.len() as u64);
                for &(route, hash) in methods.iter() {
                    out.put_u32_le(route);
                    out.put_u64_le(hash);
                }
            }
        }
        Frame::Head(h) => encode_head(h, out),
        Frame::Data(d) => {
            out.put_u8(FrameType::DATA.0);
            out.put_u8(if d.end { DATA_END } else { 0 });
            varint::put(out, d.xid.to_wire());
            varint::put(out, d.offset);
            out.put_slice(&d.payload);
        }
        Frame::Cancel { xid, reason } => {
            out.put_u8(FrameType::CANCEL.0);
            varint::put(out, xid.to_wire());
            out.put_u8(reason.0);
        }
        Frame::Credit { limit } => {
            out.put_u8(FrameType::CREDIT.0);
            varint::put(out, *limit);
        }
        Frame::Ping { nonce } | Frame::Pong { nonce } => {
            let ty = if matches!(frame, Frame::Ping { .. }) { FrameType::PING } else { FrameType::PONG };
            out.put_u8(ty.0);
            varint::put(out, *nonce);
        }
        Frame::GoAway { code, message } => {
            out.put_u8(FrameType::GOAWAY.0);
            out.put_u8(code.0);
            out.put_slice(message.as_bytes());
        }
        Frame::Seq { seq, frame } => {
            out.put_u8(FrameType::SEQ.0);
            out.put_u8(*seq);
            encode_typed(frame, out);
        }
        Frame::Ack { next, received } => {
            out.put_u8(FrameType::ACK.0);
            out.put_u8(*next);
            out.put_slice(&received.to_le_bytes()[..bitmap_len(*received)]);
        }
        Frame::Extension { ty, body } => {
            out.put_u8(ty.0);
            out.put_slice(body);
        }
    }
}

/// Whether a SEQ frame may carry `frame` (§16).
pub fn is_sequenced(frame: &Frame) -> bool {
    matches!(frame, Frame::Head(_) | Frame::Data(_) | Frame::Cancel { .. })
}

fn encode_head(h: &Head, out: &mut impl BufMut) {
    let mut flags = (h.kind as u8) << HEAD_KIND_SHIFT | h.priority.level() << HEAD_PRIORITY_SHIFT;
    if h.is_complete() {
        flags |= HEAD_END;
    }
    if matches!(h.route, Some(Route::Name(_))) {
        flags |= HEAD_ROUTE_NAME;
    }
    if h.meta.is_some() {
        flags |= HEAD_META;
    }
    out.put_u8(FrameType::HEAD.0);
    out.put_u8(flags);
    varint::put(out, h.xid.to_wire());
    match &h.route {
        None => {}
        Some(Route::Id(id)) => out.put_u32_le(*id),
        Some(Route::Name(name)) => {
            varint::put(out, name.len() as u64);
            out.put_slice(name.as_bytes());
        }
    }
    if !h.is_complete() {
        // §5.2: an open-length message announces a total of 0.
        varint::put(out, if h.is_open() { 0 } else { h.total });
    }
    if let Some(meta) = &h.meta {
        varint::put(out, meta.len() as u64);
        out.put_slice(meta);
    }
    out.put_slice(&h.payload);
}

/// A growable output buffer whose written bytes can be read back for the CRC.
pub trait BufMutSlice: BufMut {
    /// Bytes written so far.
    fn written(&self) -> usize;
    /// The bytes written since position `start`.
    fn since(&self, start: usize) -> &[u8];
    /// Makes room for `additional` more bytes.
    fn reserve_more(&mut self, additional: usize);
}

impl BufMutSlice for bytes::BytesMut {
    fn written(&self) -> usize {
        self.len()
    }
    fn since(&self, start: usize) -> &[u8] {
        &self[start..]
    }
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

impl BufMutSlice for Vec<u8> {
    fn written(&self) -> usize {
        self.len()
    }
    fn since(&self, start: usize) -> &[u8] {
        &self[start..]
    }
    fn reserve_more(&mut self, additional: usize) {
        self.reserve(additional);
    }
}

/// Decodes one whole body, CRC included. The CRC is checked before any field is read.
pub fn decode_body(body: Bytes) -> Result<Frame, FrameError> {
    if body.len() < MIN_BODY {
        return Err(FrameError::Short(body.len()));
    }
    let split = body.len() - CRC_LEN;
    let carried = u32::from_le_bytes(body[split..].try_into().expect("4 bytes"));
    let computed = crc32fast::hash(&body[..split]);
    if computed != carried {
        return Err(FrameError::BadCrc { computed, carried });
    }
    decode_typed(FrameType(body[0]), body.slice(1..split))
}

/// Decodes the fields of a frame of type `ty` (the CRC already checked).
fn decode_typed(ty: FrameType, fields: Bytes) -> Result<Frame, FrameError> {
    match ty {
        FrameType::HELLO => decode_hello(&fields).map(Frame::Hello),
        FrameType::HEAD => decode_head(fields).map(Frame::Head),
        FrameType::DATA => decode_data(fields).map(Frame::Data),
        FrameType::CANCEL => {
            let mut r = &fields[..];
            let xid = get_xid(&mut r)?;
            let reason = CancelReason(get_u8(&mut r)?);
            finish(r, "CANCEL")?;
            Ok(Frame::Cancel { xid, reason })
        }
        FrameType::CREDIT => {
            let mut r = &fields[..];
            let limit = varint::get(&mut r)?;
            finish(r, "CREDIT")?;
            Ok(Frame::Credit { limit })
        }
        FrameType::PING | FrameType::PONG => {
            let mut r = &fields[..];
            let nonce = varint::get(&mut r)?;
            finish(r, if ty == FrameType::PING { "PING" } else { "PONG" })?;
            Ok(if ty == FrameType::PING { Frame::Ping { nonce } } else { Frame::Pong { nonce } })
        }
        FrameType::GOAWAY => {
            let mut r = &fields[..];
            let code = GoAwayCode(get_u8(&mut r)?);
            // A damaged reason text must not cost the code: replace invalid UTF-8.
            let message = String::from_utf8_lossy(r).into_owned();
            Ok(Frame::GoAway { code, message })
        }
        FrameType::SEQ => {
            let (&seq, rest) = fields.split_first().ok_or(FrameError::Truncated)?;
            let (&inner, _) = rest.split_first().ok_or(FrameError::Truncated)?;
            let inner = FrameType(inner);
            if ![FrameType::HEAD, FrameType::DATA, FrameType::CANCEL].contains(&inner) {
                return Err(invalid("SEQ", "frame type"));
            }
            let frame = decode_typed(inner, fields.slice(2..))?;
            Ok(Frame::Seq { seq, frame: Box::new(frame) })
        }
        FrameType::ACK => {
            let (&next, bitmap) = fields.split_first().ok_or(FrameError::Truncated)?;
            // At most 16 bytes (128 bits), and no trailing zero byte: one encoding per ACK.
            if bitmap.len() > 16 || bitmap.last() == Some(&0) {
                return Err(invalid("ACK", "bitmap"));
            }
            let mut bits = [0u8; 16];
            bits[..bitmap.len()].copy_from_slice(bitmap);
            Ok(Frame::Ack { next, received: u128::from_le_bytes(bits) })
        }
        ty if ty.is_ignorable() => Ok(Frame::Extension { ty, body: fields }),
        FrameType(other) => Err(FrameError::UnknownType(other)),
    }
}

fn invalid(frame: &'static str, field: &'static str) -> FrameError {
    FrameError::Invalid { frame, field }
}

fn get_u8(r: &mut &[u8]) -> Result<u8, FrameError> {
    if r.is_empty() {
        return Err(FrameError::Truncated);
    }
    Ok(r.get_u8())
}

fn get_xid(r: &mut &[u8]) -> Result<Xid, FrameError> {
    let wire = varint::get(r)?;
    Xid::from_wire(wire).ok_or(FrameError::ExchangeIdTooLarge(wire >> 1))
}

fn finish(rest: &[u8], frame: &'static str) -> Result<(), FrameError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(invalid(frame, "trailing bytes"))
    }
}

fn decode_hello(fields: &[u8]) -> Result<Hello, FrameError> {
    let mut r = fields;
    if r.len() < 12 {
        return Err(FrameError::Truncated);
    }
    if r[..2] != HELLO_MAGIC {
        return Err(invalid("HELLO", "magic"));
    }
    r.advance(2);
    let version_min = r.get_u8();
    let version_max = r.get_u8();
    let fingerprint = r.get_u64_le();
    let limits = Limits {
        max_frame: varint::get_u32(&mut r)?,
        max_message: varint::get(&mut r)?,
        inline_limit: varint::get(&mut r)?,
        window: varint::get(&mut r)?,
        max_in_flight: varint::get_u32(&mut r)?,
    };
    let Options { reliable, nonce, codec, methods, open } = decode_options(r);
    Ok(Hello { version_min, version_max, fingerprint, limits, reliable, nonce, codec, methods, open })
}

/// The HELLO options this version knows, each as read (§5.1).
struct Options {
    reliable: Option<u8>,
    nonce: Option<u64>,
    codec: PayloadCodec,
    methods: Option<Arc<[(u32, u64)]>>,
    open: bool,
}

impl Options {
    /// What a HELLO without options says: no offers, no nonce, postcard, no methods table.
    const NONE: Self = Self { reliable: None, nonce: None, codec: PayloadCodec::POSTCARD, methods: None, open: false };
}

/// HELLO options after the v1 fields: `tag ‖ varint len ‖ value`, unknown tags skipped (§5.1).
/// Bytes that do not parse as options are ignored like v1 ignores all trailing bytes.
/// A missing or empty CODEC option announces postcard.
fn decode_options(mut r: &[u8]) -> Options {
    let Options { mut reliable, mut nonce, mut codec, mut methods, mut open } = Options::NONE;
    while let Some((&tag, rest)) = r.split_first() {
        r = rest;
        let Some(len) = varint::get(&mut r).ok().filter(|&len| len <= r.len() as u64) else {
            return Options::NONE;
        };
        let (value, rest) = r.split_at(len as usize);
        r = rest;
        match tag {
            // A window of 0 offers nothing; above 128 is read as 128; later bytes are for later.
            HELLO_OPTION_RELIABLE => reliable = value.first().filter(|&&w| w > 0).map(|&w| w.min(MAX_RELIABLE_WINDOW)),
            // Fewer than 8 bytes carry no nonce; bytes after the 8 are for later.
            HELLO_OPTION_NONCE => nonce = value.get(..8).map(|v| u64::from_le_bytes(v.try_into().expect("8 bytes"))),
            // One byte names the codec; bytes after it are for later.
            HELLO_OPTION_CODEC => codec = value.first().map_or(PayloadCodec::POSTCARD, |&c| PayloadCodec(c)),
            // A table that is too long or does not fill its value exactly is ignored, as an
            // unknown option would be: the peer's calls are then not checked (§5.1).
            HELLO_OPTION_METHODS => methods = decode_methods(value),
            // Empty; bytes in its value are for later.
            HELLO_OPTION_OPEN => open = true,
            _ => {}
        }
    }
    Options { reliable, nonce, codec, methods, open }
}

/// A METHODS option's value (§5.1): `varint count ‖ (u32le route_id ‖ u64le hash)*`, with at most
/// [`MAX_METHODS`] entries and no byte after them; `None` otherwise.
fn decode_methods(mut r: &[u8]) -> Option<Arc<[(u32, u64)]>> {
    let count = varint::get(&mut r).ok()?;
    if count > MAX_METHODS as u64 || r.len() as u64 != 12 * count {
        return None;
    }
    let entry = |e: &[u8]| {
        let (route, hash) = e.split_at(4);
        (u32::from_le_bytes(route.try_into().expect("4 bytes")), u64::from_le_bytes(hash.try_into().expect("8 bytes")))
    };
    Some(r.chunks_exact(12).map(entry).collect())
}

fn decode_head(fields: Bytes) -> Result<Head, FrameError> {
    let mut r = &fields[..];
    let flags = get_u8(&mut r)?;
    let kind = kind_from_flags(flags);
    let priority = Priority::new(flags >> HEAD_PRIORITY_SHIFT);
    let xid = get_xid(&mut r)?;
    if xid.opened_by_receiver == kind.opens_exchange() {
        return Err(invalid("HEAD", "exchange id side"));
    }
    let route = if !kind.opens_exchange() {
        if flags & HEAD_ROUTE_NAME != 0 {
            return Err(invalid("HEAD", "route flag"));
        }
        None
    } else if flags & HEAD_ROUTE_NAME != 0 {
        let len = field_len(&mut r)?;
        let name = core::str::from_utf8(&r[..len]).map_err(|_| invalid("HEAD", "route name"))?;
        let route = Route::Name(name.to_owned());
        r.advance(len);
        Some(route)
    } else {
        if r.len() < 4 {
            return Err(FrameError::Truncated);
        }
        Some(Route::Id(r.get_u32_le()))
    };
    let complete = flags & HEAD_END != 0;
    let total = if complete { None } else { Some(varint::get(&mut r)?) };
    let meta = if flags & HEAD_META != 0 {
        let len = field_len(&mut r)?;
        let start = fields.len() - r.len();
        r.advance(len);
        Some(fields.slice(start..start + len))
    } else {
        None
    };
    let payload = fields.slice(fields.len() - r.len()..);
    let total = match total {
        None => payload.len() as u64,
        // §5.2: total 0 without END is an open-length message; an ERROR never is.
        Some(0) if kind != Kind::Error => OPEN_TOTAL,
        // A HEAD without END leaves at least one byte for a DATA frame; 2^64−1 is no length.
        Some(total) if total > payload.len() as u64 && total != OPEN_TOTAL => total,
        Some(_) => return Err(invalid("HEAD", "total")),
    };
    Ok(Head { xid, kind, priority, route, meta, total, payload })
}

/// A length-prefixed field's length, checked against the bytes actually present.
fn field_len(r: &mut &[u8]) -> Result<usize, FrameError> {
    let len = varint::get(r)?;
    if len > r.len() as u64 {
        return Err(FrameError::Truncated);
    }
    Ok(len as usize)
}

fn decode_data(fields: Bytes) -> Result<Data, FrameError> {
    let mut r = &fields[..];
    let flags = get_u8(&mut r)?;
    if flags & !DATA_END != 0 {
        return Err(invalid("DATA", "flags"));
    }
    let xid = get_xid(&mut r)?;
    let offset = varint::get(&mut r)?;
    // §5.3: only the END of an open-length message may come without a byte.
    if r.is_empty() && flags & DATA_END == 0 {
        return Err(invalid("DATA", "empty payload"));
    }
    if offset.checked_add(r.len() as u64).is_none() {
        return Err(invalid("DATA", "offset"));
    }
    let payload = fields.slice(fields.len() - r.len()..);
    Ok(Data { xid, offset, end: flags & DATA_END != 0, payload })
}
