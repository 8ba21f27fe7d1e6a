//! The management API client: the request core (authentication, TLS, error mapping) here, one
//! method per endpoint in `endpoints`.

mod endpoints;
mod error;

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

pub use endpoints::DeviceQuery;
pub use error::Error;

/// Characters percent-encoded in one path segment: everything but RFC 3986 unreserved ones,
/// so names with spaces, `?`, `#` or `%` stay one segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `/segment/segment/…` under `/api`, each segment percent-encoded: `api_path(&["orgs",
/// "acme", "products", "Fixture Simple"])` is `/orgs/acme/products/Fixture%20Simple`.
pub fn api_path(segments: &[&str]) -> String {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        path.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
    }
    path
}

/// How a [`Client`] is made: the server URL, then optionally a token, a CA to trust for
/// `https://` and a client certificate.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
}

impl ClientBuilder {
    /// Sends `Authorization: token …` with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts the CA certificates in this PEM (besides the system's) for `https://` URLs and
    /// for firmware download redirects, e.g. a development server's `tls/ca.pem`.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// Presents this client certificate (PEM certificate followed by its PKCS#8 key) over
    /// TLS: a user certificate authenticates on a server's HTTPS API listener.
    pub fn identity_pem(mut self, pem: Vec<u8>) -> Self {
        self.identity_pem = Some(pem);
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Makes the client.
    ///
    /// # Errors
    /// [`Error::Setup`] for a URL that is not `http://` or `https://`, an unreadable CA or
    /// client certificate.
    pub fn build(self) -> Result<Client, Error> {
        let base = self.url.trim_end_matches('/').to_owned();
        let base = base.strip_suffix("/api").unwrap_or(&base).to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Setup(format!(
                "server URL {:?} must start with http:// or https://",
                self.url
            )));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("nerveshub-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &self.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Setup(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Setup("CA file holds no certificate".to_owned()));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &self.identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| Error::Setup(format!("client certificate: {e}")))?;
            http = http.identity(identity);
        }
        let http = http
            .build()
            .map_err(|e| Error::Setup(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token: self.token,
        })
    }
}

/// A client of one server's management API. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `scheme://host:port`, without `/api`.
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never in Debug output.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a client for the server at `url` (`http://host:4000`; a trailing `/api` is
    /// accepted).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            token: None,
            ca_pem: None,
            identity_pem: None,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The server's base URL (without `/api`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.base)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("token {token}"));
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Value, Error> {
        let response = request.send().await.map_err(|source| Error::Unreachable {
            url: self.url(path),
            source,
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| Error::Unreachable {
                url: self.url(path),
                source,
            })?;
        if !status.is_success() {
            return Err(Error::from_answer(status.as_u16(), &body));
        }
        if status == StatusCode::NO_CONTENT || body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| {
            Error::InvalidResponse(format!("{path}: {e}: {}", String::from_utf8_lossy(&body)))
        })
    }

    /// Calls `method path` (under `/api`, see [`api_path`]) with an optional JSON body and
    /// returns the whole JSON answer (`Null` for `204 No Content`).
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the error for the server's status.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request, path).await
    }

    /// [`Client::call`] and the answer's `data` member.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn data(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let answer = self.call(method, path, body).await?;
        Ok(match answer {
            Value::Object(mut object) => object.remove("data").unwrap_or(Value::Object(object)),
            other => other,
        })
    }

    /// Uploads a `.fw` file to a product (multipart field `firmware`), calling `progress`
    /// with (bytes sent, total) as it streams; the server's firmware JSON.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, else as [`Client::call`] (422 when the
    /// server refuses the archive, 413 when it is too large).
    pub async fn upload_firmware(
        &self,
        org: &str,
        product: &str,
        file: &Path,
        mut progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<Value, Error> {
        let handle = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::io(format!("opening {}", file.display()), e))?;
        let total = handle
            .metadata()
            .await
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?
            .len();
        let chunks = futures_util::stream::unfold(handle, |mut handle| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match tokio::io::AsyncReadExt::read(&mut handle, &mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(buf), handle))
                }
                // reqwest stops reading the body at its first error: the upload fails.
                Err(e) => Some((Err(e), handle)),
            }
        });
        let counted = futures_util::StreamExt::map(chunks, {
            let mut sent = 0u64;
            move |chunk| {
                if let Ok(bytes) = &chunk {
                    sent += bytes.len() as u64;
                    progress(sent, total);
                }
                chunk
            }
        });
        let name = file.file_name().map_or_else(
            || "firmware.fw".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::wrap_stream(counted),
            total,
        )
        .file_name(name)
        .mime_str("application/octet-stream")
        .map_err(|e| Error::Setup(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("firmware", part);
        let path = api_path(&["orgs", org, "products", product, "firmwares"]);
        let request = self.request(Method::POST, &path).multipart(form);
        let answer = self.send(request, &path).await?;
        Ok(answer.get("data").cloned().unwrap_or(answer))
    }

    /// Downloads a firmware (following the server's redirect to its signed URL) into `out`,
    /// written beside it first and renamed, so a failed download leaves nothing; its size.
    ///
    /// # Errors
    /// [`Error::Io`] for the local file, else as [`Client::call`].
    pub async fn download_firmware(
        &self,
        org: &str,
        product: &str,
        uuid: &str,
        out: &Path,
    ) -> Result<u64, Error> {
        let path = api_path(&[
            "orgs",
            org,
            "products",
            product,
            "firmwares",
            uuid,
            "download",
        ]);
        let response = self
            .request(Method::GET, &path)
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                url: self.url(&path),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(Error::from_answer(status.as_u16(), &body));
        }
        let partial = out.with_extension("part");
        let result = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
            let mut response = response;
            let mut written = 0u64;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|source| Error::Unreachable {
                    url: self.url(&path),
                    source,
                })?
            {
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
                written += chunk.len() as u64;
            }
            file.sync_all()
                .await
                .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
            tokio::fs::rename(&partial, out)
                .await
                .map_err(|e| Error::io(format!("renaming to {}", out.display()), e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            api_path(&["orgs", "acme", "products", "Fixture Simple"]),
            "/orgs/acme/products/Fixture%20Simple"
        );
        assert_eq!(api_path(&["a/b", "c?d#e%"]), "/a%2Fb/c%3Fd%23e%25");
    }

    #[test]
    fn urls_are_checked_and_api_suffix_dropped() {
        let client = Client::builder("http://127.0.0.1:4000/api/")
            .build()
            .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:4000");
        assert!(matches!(
            Client::builder("127.0.0.1:4000").build(),
            Err(Error::Setup(_))
        ));
        let debug = format!(
            "{:?}",
            Client::builder("http://h")
                .token("nhu_secret")
                .build()
                .unwrap()
        );
        assert!(!debug.contains("nhu_secret"), "{debug}");
    }
}
