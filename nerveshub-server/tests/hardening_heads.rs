//! Issue 25, item 11, beyond hyper's own limits: a request target over hyper's 64 KiB, a header
//! section larger than hyper's buffer and more header fields than hyper parses get our JSON
//! 414/431 on both listeners, on a fresh connection and as the second request of a kept-alive
//! one (after a Content-Length body, and after a chunked one), not hyper's empty answers. The
//! scanner that does it stands aside after a WebSocket upgrade, and resumes after a refused one.
//! The listeners do not touch the database, so SQLite is enough here.

mod common;
mod device_support;

use std::time::Duration;

use device_support::*;
use nerveshub_proto::Vsn;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(15);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Port {
    Api,
    Device,
}

async fn open(ts: &common::TestServer, port: Port) -> Conn {
    let io: Box<dyn Io> = match port {
        Port::Api => Box::new(TcpStream::connect(ts.server.api_addr()).await.unwrap()),
        Port::Device => {
            let tls = tls_client(&server_ca(ts), None, false);
            let tcp = TcpStream::connect(ts.server.device_addr()).await.unwrap();
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(
                    rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                    tcp,
                )
                .await
                .unwrap();
            Box::new(stream)
        }
    };
    Conn {
        io,
        read: Vec::new(),
    }
}

/// One answer read off a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    }
}

/// A connection and what was read from it past the last answer (pipelined answers).
struct Conn {
    io: Box<dyn Io>,
    read: Vec<u8>,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Reads until `done` finds an end in what was read; takes the bytes up to it.
    async fn take(&mut self, done: impl Fn(&[u8]) -> Option<usize>) -> Vec<u8> {
        loop {
            if let Some(n) = done(&self.read) {
                let rest = self.read.split_off(n);
                return std::mem::replace(&mut self.read, rest);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.io.read(&mut chunk))
                .await
                .expect("an answer in time")
                .expect("a readable connection");
            assert!(
                n > 0,
                "the connection closed mid-answer: {:?}",
                String::from_utf8_lossy(&self.read)
            );
            self.read.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one answer (Content-Length or chunked body).
    async fn answer(&mut self) -> Answer {
        let head = self
            .take(|b| b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4))
            .await;
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head[9..12].parse().unwrap();
        let mut answer = Answer {
            status,
            head,
            body: Vec::new(),
        };
        if let Some(len) = answer.header("content-length") {
            let len: usize = len.parse().unwrap();
            answer.body = self.take(|b| (b.len() >= len).then_some(len)).await;
            return answer;
        }
        assert_eq!(
            answer.header("transfer-encoding").as_deref(),
            Some("chunked"),
            "{}",
            answer.head
        );
        loop {
            let line = self
                .take(|b| b.windows(2).position(|w| w == b"\r\n").map(|p| p + 2))
                .await;
            let size = std::str::from_utf8(&line[..line.len() - 2]).unwrap();
            let size = usize::from_str_radix(size, 16).unwrap();
            let data = self
                .take(|b| (b.len() >= size + 2).then_some(size + 2))
                .await;
            answer.body.extend_from_slice(&data[..size]);
            if size == 0 {
                return answer;
            }
        }
    }

    /// Whether the server closes the connection (after what it already sent) within [`WAIT`].
    async fn closes(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(
            tokio::time::timeout(WAIT, self.io.read(&mut chunk)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

fn oversized() -> [(&'static str, String, u16); 3] {
    let target = format!(
        "GET /api/{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let value = "v".repeat(30 * 1024);
    let section: String = (0..20).map(|i| format!("x-big-{i}: {value}\r\n")).collect();
    let big = format!("GET /api/users/me HTTP/1.1\r\nhost: x\r\n{section}\r\n");
    let fields: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /api/users/me HTTP/1.1\r\nhost: x\r\n{fields}\r\n");
    [
        ("a 70 KiB request target", target, 414),
        ("a 600 KiB header section", big, 431),
        ("500 header fields", many, 431),
    ]
}

/// A first request on the connection, whose answer keeps it open: with a Content-Length body
/// or a chunked one.
fn first_request(port: Port, chunked: bool) -> String {
    let (target, auth) = match port {
        // A JSON body the handler reads in full (a number is not a name: 422).
        Port::Api => ("/api/orgs", "authorization: token nhu_invalid\r\n"),
        // The device endpoint has no body-taking route: a small body rides along.
        Port::Device => ("/status", ""),
    };
    let method = if port == Port::Api { "POST" } else { "GET" };
    let body = json!({"name": 1}).to_string();
    let framing = if chunked {
        format!(
            "transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    } else {
        format!("content-length: {}\r\n\r\n{body}", body.len())
    };
    format!(
        "{method} {target} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\n{framing}"
    )
}

fn assert_api_error(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.head);
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/json"),
        "{what}: {}",
        answer.head
    );
    assert!(
        answer.json()["errors"]["detail"].is_string(),
        "{what}: {:?}",
        answer.json()
    );
}

/// Heads beyond hyper's limits, fresh and on kept-alive connections, on both listeners.
#[tokio::test]
async fn heads_beyond_hypers_limits_get_json_errors_on_both_listeners() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    for port in [Port::Api, Port::Device] {
        for (what, request, status) in oversized() {
            let what = format!("{port:?}, {what}");
            let mut io = open(&ts, port).await;
            io.send(request.as_bytes()).await;
            let refused = io.answer().await;
            assert_api_error(&refused, status, &format!("{what}, fresh connection"));
            assert_eq!(refused.header("connection").as_deref(), Some("close"));
            assert!(io.closes().await, "{what}: the connection stayed open");

            for chunked in [false, true] {
                let what = format!(
                    "{what}, after a {} request",
                    if chunked { "chunked" } else { "Content-Length" }
                );
                let mut io = open(&ts, port).await;
                io.send(first_request(port, chunked).as_bytes()).await;
                let first = io.answer().await;
                assert!(first.status < 500, "{what}: {}", first.head);
                assert_ne!(
                    first.header("connection").as_deref(),
                    Some("close"),
                    "{what}: {}",
                    first.head
                );
                io.send(request.as_bytes()).await;
                let refused = io.answer().await;
                assert_api_error(&refused, status, &what);
                assert!(io.closes().await, "{what}: the connection stayed open");
            }
        }
    }
    ts.stop().await;
}

/// A head hyper cannot parse gets our JSON 400 too, and well-formed requests keep flowing on a
/// connection with pipelined requests.
#[tokio::test]
async fn malformed_heads_get_json_and_pipelined_requests_are_answered() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    for port in [Port::Api, Port::Device] {
        for bad in [
            "GET /status HTTP/1.1\r\nnot a header\r\n\r\n",
            "POST /status HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "POST /status HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        ] {
            let mut io = open(&ts, port).await;
            io.send(bad.as_bytes()).await;
            assert_api_error(&io.answer().await, 400, &format!("{port:?}: {bad:?}"));
        }
        let path = if port == Port::Api {
            "/api/openapi"
        } else {
            "/status"
        };
        let mut io = open(&ts, port).await;
        let one = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
        io.send(format!("{one}{one}{one}").as_bytes()).await;
        for _ in 0..3 {
            let ok = io.answer().await;
            assert_eq!(ok.status, 200, "{port:?}: {}", ok.head);
        }
    }
    ts.stop().await;
}

/// After a WebSocket upgrade nothing is scanned (frames hold no request heads); after a
/// refused upgrade the next request's head is scanned again.
#[tokio::test]
async fn upgrades_end_scanning_and_refused_upgrades_resume_it() {
    let ts = common::TestServer::start(common::TestDb::Sqlite).await;
    let f = org_with_product(&ts, "acme").await;
    create_device(&ts, &f, "dev-1").await;
    let (key, secret) = product_secret(&ts, &f).await;
    let mut device = connect_nh1(&ts, &nh1(&key, &secret, "dev-1", 0), Vsn::V2Json)
        .await
        .device();
    device
        .join_device(&join_params(
            "33333333-3333-3333-3333-333333333333",
            "1.0.0",
        ))
        .await;
    // 100 KiB without a line end: a head scanner still running would hold it and refuse it.
    device
        .push("status_update", json!({"status": "x".repeat(100 * 1024)}))
        .await;
    let beat = device.heartbeat().await;
    // The heartbeat's reply comes (the push may get one of its own first).
    while device.recv_event("phx_reply").await.msg_ref.as_deref() != Some(beat.as_str()) {}
    device.close().await;

    // An upgrade without credentials is refused, and the connection goes on as HTTP.
    let mut io = open(&ts, Port::Device).await;
    io.send(
        b"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n\
          connection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    let refused = io.answer().await;
    assert!((400..500).contains(&refused.status), "{}", refused.head);
    assert_ne!(
        refused.header("connection").as_deref(),
        Some("close"),
        "{}",
        refused.head
    );
    let [_, (_, big, _), _] = oversized();
    io.send(big.as_bytes()).await;
    assert_api_error(&io.answer().await, 431, "after a refused upgrade");
    ts.stop().await;
}
