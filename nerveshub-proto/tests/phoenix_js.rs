//! Interop with the official Phoenix JS client (npm `phoenix`), run with node.
//!
//! `tests/phoenix-js/interop.js` drives the real client over an in-memory WebSocket. This test
//! plays the server with [`ServerSession`] and our V2 codec: the client's frames are decoded
//! by us, our frames are decoded and acted on by the client (joins, replies, pushes, closes,
//! heartbeats), and each serializer decodes frames the other encoded.
//!
//! Needs `node` and `npm ci --prefix nerveshub-proto/tests/phoenix-js`. Without them the test
//! prints `skipped: <why>` and passes, unless `NERVESHUB_CI=1`, where it fails.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use nerveshub_proto::{
    ChannelMessage, Codec, DEVICE_TOPIC, DeviceEvent, DeviceJoinParams, DeviceMeta,
    DeviceServerEvent, Event, FirmwareMetadata, Frame, InboundPush, JoinRequest, PublicKeys,
    ServerConfig, ServerEvent, ServerSession, StatusUpdate, UpdatePayload, Vsn, WireMessage,
};
use serde_json::{Value, json};

struct Node {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Node {
    fn start() -> Result<Node, String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/phoenix-js");
        if !dir.join("node_modules/phoenix/package.json").exists() {
            return Err(format!(
                "{}/node_modules/phoenix is missing (run `npm ci --prefix nerveshub-proto/tests/phoenix-js`)",
                dir.display()
            ));
        }
        let mut child = Command::new("node")
            .arg("interop.js")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run node: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Node {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one command; returns (frames the client sent, what it logged).
    fn cmd(&mut self, cmd: Value) -> (Vec<String>, Vec<Value>) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
        let sent = v["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        let log = v["log"].as_array().unwrap().clone();
        for entry in &log {
            assert!(entry.get("error").is_none(), "the script failed: {entry}");
        }
        (sent, log)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "exit"}));
        let _ = self.child.wait();
    }
}

fn start_or_skip() -> Option<Node> {
    Node::start()
        .map_err(|why| {
            nerveshub_test_support::skip_or_fail(format!("the Phoenix JS interop: {why}"))
        })
        .ok()
}

fn text(frame: &Frame) -> String {
    match Codec::new(Vsn::V2Json).encode(frame).unwrap() {
        WireMessage::Text(s) => s,
        WireMessage::Binary(_) => unreachable!(),
    }
}

/// Feeds the client's frames to the server session and our answers back to the client;
/// returns the client's log.
fn server_answers(node: &mut Node, server: &mut ServerSession) -> Vec<Value> {
    let mut log = Vec::new();
    while let Some(f) = server.poll_transmit() {
        let (sent, l) = node.cmd(json!({"cmd": "deliver", "data": text(&f)}));
        // Only a rejoin timer of the JS client could fire in between; nothing else is sent.
        assert!(
            sent.iter().all(|s| s.contains("phx_join")),
            "unexpected client frames {sent:?}"
        );
        log.extend(l);
    }
    log
}

fn decode_all(server: &mut ServerSession, sent: &[String]) -> Vec<Frame> {
    let codec = Codec::new(Vsn::V2Json);
    sent.iter()
        .map(|s| {
            let f = codec
                .decode(s.as_bytes())
                .unwrap_or_else(|e| panic!("cannot decode {s}: {e}"));
            server.handle_frame(f.clone(), Duration::ZERO);
            f
        })
        .collect()
}

#[test]
fn phoenix_js_client_talks_to_our_server_session() {
    let Some(mut node) = start_or_skip() else {
        return;
    };
    let mut server = ServerSession::new(ServerConfig::default(), Duration::ZERO);

    // Connect: the client picks vsn=2.0.0, which we map to the JSON serializer.
    let (sent, log) = node.cmd(json!({"cmd": "connect"}));
    assert!(sent.is_empty());
    let url = log[0]["url"].as_str().unwrap();
    let vsn = url.split("vsn=").nth(1).unwrap();
    assert_eq!(Vsn::from_query(Some(vsn)).unwrap(), Vsn::V2Json);

    // Join `device` with nerves_hub_link-style params.
    let params = DeviceJoinParams {
        nerves_fw_uuid: Some("6a5b0b34-8c2e-5f2e-9a0c-1f6a3a4e5d7c".into()),
        nerves_fw_product: Some("host_test".into()),
        nerves_fw_version: Some("0.1.0".into()),
        nerves_fw_platform: Some("host".into()),
        nerves_fw_architecture: Some("x86_64".into()),
        fwup_version: Some("1.16.0".into()),
        device_api_version: Some("2.3.0".into()),
        console_version: Some("2.0.0".into()),
        meta: Some(DeviceMeta {
            firmware_validated: Some(true),
            ..Default::default()
        }),
        fwup_public_keys: Some("on_connect".into()),
        ..Default::default()
    };
    let (sent, _) =
        node.cmd(json!({"cmd": "join", "topic": "device", "params": params.to_payload()}));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let frames = decode_all(&mut server, &sent);
    assert_eq!(frames[0].event, Event::Join);
    assert_eq!(frames[0].topic, "device");
    assert!(frames[0].join_ref.is_some());
    assert_eq!(frames[0].join_ref, frames[0].msg_ref);
    let Some(ServerEvent::JoinRequest(req)) = server.poll_event() else {
        panic!("no join request")
    };
    assert_eq!(
        DeviceJoinParams::from_payload(req.params.clone()).unwrap(),
        params
    );
    server.accept_join(&req, json!({})).unwrap();
    let log = server_answers(&mut node, &mut server);
    assert!(
        log.contains(&json!({"joined": {"topic": "device", "response": {}}})),
        "{log:?}"
    );

    // After the join the server pushes the org's keys and an update; the client's channel
    // receives both with their payloads intact.
    let keys = DeviceServerEvent::FwupPublicKeys(PublicKeys {
        keys: vec!["a2V5".into()],
        ..Default::default()
    });
    let update = DeviceServerEvent::Update(Box::new(UpdatePayload {
        update_available: true,
        firmware_url: "https://nerves.example/firmware/1/abc.fw".into(),
        firmware_meta: FirmwareMetadata {
            uuid: Some("abc".into()),
            version: Some("0.2.0".into()),
            ..Default::default()
        },
        size: Some(1_048_577),
        checksum: Some("AB".repeat(32)),
        partials_checksums: Some(vec!["CD".repeat(32), "EF".repeat(32)]),
        deployment_id: Some(7),
        extra: Default::default(),
    }));
    for msg in [&keys, &update] {
        server
            .push(DEVICE_TOPIC, msg.event(), msg.to_payload())
            .unwrap();
        let log = server_answers(&mut node, &mut server);
        let got = log
            .iter()
            .find_map(|e| e.get("channel_event").filter(|c| c["event"] == msg.event()))
            .unwrap_or_else(|| panic!("client did not see {}: {log:?}", msg.event()));
        assert_eq!(got["topic"], "device");
        assert_eq!(got["ref"], Value::Null);
        assert_eq!(
            DeviceServerEvent::from_parts(msg.event(), got["payload"].clone()).unwrap(),
            *msg
        );
    }

    // The client pushes status updates; the server gets them and sends nothing back.
    let status = DeviceEvent::StatusUpdate(StatusUpdate::Rescheduled {
        delay_for_minutes: 5,
        reason: Some("busy".into()),
        extra: Default::default(),
    });
    let (sent, _) = node.cmd(json!({"cmd": "push", "topic": "device", "event": status.event(), "payload": status.to_payload()}));
    let frames = decode_all(&mut server, &sent);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        frames[0].join_ref, req.join_ref,
        "pushes carry the join ref"
    );
    assert!(frames[0].msg_ref.is_some());
    let Some(ServerEvent::Push(push)) = server.poll_event() else {
        panic!("no push")
    };
    let InboundPush { event, payload, .. } = &push;
    assert_eq!(
        DeviceEvent::from_parts(event, payload.clone()).unwrap(),
        status
    );
    assert!(
        server
            .reply(&push, &nerveshub_proto::Reply::ok(json!({})))
            .is_err()
    );
    assert!(server.poll_transmit().is_none());

    // Heartbeat: answered on `phoenix`; the client matches the reply to its ref.
    let (sent, _) = node.cmd(json!({"cmd": "heartbeat"}));
    let frames = decode_all(&mut server, &sent);
    assert_eq!(frames[0].topic, "phoenix");
    assert_eq!(frames[0].event, Event::Heartbeat);
    assert_eq!(frames[0].join_ref, None);
    let log = server_answers(&mut node, &mut server);
    let reply = log
        .iter()
        .find_map(|e| e.get("socket_message"))
        .expect("heartbeat reply seen");
    assert_eq!(
        reply["ref"],
        Value::String(frames[0].msg_ref.clone().unwrap())
    );
    assert_eq!(reply["payload"]["status"], "ok");

    // Join and leave `console`.
    let (sent, _) = node
        .cmd(json!({"cmd": "join", "topic": "console", "params": {"console_version": "2.0.0"}}));
    decode_all(&mut server, &sent);
    let Some(ServerEvent::JoinRequest(console)) = server.poll_event() else {
        panic!("no join request")
    };
    accept(&mut server, &console);
    let log = server_answers(&mut node, &mut server);
    assert!(
        log.contains(&json!({"joined": {"topic": "console", "response": {}}})),
        "{log:?}"
    );
    let (sent, leave_log) = node.cmd(json!({"cmd": "leave", "topic": "console"}));
    let frames = decode_all(&mut server, &sent);
    assert_eq!(frames[0].event, Event::Leave);
    assert!(matches!(server.poll_event(), Some(ServerEvent::Left { topic }) if topic == "console"));
    // Phoenix JS 1.8 considers the channel left as soon as phx_leave is sent; our ok reply
    // then arrives for a channel it no longer has, and is dropped without harm.
    assert!(
        leave_log.contains(&json!({"left": "console"})),
        "{leave_log:?}"
    );
    let log = server_answers(&mut node, &mut server);
    assert!(
        log.iter().all(|e| e.get("socket_message").is_some()),
        "{log:?}"
    );

    // A rejected join reaches the client as an error (last: the client then arms a rejoin timer).
    let (sent, _) =
        node.cmd(json!({"cmd": "join", "topic": "extensions", "params": {"health": "0.0.1"}}));
    decode_all(&mut server, &sent);
    let Some(ServerEvent::JoinRequest(ext)) = server.poll_event() else {
        panic!("no join request")
    };
    server
        .reject_join(&ext, json!({"reason": "not allowed"}))
        .unwrap();
    let log = server_answers(&mut node, &mut server);
    assert!(
        log.contains(
            &json!({"join_error": {"topic": "extensions", "response": {"reason": "not allowed"}}})
        ),
        "{log:?}"
    );

    // The server closes `device`: the client sees phx_close for its channel.
    server.close_topic(DEVICE_TOPIC).unwrap();
    let log = server_answers(&mut node, &mut server);
    assert!(log.contains(&json!({"closed": "device"})), "{log:?}");
}

fn accept(server: &mut ServerSession, req: &JoinRequest) {
    server.accept_join(req, json!({})).unwrap();
}

#[test]
fn serializers_decode_each_other() {
    let Some(mut node) = start_or_skip() else {
        return;
    };
    let ours = [
        Frame::new(
            None,
            None,
            "device",
            "update",
            json!({"firmware_url": "u", "size": 1}),
        ),
        Frame::new(
            Some("1".into()),
            Some("2".into()),
            "device",
            Event::Reply,
            json!({"status": "ok", "response": {}}),
        ),
        Frame::new(
            Some("1".into()),
            Some("1".into()),
            "device",
            Event::Close,
            json!({}),
        ),
        Frame::new(
            Some("3".into()),
            Some("3".into()),
            "device",
            Event::Error,
            json!({}),
        ),
        Frame::heartbeat("42"),
        Frame::new(
            None,
            None,
            "console",
            "dn",
            json!({"data": "ü\"\\\n\u{1F600}"}),
        ),
    ];
    for f in &ours {
        let (_, log) = node.cmd(json!({"cmd": "decode", "data": text(f)}));
        let d = &log[0]["decoded"];
        assert_eq!(
            d["join_ref"],
            f.join_ref.clone().map_or(Value::Null, Value::String)
        );
        assert_eq!(
            d["ref"],
            f.msg_ref.clone().map_or(Value::Null, Value::String)
        );
        assert_eq!(d["topic"], f.topic.as_str());
        assert_eq!(d["event"], f.event.as_str());
        assert_eq!(d["payload"], f.payload);
    }
    let theirs = [
        json!({"join_ref": "1", "ref": "1", "topic": "device", "event": "phx_join", "payload": {"nerves_fw_uuid": "x"}}),
        json!({"join_ref": null, "ref": "5", "topic": "phoenix", "event": "heartbeat", "payload": {}}),
        json!({"join_ref": "1", "ref": "7", "topic": "device", "event": "fwup_progress", "payload": {"stage": "updating", "value": 42}}),
        json!({"join_ref": "1", "ref": "8", "topic": "device", "event": "phx_leave", "payload": {}}),
    ];
    for m in theirs {
        let (_, log) = node.cmd(json!({"cmd": "encode", "msg": m}));
        let raw = log[0]["encoded"].as_str().unwrap();
        let f = Frame::from_json(raw.as_bytes()).unwrap();
        assert_eq!(f.join_ref.as_deref(), m["join_ref"].as_str());
        assert_eq!(f.msg_ref.as_deref(), m["ref"].as_str());
        assert_eq!(f.topic, m["topic"]);
        assert_eq!(f.event.as_str(), m["event"]);
        assert_eq!(f.payload, m["payload"]);
        assert_eq!(
            f.to_json(),
            raw,
            "our encoding is byte-identical to the JS serializer's"
        );
    }
}
