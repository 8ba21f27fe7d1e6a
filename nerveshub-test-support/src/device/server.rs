//! A small NervesHub device endpoint for tests: real TLS on loopback (client certificates
//! optional, NH1 headers checked when configured), the WebSocket upgrade, and
//! nerveshub-proto's `ServerSession` for the channel rules. Everything the device does is
//! reported as [`Seen`] events; the test pushes messages with [`TestServer::push`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use nerveshub_proto::{
    ChannelMessage, Codec, DEVICE_TOPIC, DeviceEvent, DeviceJoinParams, ServerConfig, ServerEvent,
    ServerSession, SharedSecretHeaders, Vsn, WireMessage,
};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{Message, http};

use super::pki::Pki;

/// What the server saw.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Seen {
    /// A WebSocket upgrade was accepted.
    Connected {
        /// Request path and query.
        path: String,
        /// Lower-case header names and values.
        headers: Vec<(String, String)>,
        /// Whether the device presented a client certificate.
        client_cert: bool,
    },
    /// An upgrade was refused with 401.
    Refused {
        /// Request headers.
        headers: Vec<(String, String)>,
    },
    /// The device joined `device`.
    Joined(DeviceJoinParams),
    /// The device pushed on `device`.
    Pushed(DeviceEvent),
    /// The socket closed.
    Closed,
    /// A heartbeat was received and left unanswered ([`Options::mute_heartbeats`]).
    Heartbeat,
}

/// Where the test's pushes go: the current connection.
type PushSlot = Arc<Mutex<Option<mpsc::UnboundedSender<(String, serde_json::Value)>>>>;

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Check NH1 headers with this (key, secret); without, no headers are required.
    pub shared_secret: Option<(String, Vec<u8>)>,
    /// The server's clock offset from the system clock, in seconds (its `Date` and the
    /// time it verifies NH1 tokens at).
    pub clock_offset_secs: i64,
    /// Base64 keys pushed as `fwup_public_keys` after a join asking for them.
    pub org_keys: Vec<String>,
    /// Leave heartbeats unanswered (a dead link the device must notice).
    pub mute_heartbeats: bool,
}

/// The running server.
#[derive(Debug)]
pub struct TestServer {
    /// `wss://localhost:PORT`.
    pub url: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    push: PushSlot,
}

impl TestServer {
    /// Starts the server on a loopback port.
    pub async fn start(pki: &Pki, options: Options) -> TestServer {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pki.device_ca.certificate().der().clone())
            .unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.server_chain(), pki.server_key())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let push = Arc::new(Mutex::new(None));
        let push2 = push.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let seen_tx = seen_tx.clone();
                let options = options.clone();
                let push = push2.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = tls.get_ref().1.peer_certificates().is_some();
                    serve(tls, client_cert, options, seen_tx, push).await;
                });
            }
        });
        TestServer {
            url: format!("wss://localhost:{port}"),
            seen,
            push,
        }
    }

    /// The next thing the server saw (fails the test after 60 s of nothing).
    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(60), self.seen.recv())
            .await
            .expect("the device did nothing for 60 s")
            .expect("server stopped")
    }

    /// Waits for a push on `device`, skipping other events.
    pub async fn next_push(&mut self) -> DeviceEvent {
        let search = async {
            loop {
                if let Seen::Pushed(e) = self.next().await {
                    return e;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), search)
            .await
            .expect("no push within 60 s")
    }

    /// Waits for a join, skipping other events.
    pub async fn next_join(&mut self) -> DeviceJoinParams {
        let search = async {
            loop {
                if let Seen::Joined(p) = self.next().await {
                    return p;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), search)
            .await
            .expect("no join within 60 s")
    }

    /// Closes the current connection (the device should reconnect).
    pub fn disconnect(&self) {
        let tx = self.push.lock().unwrap();
        let tx = tx.as_ref().expect("no device connected");
        tx.send((DISCONNECT.to_owned(), serde_json::Value::Null))
            .unwrap();
    }

    /// Pushes a message on `device` to the connected device.
    pub fn push(&self, message: &impl ChannelMessage) {
        let tx = self.push.lock().unwrap();
        tx.as_ref()
            .expect("no device connected")
            .send((message.event().to_owned(), message.to_payload()))
            .unwrap();
    }
}

/// The internal command that closes the connection.
const DISCONNECT: &str = "__disconnect__";

fn now_secs(offset: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now.checked_add_signed(offset).unwrap()
}

async fn serve<S>(
    stream: S,
    client_cert: bool,
    options: Options,
    seen: mpsc::UnboundedSender<Seen>,
    push: PushSlot,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let seen2 = seen.clone();
    let opts = options.clone();
    let vsn = Arc::new(Mutex::new(Vsn::V2Json));
    let vsn2 = vsn.clone();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        if let Some((key, secret)) = &opts.shared_secret {
            let h = SharedSecretHeaders::from_lookup(|n| {
                req.headers().get(n).and_then(|v| v.to_str().ok())
            });
            let now_ms = now_secs(opts.clock_offset_secs) * 1000;
            let ok = h.is_ok_and(|h| h.key == *key && h.verify(secret, now_ms).is_ok());
            if !ok {
                let _ = seen2.send(Seen::Refused { headers });
                let date = httpdate::fmt_http_date(
                    UNIX_EPOCH + Duration::from_secs(now_secs(opts.clock_offset_secs)),
                );
                let mut r = http::Response::new(None);
                *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                r.headers_mut().insert("date", date.parse().unwrap());
                return Err(r);
            }
        }
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let query_vsn = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("vsn=")));
        *vsn2.lock().unwrap() = Vsn::from_query(query_vsn).unwrap();
        let _ = seen2.send(Seen::Connected {
            path,
            headers,
            client_cert,
        });
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    *push.lock().unwrap() = Some(push_tx);
    let codec = Codec::new(*vsn.lock().unwrap());
    let start = tokio::time::Instant::now();
    let mut session = ServerSession::new(ServerConfig::default(), Duration::ZERO);
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::JoinRequest(req) => {
                    if req.topic == DEVICE_TOPIC {
                        let params = DeviceJoinParams::from_payload(req.params.clone()).unwrap();
                        session.accept_join(&req, serde_json::json!({})).unwrap();
                        if params.wants_fwup_public_keys() && !options.org_keys.is_empty() {
                            let keys = serde_json::json!({ "keys": options.org_keys });
                            session
                                .push(DEVICE_TOPIC, "fwup_public_keys", keys)
                                .unwrap();
                        }
                        let _ = seen.send(Seen::Joined(params));
                    } else {
                        session.reject_join(&req, serde_json::json!({})).unwrap();
                    }
                }
                ServerEvent::Push(p) if p.topic == DEVICE_TOPIC => {
                    let e = DeviceEvent::from_parts(&p.event, p.payload).unwrap();
                    let _ = seen.send(Seen::Pushed(e));
                }
                _ => {}
            }
        }
        while let Some(frame) = session.poll_transmit() {
            let msg = match codec.encode(&frame).unwrap() {
                WireMessage::Text(t) => Message::text(t),
                WireMessage::Binary(b) => Message::binary(b),
            };
            if ws.send(msg).await.is_err() {
                let _ = seen.send(Seen::Closed);
                return;
            }
        }
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let frame = codec.decode(&m.into_data()).unwrap();
                    if options.mute_heartbeats && frame.topic == nerveshub_proto::PHOENIX_TOPIC {
                        let _ = seen.send(Seen::Heartbeat);
                    } else {
                        session.handle_frame(frame, start.elapsed());
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = seen.send(Seen::Closed);
                    return;
                }
                Some(Ok(_)) => {}
            },
            p = push_rx.recv() => {
                match p {
                    Some((event, _)) if event == DISCONNECT => {
                        let _ = ws.close(None).await;
                        let _ = seen.send(Seen::Closed);
                        return;
                    }
                    Some((event, payload)) => session.push(DEVICE_TOPIC, &event, payload).unwrap(),
                    None => {}
                }
            }
        }
    }
}
