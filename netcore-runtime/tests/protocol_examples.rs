use bytes::{Bytes, BytesMut};
use netcore_runtime::frame::*;

fn hex(b: &[u8]) -> String { b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ") }
fn enc(f: Framing, fr: &Frame) -> Vec<u8> { let mut o = BytesMut::new(); encode(f, fr, &mut o); o.to_vec() }

#[test]
fn dump() {
    let hello = Frame::Hello(Hello { version_min: 1, version_max: 1, fingerprint: 0x0123_4567_89ab_cdef, limits: Limits::default() });
    eprintln!("hello s {}", hex(&enc(Framing::Stream, &hello)));
    eprintln!("hello l {}", hex(&enc(Framing::Lossy, &hello)));
    eprintln!("route {:#010x} a={:#010x} empty={:#010x}", route_id("/sensor/read"), route_id("a"), route_id(""));
    let req = Frame::Head(Head { xid: Xid::sender(0), kind: Kind::Request, priority: Priority::NORMAL, route: Some(Route::Id(route_id("/sensor/read"))), meta: None, total: 16, payload: Bytes::from((0u8..16).collect::<Vec<_>>()) });
    eprintln!("req s {}", hex(&enc(Framing::Stream, &req)));
    eprintln!("req l {}", hex(&enc(Framing::Lossy, &req)));
    let resp = Frame::Head(Head { xid: Xid::receiver(0), kind: Kind::Response, priority: Priority::NORMAL, route: None, meta: None, total: 16, payload: Bytes::from((0xa0u8..0xb0).collect::<Vec<_>>()) });
    eprintln!("resp s {}", hex(&enc(Framing::Stream, &resp)));
    eprintln!("resp l {}", hex(&enc(Framing::Lossy, &resp)));
    let big: Vec<u8> = (0..40000u32).map(|i| i as u8).collect();
    let big = Bytes::from(big);
    let h = Frame::Head(Head { xid: Xid::sender(1), kind: Kind::Request, priority: Priority::LOW, route: Some(Route::Id(route_id("/log/upload"))), meta: None, total: 40000, payload: big.slice(0..16384) });
    let e = enc(Framing::Stream, &h); eprintln!("bighead len {} {} ... {}", e.len(), hex(&e[..16]), hex(&e[e.len()-8..]));
    let d = Frame::Data(Data { xid: Xid::sender(1), offset: 16384, end: false, payload: big.slice(16384..32768) });
    let e = enc(Framing::Stream, &d); eprintln!("data1 len {} {} ... {}", e.len(), hex(&e[..12]), hex(&e[e.len()-8..]));
    let d = Frame::Data(Data { xid: Xid::sender(1), offset: 32768, end: true, payload: big.slice(32768..) });
    let e = enc(Framing::Stream, &d); eprintln!("data2 len {} {} ... {}", e.len(), hex(&e[..12]), hex(&e[e.len()-8..]));
    let c = Frame::Cancel { xid: Xid::sender(1), reason: CancelReason::TIMED_OUT };
    eprintln!("cancel s {}", hex(&enc(Framing::Stream, &c)));
    eprintln!("cancel l {}", hex(&enc(Framing::Lossy, &c)));
    eprintln!("crc check {:08x}", crc32fast::hash(b"123456789"));
}
