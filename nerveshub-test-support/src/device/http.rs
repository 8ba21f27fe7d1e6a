//! A firmware download server: HTTPS/1.1 on loopback with Range support, one file, and the
//! option to cut the first response after some bytes (the connection just closes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::pki::Pki;

/// The running file server.
#[derive(Debug)]
pub struct FileServer {
    /// The file's URL.
    pub url: String,
    /// The `Range` header of every request (`None` for plain GETs), in order.
    pub ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl FileServer {
    /// Serves `data` at `https://localhost:PORT/fw.fw`; when `cut_after` is set the first
    /// response stops after that many body bytes.
    pub async fn start(pki: &Pki, data: Vec<u8>, cut_after: Option<u64>) -> FileServer {
        Self::start_with(pki, data, cut_after, None).await
    }

    /// Serves `data`, pausing the first response after `after` body bytes until `release`
    /// is notified.
    pub async fn start_paused(
        pki: &Pki,
        data: Vec<u8>,
        after: u64,
        release: Arc<Notify>,
    ) -> FileServer {
        Self::start_with(pki, data, None, Some((after, release))).await
    }

    async fn start_with(
        pki: &Pki,
        data: Vec<u8>,
        cut_after: Option<u64>,
        pause: Option<(u64, Arc<Notify>)>,
    ) -> FileServer {
        let pause = Arc::new(Mutex::new(pause));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.server_chain(), pki.server_key())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let data = Arc::new(data);
        let cut = Arc::new(AtomicU64::new(cut_after.unwrap_or(u64::MAX)));
        let r2 = ranges.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, data, ranges, cut) =
                    (acceptor.clone(), data.clone(), r2.clone(), cut.clone());
                let pause = pause.lock().unwrap().take();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&req).to_string();
                    let range = text
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("range: ")
                                .or_else(|| l.strip_prefix("Range: "))
                        })
                        .map(str::to_owned);
                    ranges.lock().unwrap().push(range.clone());
                    let start: usize = range
                        .as_deref()
                        .and_then(|r| r.strip_prefix("bytes="))
                        .and_then(|r| r.split('-').next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let body = &data[start.min(data.len())..];
                    let head = if range.is_some() {
                        format!(
                            "HTTP/1.1 206 Partial Content\r\ncontent-length: {}\r\ncontent-range: bytes {}-{}/{}\r\naccept-ranges: bytes\r\nconnection: close\r\n\r\n",
                            body.len(),
                            start,
                            data.len() - 1,
                            data.len()
                        )
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\naccept-ranges: bytes\r\nconnection: close\r\n\r\n",
                            body.len()
                        )
                    };
                    let limit = cut.swap(u64::MAX, Ordering::SeqCst);
                    let n = usize::try_from(limit).unwrap_or(usize::MAX).min(body.len());
                    if tls.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut from = 0;
                    if let Some((after, release)) = pause {
                        from = usize::try_from(after).unwrap().min(n);
                        if tls.write_all(&body[..from]).await.is_err() || tls.flush().await.is_err()
                        {
                            return;
                        }
                        release.notified().await;
                    }
                    if tls.write_all(&body[from..n]).await.is_err() {
                        return;
                    }
                    let _ = tls.flush().await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        FileServer {
            url: format!("https://localhost:{port}/fw.fw"),
            ranges,
        }
    }
}
