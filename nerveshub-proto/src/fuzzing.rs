//! Entry points for the fuzz targets (`fuzz/fuzz_targets/proto_*.rs`) and for the stable test
//! that replays their corpus. Not part of the supported API.
//!
//! Each function takes arbitrary bytes and must return without panicking; the properties they
//! check are reported as a `Result` so the callers decide what a failure means.
//! A broken property is a message for the person reading the fuzzer's crash report, so errors
//! are formatted into it (the one place this crate turns an error into text on purpose).

use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{ClientConfig, ClientSession};
use crate::console::{ConsoleDeviceEvent, ConsoleServerEvent};
use crate::etf::Term;
use crate::extensions::{ExtensionsDeviceEvent, ExtensionsServerEvent};
use crate::frame::{Codec, Frame, Vsn};
use crate::messages::{
    ChannelMessage, DeviceEvent, DeviceJoinParams, DeviceServerEvent, StatusUpdate,
};
use crate::nh1::SharedSecretHeaders;
use crate::server::{ServerConfig, ServerEvent, ServerSession};

/// Decodes `data` as a V2 and a V3 frame, and every typed message the frame could hold. For
/// every frame that decodes, checks that it encodes and decodes back to the same frame.
pub fn frame(data: &[u8]) -> Result<(), String> {
    for vsn in [Vsn::V2Json, Vsn::V3MsgPack] {
        let codec = Codec::new(vsn);
        let Ok(f) = codec.decode(data) else { continue };
        typed(&f);
        // Re-encoding is unbounded by size here: the input was within bounds, and the JSON
        // form of a MessagePack frame may be larger.
        let again = match vsn {
            Vsn::V2Json => {
                Frame::from_value(serde_json::from_str(&f.to_json()).map_err(|e| e.to_string())?)
            }
            Vsn::V3MsgPack => Frame::from_value(
                crate::msgpack::decode(&f.to_msgpack()).map_err(|e| e.to_string())?,
            ),
        }
        .map_err(|e| format!("{vsn:?}: re-decoding failed: {e}"))?;
        if !same(&again.to_value(), &f.to_value()) {
            return Err(format!(
                "{vsn:?}: round trip changed the frame: {f:?} became {again:?}"
            ));
        }
    }
    Ok(())
}

/// Value equality that treats floats as equal when close (JSON text may not round-trip the
/// last bit of a float without serde_json's `float_roundtrip`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => {
                x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs())
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}

/// Parses a frame's payload as every typed message it could be, encoding back what parses.
fn typed(f: &Frame) {
    let ev = f.event.as_str();
    let p = &f.payload;
    if let Ok(m) = DeviceServerEvent::from_parts(ev, p.clone()) {
        let _ = DeviceServerEvent::from_parts(m.event(), m.to_payload());
    }
    if let Ok(m) = DeviceEvent::from_parts(ev, p.clone()) {
        let _ = DeviceEvent::from_parts(m.event(), m.to_payload());
    }
    if let Ok(m) = ConsoleServerEvent::from_parts(ev, p.clone()) {
        let _ = m.to_payload();
    }
    if let Ok(m) = ConsoleDeviceEvent::from_parts(ev, p.clone()) {
        let _ = m.to_payload();
    }
    if let Ok(m) = ExtensionsServerEvent::from_parts(ev, p.clone()) {
        let _ = (m.event(), m.to_payload());
    }
    if let Ok(m) = ExtensionsDeviceEvent::from_parts(ev, p.clone()) {
        let _ = (m.event(), m.to_payload());
    }
    if let Ok(j) = DeviceJoinParams::from_payload(p.clone()) {
        let _ = (j.to_payload(), j.firmware_metadata());
    }
    if let Ok(s) = StatusUpdate::from_payload(p.clone()) {
        let _ = (s.to_payload(), s.delay(), s.is_failure());
    }
    let _ = f.as_reply();
}

/// Drives a client and a server session with operations read from `data`: each step takes one
/// byte choosing the operation and, for frames, a length byte and that many bytes decoded as
/// V2 JSON (or V3 MessagePack when the operation byte is odd). Checks the sessions' invariants:
/// the timer never goes backwards past `now` by more than a step, and every frame they emit
/// encodes and decodes back.
pub fn session(data: &[u8]) -> Result<(), String> {
    let mut client = ClientSession::new(ClientConfig::default(), 7);
    let mut server = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    let mut now = Duration::ZERO;
    client.handle_connected(now);
    client.join("device", json!({"nerves_fw_uuid": "u"}));
    let mut rest = data;
    let mut steps = 0u32;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        steps += 1;
        if steps > 4096 {
            break;
        }
        match op % 8 {
            0 | 1 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let len = usize::from(len).min(tail.len());
                let (bytes, tail) = tail.split_at(len);
                rest = tail;
                let vsn = if op % 2 == 0 {
                    Vsn::V2Json
                } else {
                    Vsn::V3MsgPack
                };
                if let Ok(f) = Codec::new(vsn).decode(bytes) {
                    client.handle_frame(f.clone(), now);
                    server.handle_frame(f, now);
                }
            }
            2 => {
                let step = u64::from(op / 8) * 1000;
                now = now.saturating_add(Duration::from_millis(step));
                client.handle_timeout(now);
                server.handle_timeout(now);
            }
            3 => {
                if let Some(t) = client.poll_timeout() {
                    now = now.max(t);
                    client.handle_timeout(now);
                }
            }
            4 => client.handle_connected(now),
            5 => client.handle_disconnected(now),
            6 => {
                let topic = ["device", "console", "extensions"][usize::from(op / 8) % 3];
                match op / 32 {
                    0 => client.join(topic, json!({})),
                    1 => {
                        let _ = client.leave(topic);
                    }
                    2 => {
                        let _ = client.push(topic, "status_update", json!({"status": "received"}));
                    }
                    _ => {
                        let _ = server.push(topic, "reboot", json!({}));
                        let _ = server.close_topic(topic);
                    }
                }
            }
            _ => {}
        }
        // Let the client talk to the server and the server answer what it may.
        let mut budget = 64;
        while budget > 0 {
            budget -= 1;
            let mut progressed = false;
            while let Some(f) = client.poll_transmit() {
                progressed = true;
                check_frame(&f)?;
                server.handle_frame(f, now);
            }
            while let Some(ev) = server.poll_event() {
                progressed = true;
                match ev {
                    ServerEvent::JoinRequest(req) => {
                        let r = if req.topic == "console" {
                            server.reject_join(&req, json!({}))
                        } else {
                            server.accept_join(&req, json!({}))
                        };
                        r.map_err(|e| format!("answering a pending join failed: {e}"))?;
                    }
                    ServerEvent::Push(p) => {
                        let r = server.reply(&p, &crate::frame::Reply::ok(json!({})));
                        if p.topic == "device" && r.is_ok() {
                            return Err("a push on device was replied to".into());
                        }
                    }
                    _ => {}
                }
            }
            while let Some(f) = server.poll_transmit() {
                progressed = true;
                check_frame(&f)?;
                client.handle_frame(f, now);
            }
            while client.poll_event().is_some() {}
            if !progressed {
                break;
            }
        }
        if let Some(t) = client.poll_timeout()
            && t.saturating_add(Duration::from_secs(3600)) < now
        {
            return Err(format!("client timer {t:?} is far behind now {now:?}"));
        }
    }
    Ok(())
}

fn check_frame(f: &Frame) -> Result<(), String> {
    let text = f.to_json();
    let back = Frame::from_json(text.as_bytes())
        .map_err(|e| format!("own frame does not decode: {e}: {text}"))?;
    if &back != f {
        return Err(format!("own frame does not round-trip: {text}"));
    }
    Ok(())
}

/// Decodes `data` as an Erlang term (re-encoding and decoding what parses), and as NH1
/// headers to verify (the first byte splits the rest into a signature and a secret).
pub fn term(data: &[u8]) -> Result<(), String> {
    if let Ok(t) = Term::decode(data) {
        let back = Term::decode(&t.encode()).map_err(|e| format!("re-decoding failed: {e}"))?;
        // NaN floats are not equal to themselves.
        if back != t && !format!("{t:?}").contains("NaN") {
            return Err(format!("term round trip changed {t:?} into {back:?}"));
        }
    }
    if let Some((&split, rest)) = data.split_first() {
        let (sig, secret) = rest.split_at(usize::from(split).min(rest.len()));
        let headers = SharedSecretHeaders {
            alg: "NH1-HMAC-sha256-2-32".into(),
            key: "nhp_fuzz".into(),
            time: "1787120842".into(),
            signature: String::from_utf8_lossy(sig).into_owned(),
        };
        let _ = headers.verify(secret, 1_787_120_842_000);
    }
    Ok(())
}
