//! Firmware upload and download throughput through a real server on loopback, local
//! storage, SQLite: `cargo bench -p nerveshub-server --bench firmware_throughput`.
//!
//! - upload: `POST …/firmwares` of a signed 64 MiB `.fw` (multipart), through receiving to a
//!   temp file with SHA-256s, full fwup verification, the copy into storage and the row;
//! - download: the signed URL from `GET …/download` fetched over TLS (the device endpoint),
//!   whole and as a `Range: bytes=N-` resume of the second half.
#![allow(missing_docs, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nerveshub_server::{Config, RunningServer};
use serde_json::{Value, json};

/// Size of the resource in the benchmark's firmware (incompressible, so the archive is as
/// large).
const PAYLOAD: usize = 64 * 1024 * 1024;
const PRODUCT: &str = "bench";

fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nerveshub-fwup/testdata/fixtures")
        .join(rel)
}

/// A signed firmware with a `PAYLOAD`-byte pseudorandom resource, stored (deflate level 1).
fn make_firmware(dir: &std::path::Path) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let data: Vec<u8> = (0..PAYLOAD / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let conf = format!(
        "meta-product = \"{PRODUCT}\"\nmeta-version = \"1.0.0\"\nmeta-platform = \"bench\"\nmeta-architecture = \"x86_64\"\nfile-resource data.bin {{\n    host-path = \"data.bin\"\n}}\ntask complete {{\n    on-resource data.bin {{ raw_write(0) }}\n}}\n"
    );
    let key = nerveshub_fwup::PrivateKey::from_file_contents(
        &std::fs::read(fixture("keys/fwup-key.priv")).unwrap(),
        "fwup-key.priv",
    )
    .unwrap();
    let options = nerveshub_fwup::CreateOptions {
        compression_level: 1,
        signing_key: Some(key),
        creation_time: 1_700_000_000,
        working_dir: dir.to_owned(),
        ..Default::default()
    };
    nerveshub_fwup::create(
        conf.as_bytes(),
        &dir.join("fwup.conf"),
        Vec::new(),
        &options,
    )
    .unwrap()
}

struct Bench {
    server: RunningServer,
    api: reqwest::Client,
    device: reqwest::Client,
    token: String,
    firmware: Vec<u8>,
    collection: String,
}

impl Bench {
    async fn start(dir: &std::path::Path, firmware: Vec<u8>) -> Bench {
        let mut config = Config::new(dir.join("data"));
        config.api_addr = "127.0.0.1:0".parse().unwrap();
        config.device_addr = "127.0.0.1:0".parse().unwrap();
        let server = RunningServer::start(config).await.unwrap();
        let token = server.first_admin().unwrap().token.clone();
        let api = reqwest::Client::new();
        let base = format!("http://{}/api", server.api_addr());
        let post = |path: &str, body: Value| {
            api.post(format!("{base}{path}"))
                .header("authorization", format!("token {token}"))
                .json(&body)
                .send()
        };
        for (path, body) in [
            ("/orgs", json!({"name": "bench"})),
            ("/orgs/bench/products", json!({"name": PRODUCT})),
            (
                "/orgs/bench/keys",
                json!({"name": "fwup-key", "key": std::fs::read_to_string(fixture("keys/fwup-key.pub")).unwrap()}),
            ),
        ] {
            let response = post(path, body).await.unwrap();
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        {
            use rustls_pki_types::pem::PemObject as _;
            for cert in
                rustls_pki_types::CertificateDer::pem_file_iter(server.dev_ca_file().unwrap())
                    .unwrap()
            {
                roots.add(cert.unwrap()).unwrap();
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let device = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let collection = format!("{base}/orgs/bench/products/{PRODUCT}/firmwares");
        Bench {
            server,
            api,
            device,
            token,
            firmware,
            collection,
        }
    }

    /// Uploads the firmware; answers the time the POST took and its uuid.
    async fn upload(&self) -> (Duration, String) {
        let form = reqwest::multipart::Form::new().part(
            "firmware",
            reqwest::multipart::Part::bytes(self.firmware.clone()).file_name("bench.fw"),
        );
        let start = Instant::now();
        let response = self
            .api
            .post(&self.collection)
            .header("authorization", format!("token {}", self.token))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        (elapsed, body["data"]["uuid"].as_str().unwrap().to_owned())
    }

    async fn delete(&self, uuid: &str) {
        let response = self
            .api
            .delete(format!("{}/{uuid}", self.collection))
            .header("authorization", format!("token {}", self.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    }

    async fn download_url(&self, uuid: &str) -> String {
        // The device client: it does not follow the redirect.
        let response = self
            .device
            .get(format!("{}/{uuid}/download", self.collection))
            .header("authorization", format!("token {}", self.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::FOUND);
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Fetches `url` (from `from` on), answers the bytes read.
    async fn download(&self, url: &str, from: usize) -> usize {
        let mut request = self.device.get(url);
        if from > 0 {
            request = request.header("range", format!("bytes={from}-"));
        }
        let mut response = request.send().await.unwrap();
        assert!(response.status().is_success());
        let mut read = 0;
        while let Some(chunk) = response.chunk().await.unwrap() {
            read += chunk.len();
        }
        read
    }
}

fn firmware_throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let firmware = make_firmware(dir.path());
    let len = firmware.len();
    let bench = rt.block_on(Bench::start(dir.path(), firmware));

    let mut group = c.benchmark_group("firmware");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("upload_64MiB", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (elapsed, uuid) = bench.upload().await;
                    total += elapsed;
                    bench.delete(&uuid).await;
                }
                total
            })
        });
    });

    let (_, uuid) = rt.block_on(bench.upload());
    let url = rt.block_on(bench.download_url(&uuid));
    group.bench_function("download_64MiB_tls", |b| {
        b.iter(|| rt.block_on(async { assert_eq!(bench.download(&url, 0).await, len) }));
    });
    group.throughput(Throughput::Bytes((len - len / 2) as u64));
    group.bench_function("download_range_second_half_tls", |b| {
        b.iter(|| {
            rt.block_on(async { assert_eq!(bench.download(&url, len / 2).await, len - len / 2) })
        });
    });
    group.finish();
    rt.block_on(bench.server.shutdown());
}

criterion_group!(benches, firmware_throughput);
criterion_main!(benches);
