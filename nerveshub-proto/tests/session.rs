//! Session scripts on a manual clock: the client's joins, replies, heartbeats, rejoins and
//! backoff, and the server's channel rules.

use std::time::Duration;

use nerveshub_proto::*;
use serde_json::json;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn drain_tx(c: &mut ClientSession) -> Vec<String> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|f| f.to_json())
        .collect()
}

fn drain_ev(c: &mut ClientSession) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn frame(text: &str) -> Frame {
    Frame::from_json(text.as_bytes()).unwrap()
}

/// A client connected at t=0 with `device` joined (join ref "1").
fn joined_client() -> ClientSession {
    let mut c = ClientSession::new(ClientConfig::default(), 1);
    c.join(DEVICE_TOPIC, json!({"nerves_fw_uuid": "u"}));
    assert!(
        drain_tx(&mut c).is_empty(),
        "nothing is sent before the connection"
    );
    c.handle_connected(Duration::ZERO);
    assert_eq!(
        drain_tx(&mut c),
        [r#"["1","1","device","phx_join",{"nerves_fw_uuid":"u"}]"#]
    );
    c.handle_frame(
        frame(r#"["1","1","device","phx_reply",{"status":"ok","response":{}}]"#),
        Duration::ZERO,
    );
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::Joined {
            topic: "device".into(),
            response: json!({})
        }]
    );
    assert!(c.is_joined(DEVICE_TOPIC));
    c
}

#[test]
fn join_reply_push_and_replies_matched_by_ref() {
    let mut c = joined_client();
    let r = c
        .push(DEVICE_TOPIC, "status_update", json!({"status": "received"}))
        .unwrap();
    assert_eq!(r, "2");
    assert_eq!(
        drain_tx(&mut c),
        [r#"["1","2","device","status_update",{"status":"received"}]"#]
    );
    // A reply for another ref of the same channel is reported with its ref; the client does
    // not need to have asked for it.
    c.handle_frame(
        frame(r#"["1","2","device","phx_reply",{"status":"error","response":"detach"}]"#),
        secs(1.0),
    );
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::Reply {
            topic: "device".into(),
            msg_ref: "2".into(),
            reply: Reply::error(json!("detach")),
        }]
    );
    // Server pushes: with the join ref, or with a null one (fastlane), are delivered…
    c.handle_frame(frame(r#"["1",null,"device","reboot",{}]"#), secs(1.0));
    c.handle_frame(frame(r#"[null,null,"device","identify",{}]"#), secs(1.0));
    // …a stale join ref, an unknown topic, or a server-side control event are not.
    c.handle_frame(frame(r#"["0",null,"device","reboot",{}]"#), secs(1.0));
    c.handle_frame(frame(r#"[null,null,"other","reboot",{}]"#), secs(1.0));
    c.handle_frame(frame(r#"[null,null,"device","phx_join",{}]"#), secs(1.0));
    let ev = drain_ev(&mut c);
    assert_eq!(
        ev,
        [
            ClientEvent::Message {
                topic: "device".into(),
                event: "reboot".into(),
                payload: json!({})
            },
            ClientEvent::Message {
                topic: "device".into(),
                event: "identify".into(),
                payload: json!({})
            },
        ]
    );
    assert!(matches!(
        c.push("console", "up", json!({})),
        Err(Error::NotJoined(_))
    ));
}

#[test]
fn heartbeat_every_30s_and_timeout_when_unanswered() {
    let mut c = joined_client();
    assert_eq!(c.poll_timeout(), Some(secs(30.0)));
    c.handle_timeout(secs(29.9));
    assert!(drain_tx(&mut c).is_empty());
    c.handle_timeout(secs(30.0));
    assert_eq!(drain_tx(&mut c), [r#"[null,"2","phoenix","heartbeat",{}]"#]);
    c.handle_frame(
        frame(r#"[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]"#),
        secs(30.1),
    );
    assert_eq!(c.poll_timeout(), Some(secs(60.0)));
    c.handle_timeout(secs(60.0));
    assert_eq!(drain_tx(&mut c), [r#"[null,"3","phoenix","heartbeat",{}]"#]);
    // A reply with another ref does not count.
    c.handle_frame(
        frame(r#"[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]"#),
        secs(61.0),
    );
    assert!(drain_ev(&mut c).is_empty());
    c.handle_timeout(secs(90.0));
    let ev = drain_ev(&mut c);
    let [
        ClientEvent::Close {
            reason: CloseReason::HeartbeatTimeout,
        },
        ClientEvent::Disconnected { reconnect_at },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert!(
        (secs(91.0)..=secs(91.5)).contains(reconnect_at),
        "{reconnect_at:?}"
    );
    assert!(!c.is_connected() && !c.is_joined(DEVICE_TOPIC));
    assert!(drain_tx(&mut c).is_empty());
    // The driver closes the socket and reports it: nothing more happens.
    c.handle_disconnected(secs(90.0));
    assert!(drain_ev(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), Some(*reconnect_at));
    c.handle_timeout(*reconnect_at);
    assert_eq!(drain_ev(&mut c), [ClientEvent::Connect]);
    assert_eq!(c.poll_timeout(), None, "waiting for the driver");
    c.handle_connected(secs(92.0));
    assert_eq!(
        drain_tx(&mut c),
        [r#"["4","4","device","phx_join",{"nerves_fw_uuid":"u"}]"#],
        "rejoined with the same params"
    );
    assert_eq!(c.poll_timeout(), Some(secs(122.0)));
}

#[test]
fn rejoin_5s_after_phx_error_or_phx_close() {
    let mut c = joined_client();
    c.handle_frame(frame(r#"["1","1","device","phx_error",{}]"#), secs(10.0));
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::ChannelClosed {
            topic: "device".into(),
            reason: ChannelCloseReason::Errored,
            rejoin_at: secs(15.0)
        }]
    );
    assert!(matches!(
        c.push(DEVICE_TOPIC, "x", json!({})),
        Err(Error::NotJoined(_))
    ));
    assert_eq!(c.poll_timeout(), Some(secs(15.0)));
    c.handle_timeout(secs(14.0));
    assert!(drain_tx(&mut c).is_empty());
    c.handle_timeout(secs(15.0));
    assert_eq!(
        drain_tx(&mut c),
        [r#"["2","2","device","phx_join",{"nerves_fw_uuid":"u"}]"#]
    );
    // Refused: retried 5 s later again.
    c.handle_frame(frame(r#"["2","2","device","phx_reply",{"status":"error","response":{"error":"could not connect"}}]"#), secs(16.0));
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::JoinRefused {
            topic: "device".into(),
            response: json!({"error": "could not connect"}),
            rejoin_at: secs(21.0)
        }]
    );
    c.handle_timeout(secs(21.0));
    assert_eq!(
        drain_tx(&mut c),
        [r#"["3","3","device","phx_join",{"nerves_fw_uuid":"u"}]"#]
    );
    c.handle_frame(
        frame(r#"["3","3","device","phx_reply",{"status":"ok","response":{}}]"#),
        secs(21.5),
    );
    assert!(matches!(
        drain_ev(&mut c).as_slice(),
        [ClientEvent::Joined { .. }]
    ));
    // A phx_close for the old join is ignored; one for the current join closes the channel.
    c.handle_frame(frame(r#"["2","2","device","phx_close",{}]"#), secs(22.0));
    assert!(drain_ev(&mut c).is_empty());
    c.handle_frame(frame(r#"["3","3","device","phx_close",{}]"#), secs(22.0));
    assert!(matches!(
        drain_ev(&mut c).as_slice(),
        [ClientEvent::ChannelClosed { reason: ChannelCloseReason::Closed, rejoin_at, .. }] if *rejoin_at == secs(27.0)
    ));
}

#[test]
fn leave_completes_on_reply() {
    let mut c = joined_client();
    c.join("console", json!({"console_version": "2.0.0"}));
    assert_eq!(
        drain_tx(&mut c),
        [r#"["2","2","console","phx_join",{"console_version":"2.0.0"}]"#]
    );
    c.handle_frame(
        frame(r#"["2","2","console","phx_reply",{"status":"ok","response":{}}]"#),
        secs(1.0),
    );
    drain_ev(&mut c);
    c.leave("console").unwrap();
    assert_eq!(drain_tx(&mut c), [r#"["2","3","console","phx_leave",{}]"#]);
    c.handle_frame(
        frame(r#"["2","3","console","phx_reply",{"status":"ok","response":{}}]"#),
        secs(1.0),
    );
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::Left {
            topic: "console".into()
        }]
    );
    assert!(c.leave("console").is_err());
    // Joining again while a leave is in flight joins again at once.
    c.join("console", json!({}));
    c.leave("console").unwrap();
    c.join("console", json!({"again": true}));
    let tx = drain_tx(&mut c);
    assert_eq!(tx.len(), 3, "{tx:?}");
    assert!(
        tx[2].contains(r#""console","phx_join",{"again":true}"#),
        "{tx:?}"
    );
    c.leave("console").unwrap();
    c.handle_frame(
        frame(r#"["6","7","console","phx_reply",{"status":"ok","response":{}}]"#),
        secs(1.0),
    );
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::Left {
            topic: "console".into()
        }]
    );
    drain_tx(&mut c);
    // Not rejoined on the next connection.
    c.handle_disconnected(secs(2.0));
    drain_ev(&mut c);
    c.handle_connected(secs(5.0));
    assert_eq!(drain_tx(&mut c).len(), 1);
}

#[test]
fn reconnect_backoff_bounds() {
    for seed in 0..200u64 {
        let mut c = ClientSession::new(ClientConfig::default(), seed);
        let mut now = Duration::ZERO;
        // The first connection attempt fails, and every retry after it.
        let expected = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0];
        for base in expected {
            c.handle_disconnected(now);
            let ev = drain_ev(&mut c);
            let [ClientEvent::Disconnected { reconnect_at }] = ev.as_slice() else {
                panic!("{ev:?}")
            };
            let delay = *reconnect_at - now;
            assert!(
                delay >= secs(base) && delay <= secs(base * 1.5),
                "seed {seed}: {delay:?} for base {base}"
            );
            assert_eq!(c.poll_timeout(), Some(*reconnect_at));
            now = *reconnect_at;
            c.handle_timeout(now);
            assert_eq!(drain_ev(&mut c), [ClientEvent::Connect]);
        }
        // A successful connection resets the backoff.
        c.handle_connected(now);
        c.handle_disconnected(now);
        let ev = drain_ev(&mut c);
        let [ClientEvent::Disconnected { reconnect_at }] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert!(*reconnect_at - now <= secs(1.5));
    }
    // The jitter is spread over its range, not stuck at one end.
    let cfg = ClientConfig::default();
    assert_eq!(cfg.reconnect_delay(10, 0), secs(60.0));
    assert_eq!(cfg.reconnect_delay(10, 30_000), secs(90.0));
    assert_eq!(cfg.reconnect_delay(0, 499), Duration::from_millis(1499));
    assert_eq!(
        cfg.reconnect_delay(u32::MAX, u64::MAX),
        Duration::from_millis(60_000 + u64::MAX % 30_001)
    );
}

#[test]
fn frames_before_connect_and_after_close_are_ignored() {
    let mut c = ClientSession::new(ClientConfig::default(), 3);
    c.handle_frame(
        frame(r#"["1","1","device","phx_reply",{"status":"ok","response":{}}]"#),
        Duration::ZERO,
    );
    assert!(drain_ev(&mut c).is_empty());
    assert!(matches!(
        c.push(DEVICE_TOPIC, "x", json!({})),
        Err(Error::NotConnected)
    ));
    let mut c = joined_client();
    c.close();
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::Left {
            topic: "device".into()
        }]
    );
    c.handle_disconnected(secs(1.0));
    c.handle_timeout(secs(1000.0));
    assert!(drain_ev(&mut c).is_empty());
    assert_eq!(c.poll_timeout(), None);
}

// ---- server ----------------------------------------------------------------------------------

fn drain_stx(s: &mut ServerSession) -> Vec<String> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|f| f.to_json())
        .collect()
}

fn server_with_device() -> ServerSession {
    let mut s = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    s.handle_frame(
        frame(r#"["1","1","device","phx_join",{"nerves_fw_uuid":"u"}]"#),
        Duration::ZERO,
    );
    let Some(ServerEvent::JoinRequest(req)) = s.poll_event() else {
        panic!("no join")
    };
    assert_eq!(req.params, json!({"nerves_fw_uuid": "u"}));
    s.accept_join(&req, json!({})).unwrap();
    assert_eq!(
        drain_stx(&mut s),
        [r#"["1","1","device","phx_reply",{"response":{},"status":"ok"}]"#]
    );
    assert!(
        matches!(s.accept_join(&req, json!({})), Err(Error::UnknownJoin(_))),
        "answered once only"
    );
    s
}

#[test]
fn server_never_replies_to_device_pushes() {
    let mut s = server_with_device();
    for push in [
        r#"["1","2","device","report_network_interface",{"interface":"eth0"}]"#,
        r#"[null,"3","device","status_update",{"status":"received"}]"#,
        r#"["1","4","device","fwup_progress",{"stage":"updating","value":0}]"#,
        r#"["1","5","device","firmware_validated",{}]"#,
        r#"["1","6","device","connection_types",{"values":[]}]"#,
        r#"["1","7","device","something_new",{}]"#,
    ] {
        s.handle_frame(frame(push), secs(1.0));
        let Some(ServerEvent::Push(p)) = s.poll_event() else {
            panic!("no push for {push}")
        };
        assert!(matches!(
            s.reply(&p, &Reply::ok(json!({}))),
            Err(Error::ReplyNotAllowed { .. })
        ));
    }
    assert!(drain_stx(&mut s).is_empty(), "nothing was sent back");
    // A push for a stale join is dropped; a push on `device` before joining is not answered.
    s.handle_frame(
        frame(r#"["0","8","device","status_update",{"status":"x"}]"#),
        secs(1.0),
    );
    assert!(s.poll_event().is_none());
    let mut fresh = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    fresh.handle_frame(
        frame(r#"["1","2","device","status_update",{"status":"x"}]"#),
        Duration::ZERO,
    );
    assert!(fresh.poll_event().is_none() && drain_stx(&mut fresh).is_empty());
}

#[test]
fn server_answers_heartbeats_leaves_and_unmatched_topics() {
    let mut s = server_with_device();
    s.handle_frame(Frame::heartbeat("9"), secs(1.0));
    assert_eq!(
        drain_stx(&mut s),
        [r#"[null,"9","phoenix","phx_reply",{"response":{},"status":"ok"}]"#]
    );
    s.handle_frame(frame(r#"["5","6","console","up",{"data":"x"}]"#), secs(1.0));
    assert_eq!(
        drain_stx(&mut s),
        [
            r#"["5","6","console","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#
        ]
    );
    // Extensions: the one topic where replying to a push is allowed.
    s.handle_frame(
        frame(r#"["7","7","extensions","phx_join",{"health":"0.0.1"}]"#),
        secs(1.0),
    );
    let Some(ServerEvent::JoinRequest(req)) = s.poll_event() else {
        panic!()
    };
    s.accept_join(
        &req,
        ExtensionsJoinParams::reply_attach(&["health".into()]).response,
    )
    .unwrap();
    assert_eq!(
        drain_stx(&mut s),
        [r#"["7","7","extensions","phx_reply",{"response":["health"],"status":"ok"}]"#]
    );
    s.handle_frame(
        frame(r#"["7","8","extensions","geo:location:update",{}]"#),
        secs(1.0),
    );
    let Some(ServerEvent::Push(p)) = s.poll_event() else {
        panic!()
    };
    s.reply(&p, &detach_reply()).unwrap();
    assert_eq!(
        drain_stx(&mut s),
        [r#"["7","8","extensions","phx_reply",{"response":"detach","status":"error"}]"#]
    );
    // Leave.
    s.handle_frame(frame(r#"["7","9","extensions","phx_leave",{}]"#), secs(1.0));
    assert_eq!(
        drain_stx(&mut s),
        [r#"["7","9","extensions","phx_reply",{"response":{},"status":"ok"}]"#]
    );
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Left {
            topic: "extensions".into()
        })
    );
    assert_eq!(s.joined_topics().collect::<Vec<_>>(), ["device"]);
    // Server pushes and closes.
    s.push(DEVICE_TOPIC, "reboot", json!({})).unwrap();
    s.close_topic(DEVICE_TOPIC).unwrap();
    assert_eq!(
        drain_stx(&mut s),
        [
            r#"["1",null,"device","reboot",{}]"#,
            r#"["1","1","device","phx_close",{}]"#
        ]
    );
    assert!(matches!(
        s.push(DEVICE_TOPIC, "reboot", json!({})),
        Err(Error::NotJoined(_))
    ));
}

#[test]
fn server_rejects_joins_and_bounds_topics() {
    let mut s = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    s.handle_frame(frame(r#"["1","1","device","phx_join",{}]"#), Duration::ZERO);
    let Some(ServerEvent::JoinRequest(req)) = s.poll_event() else {
        panic!()
    };
    s.reject_join(&req, json!({"error": "could not connect"}))
        .unwrap();
    assert_eq!(
        drain_stx(&mut s),
        [
            r#"["1","1","device","phx_reply",{"response":{"error":"could not connect"},"status":"error"}]"#
        ]
    );
    assert!(!s.is_joined(DEVICE_TOPIC));
    for i in 0..20 {
        s.handle_frame(
            frame(&format!(r#"["{i}","{i}","t{i}","phx_join",{{}}]"#)),
            Duration::ZERO,
        );
    }
    let requests = std::iter::from_fn(|| s.poll_event()).count();
    assert_eq!(requests, ServerConfig::default().max_topics);
    assert_eq!(
        drain_stx(&mut s).len(),
        20 - requests,
        "the rest are refused"
    );
}

#[test]
fn server_idle_timeout() {
    let mut s = server_with_device();
    assert_eq!(s.poll_timeout(), secs(180.0));
    s.handle_frame(Frame::heartbeat("2"), secs(30.0));
    assert_eq!(s.poll_timeout(), secs(210.0));
    s.handle_timeout(secs(209.0));
    assert!(s.poll_event().is_none());
    s.handle_timeout(secs(210.0));
    assert_eq!(s.poll_event(), Some(ServerEvent::IdleTimeout));
}

#[test]
fn client_and_server_sessions_together() {
    let mut c = ClientSession::new(ClientConfig::default(), 9);
    let mut s = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    c.handle_connected(Duration::ZERO);
    c.join(DEVICE_TOPIC, json!({}));
    let codec = Codec::new(Vsn::V3MsgPack);
    let mut now = Duration::ZERO;
    for _ in 0..10 {
        while let Some(f) = c.poll_transmit() {
            let w = codec.encode(&f).unwrap();
            s.handle_frame(codec.decode(w.as_bytes()).unwrap(), now);
        }
        while let Some(ev) = s.poll_event() {
            if let ServerEvent::JoinRequest(r) = ev {
                s.accept_join(&r, json!({})).unwrap();
            }
        }
        while let Some(f) = s.poll_transmit() {
            let w = codec.encode(&f).unwrap();
            c.handle_frame(codec.decode(w.as_bytes()).unwrap(), now);
        }
        now = c.poll_timeout().unwrap();
        c.handle_timeout(now);
    }
    assert!(
        c.is_joined(DEVICE_TOPIC),
        "heartbeats kept the connection alive"
    );
    assert_eq!(now, secs(300.0));
    assert_eq!(
        drain_ev(&mut c),
        [ClientEvent::Joined {
            topic: "device".into(),
            response: json!({})
        }]
    );
}
