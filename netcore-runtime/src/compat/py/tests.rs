use super::*;

fn info(pairs: &[(&str, &str)]) -> Info {
    Info(pairs.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect())
}

/// COMPAT.md §6.1: the request of `send('echo', {"hello": "world"})`, as captured.
#[test]
fn encodes_a_request_as_python_does() {
    let head = mission_frame("PJUfYq", 18, &info(&[("route", "echo"), ("message_id", "udrRvGbV")]));
    assert_eq!(head.encoded_len(), 117);
    assert_eq!(
        &head.meta[..],
        br#"{"extension": "PJUfYq", "length": 18, "info": {"route": "echo", "message_id": "udrRvGbV"}}"#
    );
    let data = data_frame("PJUfYq", Bytes::from_static(br#"{"hello": "world"}"#));
    assert_eq!(data.encoded_len(), 65);
    assert_eq!(&data.to_bytes()[..4], &[0x27, 0, 0, 0]);
}

#[test]
fn python_json_escapes_like_ensure_ascii() {
    let v = serde_json::json!({"a": ["é", 1, true, null], "b": "😀"});
    assert_eq!(to_python_json(&v), r#"{"a": ["\u00e9", 1, true, null], "b": "\ud83d\ude00"}"#);
}

fn pair() -> (Peer, Peer) {
    (Peer::new(Limits::default(), 1), Peer::new(Limits::default(), 2))
}

fn wire(peer: &mut Peer) -> Vec<u8> {
    let mut out = BytesMut::new();
    while let Some(frame) = peer.poll_transmit() {
        frame.encode(&mut out);
    }
    out.to_vec()
}

fn messages(peer: &mut Peer) -> Vec<(String, Bytes)> {
    std::iter::from_fn(|| peer.poll_event())
        .filter_map(|e| match e {
            Event::Message { info, payload, .. } => Some((info.get("route")?.as_str()?.to_owned(), payload)),
            _ => None,
        })
        .collect()
}

#[test]
fn any_split_gives_the_same_messages_and_chunks_are_interleaved() {
    let (mut a, mut b) = pair();
    let big = Bytes::from((0..20_000u32).map(|i| i as u8).collect::<Vec<_>>());
    a.send(&info(&[("route", "big")]), big.clone());
    a.send(&info(&[("route", "small")]), Bytes::from_static(b"0123456789"));
    let bytes = wire(&mut a);
    for split in [1, 7, 4143, bytes.len()] {
        let (_, mut b2) = pair();
        for piece in bytes.chunks(split) {
            b2.handle_input(piece).unwrap();
        }
        let got = messages(&mut b2);
        assert_eq!(got.len(), 2, "split {split}");
        assert_eq!(got[0], ("small".into(), Bytes::from_static(b"0123456789")), "the small one finishes first");
        assert_eq!(got[1], ("big".into(), big.clone()));
    }
    b.handle_input(&bytes).unwrap();
}

#[test]
fn keeps_data_that_arrives_before_its_head_and_completes_empty_missions() {
    let (_, mut b) = pair();
    let mut out = BytesMut::new();
    data_frame("AAAAAA", Bytes::from_static(b"late")).encode(&mut out);
    mission_frame("AAAAAA", 4, &info(&[("route", "r")])).encode(&mut out);
    mission_frame("BBBBBB", 0, &info(&[("route", "empty")])).encode(&mut out);
    b.handle_input(&out).unwrap();
    assert_eq!(messages(&mut b), [("r".into(), Bytes::from_static(b"late")), ("empty".into(), Bytes::new())]);
}

#[test]
fn skips_malformed_frames_cancels_and_overruns_without_losing_the_stream() {
    let (_, mut b) = pair();
    let mut out = BytesMut::new();
    RawFrame { ext: Bytes::from_static(b"{}"), meta: Bytes::new() }.encode(&mut out);
    RawFrame { ext: Bytes::from_static(b"not json"), meta: Bytes::from_static(b"x") }.encode(&mut out);
    cancel_frame("ZZZZZZ").encode(&mut out);
    mission_frame("CCCCCC", 2, &info(&[("route", "over")])).encode(&mut out);
    data_frame("CCCCCC", Bytes::from_static(b"abc")).encode(&mut out);
    mission_frame("DDDDDD", 8, &info(&[("route", "gone")])).encode(&mut out);
    data_frame("DDDDDD", Bytes::from_static(b"half")).encode(&mut out);
    cancel_frame("DDDDDD").encode(&mut out);
    data_frame("DDDDDD", Bytes::from_static(b"rest")).encode(&mut out);
    mission_frame("EEEEEE", 2, &info(&[("route", "ok")])).encode(&mut out);
    data_frame("EEEEEE", Bytes::from_static(b"ok")).encode(&mut out);
    b.handle_input(&out).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
    let dropped = events.iter().filter(|e| matches!(e, Event::Dropped { .. })).count();
    assert_eq!(dropped, 3, "{events:?}"); // no type, not JSON, overrun ("rest" is kept as early data)
    assert!(events.contains(&Event::Cancelled { extension: "DDDDDD".into() }));
    assert!(matches!(events.last(), Some(Event::Message { payload, .. }) if &payload[..] == b"ok"));
}

#[test]
fn refuses_negative_and_huge_lengths_before_buffering() {
    let limits = Limits::default();
    let mut buf = BytesMut::from(&(-1i32).to_le_bytes()[..]);
    assert_eq!(RawFrame::decode(&mut buf, &limits), Err(WireError::Negative { field: "ext", value: -1 }));
    let mut buf = BytesMut::from(&[2, 0, 0, 0, b'{', b'}', 0xff, 0xff, 0xff, 0x7f][..]);
    assert!(matches!(RawFrame::decode(&mut buf, &limits), Err(WireError::TooLong { field: "meta", .. })));
    let mut buf = BytesMut::from(&[2, 0, 0][..]);
    assert_eq!(RawFrame::decode(&mut buf, &limits), Ok(None));
}

#[test]
fn long_heads_are_padded_to_what_python_reads_whole() {
    let long = "x".repeat(5000);
    let head = mission_frame("AAAAAA", 1, &info(&[("route", &long)]));
    assert_eq!(head.meta.len() % READ_STEP, 0);
    assert!(matches!(head.parse(), Ok(Parsed::Mission { length: 1, .. })));
}

#[test]
fn cancel_stops_a_mission_and_is_sent_first() {
    let (mut a, _) = pair();
    let e = a.send(&info(&[("route", "r")]), Bytes::from(vec![0u8; 10_000]));
    let _head = a.poll_transmit().unwrap();
    let _first = a.poll_transmit().unwrap();
    assert!(a.cancel(&e));
    assert_eq!(a.poll_transmit(), Some(cancel_frame(&e)));
    assert_eq!(a.poll_transmit(), None);
    assert!(!a.cancel(&e));
}
