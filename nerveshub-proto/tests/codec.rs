//! Frame codec: round trips (proptest), exact bytes, tolerance and bounds.

use nerveshub_proto::{Codec, DEFAULT_MAX_FRAME_LEN, Error, Event, Frame, Term, Vsn, WireMessage};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Floats that print and parse back exactly in both serializers.
        (-1_000_000i32..1_000_000).prop_map(|m| Value::from(f64::from(m) / 8.0)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_:/]{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Join),
        Just(Event::Reply),
        Just(Event::Leave),
        Just(Event::Close),
        Just(Event::Error),
        Just(Event::Heartbeat),
        "[a-z_:/]{1,20}".prop_map(|s| Event::from(s.as_str())),
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    (
        proptest::option::of("[0-9]{1,6}"),
        proptest::option::of("[0-9]{1,6}"),
        "\\PC{0,16}",
        arb_event(),
        arb_json(),
    )
        .prop_map(|(j, r, t, e, p)| Frame::new(j, r, t, e, p))
}

proptest! {
    #[test]
    fn json_round_trip(frame in arb_frame()) {
        let codec = Codec::new(Vsn::V2Json);
        let WireMessage::Text(text) = codec.encode(&frame).unwrap() else { panic!("not text") };
        prop_assert_eq!(codec.decode(text.as_bytes()).unwrap(), frame);
    }

    #[test]
    fn msgpack_round_trip(frame in arb_frame()) {
        let codec = Codec::new(Vsn::V3MsgPack);
        let WireMessage::Binary(bytes) = codec.encode(&frame).unwrap() else { panic!("not binary") };
        prop_assert_eq!(codec.decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Codec::new(Vsn::V2Json).decode(&bytes);
        let _ = Codec::new(Vsn::V3MsgPack).decode(&bytes);
        let _ = Term::decode(&bytes);
    }

    #[test]
    fn term_round_trip(id in prop::collection::vec(any::<u8>(), 0..64), at in any::<i64>(), age in any::<i64>()) {
        let t = Term::Tuple(vec![Term::Binary(id), Term::Integer(at), Term::Integer(age)]);
        prop_assert_eq!(Term::decode(&t.encode()).unwrap(), t);
    }
}

#[test]
fn json_bytes_are_phoenix_v2() {
    let f = Frame::join("1", "device", json!({"b": 1, "a": null}));
    assert_eq!(
        f.to_json(),
        r#"["1","1","device","phx_join",{"a":null,"b":1}]"#
    );
    assert_eq!(
        Frame::heartbeat("7").to_json(),
        r#"[null,"7","phoenix","heartbeat",{}]"#
    );
}

#[test]
fn null_join_ref_and_integer_refs_are_accepted() {
    let f = Frame::from_json(br#"[null, null, "device", "update", {}]"#).unwrap();
    assert_eq!((f.join_ref, f.msg_ref), (None, None));
    assert_eq!(f.event, Event::Custom("update".into()));
    let f = Frame::from_json(br#"[1, 22, "device", "phx_reply", {"status":"ok","response":{}}]"#)
        .unwrap();
    assert_eq!(
        (f.join_ref.as_deref(), f.msg_ref.as_deref()),
        (Some("1"), Some("22"))
    );
    // MessagePack with integer refs, as the V3 serializer may send: [1, 2, "t", "e", {}]
    let mp = [0x95, 0x01, 0x02, 0xa1, b't', 0xa1, b'e', 0x80];
    let f = Frame::from_msgpack(&mp).unwrap();
    assert_eq!(
        (
            f.join_ref.as_deref(),
            f.msg_ref.as_deref(),
            f.topic.as_str()
        ),
        (Some("1"), Some("2"), "t")
    );
}

#[test]
fn msgpack_timestamps_become_iso8601_strings() {
    // [nil, nil, "t", "e", {"ts": timestamp32(1787120842)}]
    let mut mp = vec![
        0x95, 0xc0, 0xc0, 0xa1, b't', 0xa1, b'e', 0x81, 0xa2, b't', b's', 0xd6, 0xff,
    ];
    mp.extend_from_slice(&1_787_120_842u32.to_be_bytes());
    let f = Frame::from_msgpack(&mp).unwrap();
    assert_eq!(f.payload, json!({"ts": "2026-08-19T06:27:22Z"}));
}

#[test]
fn malformed_frames_are_errors() {
    for bad in [
        &b""[..],
        b"{}",
        b"[]",
        br#"["1","1","t","e"]"#,
        br#"["1","1","t","e",{},6]"#,
        br#"[true,"1","t","e",{}]"#,
        br#"["1","1",3,"e",{}]"#,
        br#"["1","1","t",null,{}]"#,
        b"[\"1\"",
    ] {
        assert!(
            Frame::from_json(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(Frame::from_msgpack(&[0x95, 0xc0]).is_err());
    assert!(
        Frame::from_msgpack(&[0x90, 0x00]).is_err(),
        "trailing bytes"
    );
    // ext type 5 has no JSON meaning
    assert!(
        Frame::from_msgpack(&[0x95, 0xc0, 0xc0, 0xa1, b't', 0xa1, b'e', 0xd4, 0x05, 0x00]).is_err()
    );
}

#[test]
fn frame_size_is_bounded() {
    let codec = Codec::new(Vsn::V2Json).with_max_frame_len(64);
    let big = Frame::new(None, None, "device", "x", json!({"data": "a".repeat(100)}));
    assert!(matches!(
        codec.encode(&big),
        Err(Error::FrameTooLarge { max: 64, .. })
    ));
    let text = big.to_json();
    assert!(matches!(
        codec.decode(text.as_bytes()),
        Err(Error::FrameTooLarge { .. })
    ));
    assert!(Codec::new(Vsn::V2Json).decode(text.as_bytes()).is_ok());
    let huge = vec![b' '; DEFAULT_MAX_FRAME_LEN + 1];
    assert!(matches!(
        Frame::from_json(&huge),
        Err(Error::FrameTooLarge { .. })
    ));
    // Deep nesting is refused, not a stack overflow.
    let deep = format!(
        "[null,null,\"t\",\"e\",{}{}]",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(Frame::from_json(deep.as_bytes()).is_err());
    let mut deep_mp = vec![0x95, 0xc0, 0xc0, 0xa1, b't', 0xa1, b'e'];
    deep_mp.extend(std::iter::repeat_n(0x91, 10_000));
    deep_mp.push(0xc0);
    assert!(Frame::from_msgpack(&deep_mp).is_err());
}

#[test]
fn vsn_selection_follows_phoenix() {
    assert_eq!(Vsn::from_query(Some("2.0.0")).unwrap(), Vsn::V2Json);
    assert_eq!(Vsn::from_query(Some("2.0.1")).unwrap(), Vsn::V2Json);
    assert_eq!(Vsn::from_query(Some("3.0.0")).unwrap(), Vsn::V3MsgPack);
    for bad in [
        None,
        Some("1.0.0"),
        Some("2.1.0"),
        Some("2"),
        Some("2.0"),
        Some("2.0.0.0"),
        Some("x"),
        Some(""),
    ] {
        assert!(Vsn::from_query(bad).is_err(), "{bad:?}");
    }
    assert_eq!(Vsn::V2Json.as_str(), "2.0.0");
}

#[test]
fn control_events_map_to_their_names() {
    for (e, s) in [
        (Event::Join, "phx_join"),
        (Event::Reply, "phx_reply"),
        (Event::Leave, "phx_leave"),
        (Event::Close, "phx_close"),
        (Event::Error, "phx_error"),
        (Event::Heartbeat, "heartbeat"),
    ] {
        assert_eq!(e.as_str(), s);
        assert_eq!(Event::from(s), e);
    }
}
