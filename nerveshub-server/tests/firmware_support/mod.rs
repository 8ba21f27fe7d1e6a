//! What the firmware tests share: the fixture archives, the storage backends to run on (local
//! always, S3 when `NERVESHUB_TEST_S3_ENDPOINT` names one), uploads, and an HTTPS client that
//! trusts the test server's development CA.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nerveshub_server::Config;
use object_store::ObjectStore as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::{self, OrgFixture, TestDb, TestServer};

/// The product the `simple*` fixtures declare.
pub const SIMPLE: &str = "Fixture Simple";
/// `meta-uuid` of fw/simple-signed.fw, as C fwup printed it (expected/simple-signed/metadata.stdout).
pub const SIMPLE_UUID: &str = "59b5ec24-5bdf-5d62-04a8-53ad5e52706c";

/// `nerveshub-fwup/testdata/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nerveshub-fwup/testdata/fixtures")
        .join(rel)
}

pub fn fixture_bytes(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("reading fixture {rel}: {e}"))
}

pub use nerveshub_test_support::S3Server;

/// Where a test server keeps firmware.
#[derive(Debug, Clone)]
pub enum TestStorage {
    Local,
    S3(S3Server),
}

impl TestStorage {
    pub fn name(&self) -> &'static str {
        match self {
            TestStorage::Local => "local",
            TestStorage::S3(_) => "s3",
        }
    }
}

/// Local storage, plus S3 when `NERVESHUB_TEST_S3_ENDPOINT` and `NERVESHUB_TEST_S3_BUCKET`
/// name a server (with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` set). Without them the S3
/// suite is skipped, loudly, and fails under `NERVESHUB_CI=1`.
pub fn storages() -> Vec<TestStorage> {
    let mut storages = vec![TestStorage::Local];
    storages.extend(nerveshub_test_support::s3_server().map(TestStorage::S3));
    storages
}

/// Every (database, storage) pair to run a test on.
pub async fn matrix() -> Vec<(TestDb, TestStorage)> {
    let storages = storages();
    let mut pairs = Vec::new();
    for db in common::databases().await {
        for storage in &storages {
            pairs.push((db.clone(), storage.clone()));
        }
    }
    pairs
}

/// A prefix in the shared test bucket that no other test server uses.
fn unique_prefix() -> String {
    nerveshub_test_support::unique_name("t")
}

/// The object_store options that point the server (or a test's own client) at the S3 server.
fn s3_options(s3: &S3Server) -> Vec<(String, String)> {
    vec![
        ("aws_endpoint".into(), s3.endpoint.clone()),
        ("aws_allow_http".into(), "true".into()),
        ("aws_region".into(), "us-east-1".into()),
    ]
}

/// A test server with its storage.
pub struct FwServer {
    pub ts: TestServer,
    pub storage: TestStorage,
    /// For S3: the prefix this server's objects live under in the bucket.
    pub s3_prefix: Option<String>,
    /// The database URL the server was started with (`None` for SQLite in the data dir).
    pub database_url: Option<String>,
}

impl FwServer {
    pub async fn start(db: TestDb, storage: TestStorage) -> FwServer {
        FwServer::start_with(db, storage, |_| {}).await
    }

    pub async fn start_with(
        db: TestDb,
        storage: TestStorage,
        adjust: impl FnOnce(&mut Config),
    ) -> FwServer {
        let s3_prefix = match &storage {
            TestStorage::Local => None,
            TestStorage::S3(_) => Some(unique_prefix()),
        };
        let mut database_url = None;
        let ts = TestServer::start_with(db, |config| {
            if let (TestStorage::S3(s3), Some(prefix)) = (&storage, &s3_prefix) {
                config.storage = nerveshub_server::StorageConfig::S3 {
                    bucket: s3.bucket.clone(),
                    prefix: prefix.clone(),
                    options: s3_options(s3),
                };
            }
            adjust(config);
            database_url = config.database_url.clone();
        })
        .await;
        FwServer {
            ts,
            storage,
            s3_prefix,
            database_url,
        }
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.ts.db.name(), self.storage.name())
    }

    /// An org with a product named `product` and (when `key` is set) the fixture key
    /// `keys/<key>.pub` registered.
    pub async fn org_with_product(
        &self,
        org: &str,
        product: &str,
        key: Option<&str>,
    ) -> OrgFixture {
        let fixture = self.ts.org_fixture(org).await;
        let (status, body) = self
            .ts
            .post(
                &fixture.admin,
                &format!("/orgs/{org}/products"),
                json!({"name": product}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        if let Some(key) = key {
            self.add_key(&fixture, key).await;
        }
        fixture
    }

    /// Registers `keys/<key>.pub` with the org.
    pub async fn add_key(&self, fixture: &OrgFixture, key: &str) {
        let public = String::from_utf8(fixture_bytes(&format!("keys/{key}.pub"))).unwrap();
        let (status, body) = self
            .ts
            .post(
                &fixture.manage,
                &format!("/orgs/{}/keys", fixture.org),
                json!({"name": key, "key": public}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Uploads `bytes` as the `firmware` field; answers the status, the JSON body and the
    /// `location` header.
    pub async fn upload(
        &self,
        token: &str,
        org: &str,
        product: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value, Option<String>) {
        let part = Part::bytes(bytes).file_name("firmware.fw");
        self.upload_form(token, org, product, Form::new().part("firmware", part))
            .await
    }

    pub async fn upload_form(
        &self,
        token: &str,
        org: &str,
        product: &str,
        form: Form,
    ) -> (StatusCode, Value, Option<String>) {
        let response = self
            .ts
            .http
            .post(self.ts.api(&firmwares_path(org, product)))
            .header("authorization", format!("token {token}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, location)
    }

    /// The keys of every stored object, relative to the store's root.
    pub async fn stored_objects(&self) -> Vec<String> {
        match (&self.storage, &self.s3_prefix) {
            (TestStorage::S3(s3), Some(prefix)) => {
                let store = s3_client(s3);
                let root = object_store::path::Path::from(prefix.as_str());
                let mut found = Vec::new();
                let mut dirs = vec![root.clone()];
                while let Some(dir) = dirs.pop() {
                    let listed = store.list_with_delimiter(Some(&dir)).await.unwrap();
                    dirs.extend(listed.common_prefixes);
                    found.extend(listed.objects.into_iter().map(|o| {
                        o.location
                            .prefix_match(&root)
                            .unwrap()
                            .map(|p| p.as_ref().to_owned())
                            .collect::<Vec<_>>()
                            .join("/")
                    }));
                }
                found.sort();
                found
            }
            _ => {
                let mut found = Vec::new();
                walk(&self.ts.data_dir.path().join("firmware"), "", &mut found);
                found.sort();
                found
            }
        }
    }

    /// The stored bytes of `key` (as [`FwServer::stored_objects`] lists it).
    pub async fn stored_bytes(&self, key: &str) -> Vec<u8> {
        match (&self.storage, &self.s3_prefix) {
            (TestStorage::S3(s3), Some(prefix)) => {
                let store = s3_client(s3);
                let path = object_store::path::Path::from(format!("{prefix}/{key}"));
                object_store::ObjectStoreExt::get(&store, &path)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .to_vec()
            }
            _ => std::fs::read(self.ts.data_dir.path().join("firmware").join(key)).unwrap(),
        }
    }

    /// Files left in the upload staging directory.
    pub fn upload_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        walk(&self.ts.data_dir.path().join("uploads"), "", &mut found);
        found
    }

    /// Asserts that the product's firmware list holds exactly `uuids` and that storage holds
    /// exactly one object per firmware, with no upload temp files left.
    pub async fn assert_stored(&self, fixture: &OrgFixture, product: &str, uuids: &[&str]) {
        let (status, body) = self
            .ts
            .get(&fixture.view, &firmwares_path(&fixture.org, product))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut listed: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["uuid"].as_str().unwrap())
            .collect();
        listed.sort_unstable();
        let mut expected = uuids.to_vec();
        expected.sort_unstable();
        assert_eq!(listed, expected, "{}: firmware list", self.label());
        let objects = self.stored_objects().await;
        assert_eq!(
            objects.len(),
            uuids.len(),
            "{}: objects {objects:?}",
            self.label()
        );
        for uuid in uuids {
            assert!(
                objects.iter().any(|o| o.contains(uuid)),
                "{}: no object for {uuid} in {objects:?}",
                self.label()
            );
        }
        assert_eq!(
            self.upload_leftovers(),
            Vec::<String>::new(),
            "{}",
            self.label()
        );
    }

    /// An HTTPS client that trusts the server's development CA (and nothing else), with rustls
    /// on aws-lc-rs, and that does not follow redirects.
    pub fn device_client(&self) -> reqwest::Client {
        let ca = self
            .ts
            .server
            .dev_ca_file()
            .expect("the test server makes a development CA");
        tls_client(Some(ca))
    }

    /// The database, for rows no API of this branch makes (device updates).
    pub async fn database(&self) -> sqlx::AnyConnection {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let url = self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.ts.data_dir.path().join("nerveshub.db").display()
            )
        });
        sqlx::AnyConnection::connect(&url).await.unwrap()
    }
}

/// A client trusting `ca` (PEM file) only, or with no roots at all; never follows redirects.
pub fn tls_client(ca: Option<&Path>) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        use rustls_pki_types::pem::PemObject as _;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// The test's own client of the S3 server (credentials from the environment).
pub fn s3_client(s3: &S3Server) -> AmazonS3 {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_virtual_hosted_style_request(false);
    for (key, value) in s3_options(s3) {
        builder = builder.with_config(key.parse().unwrap(), value);
    }
    builder.build().unwrap()
}

fn walk(dir: &Path, rel: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type().unwrap().is_dir() {
            walk(&entry.path(), &rel, found);
        } else {
            found.push(rel);
        }
    }
}

/// `/orgs/<org>/products/<product>/firmwares`, the product name percent-encoded.
pub fn firmwares_path(org: &str, product: &str) -> String {
    format!(
        "/orgs/{org}/products/{}/firmwares",
        product.replace(' ', "%20")
    )
}

/// Upper-case hex SHA-256, as the server records checksums.
pub fn sha256_upper(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The metadata of a complete firmware for `product`.
pub fn full_meta<'a>(product: &'a str, version: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("meta-product", product),
        ("meta-version", version),
        ("meta-platform", "rpi4"),
        ("meta-architecture", "arm"),
        ("meta-author", "tests"),
    ]
}

/// A firmware made here with nerveshub-fwup, signed with `keys/fwup-key.priv`: meta.conf
/// with `meta` (key, value) and one resource of `len` pseudorandom (incompressible) bytes.
pub fn make_firmware(meta: &[(&str, &str)], len: usize, seed: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut state = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let mut conf = String::new();
    for (key, value) in meta {
        conf.push_str(&format!("{key} = \"{value}\"\n"));
    }
    conf.push_str(
        "file-resource data.bin {\n    host-path = \"data.bin\"\n}\ntask complete {\n    on-resource data.bin { raw_write(0) }\n}\n",
    );
    let key = nerveshub_fwup::PrivateKey::from_file_contents(
        &fixture_bytes("keys/fwup-key.priv"),
        "fwup-key.priv",
    )
    .unwrap();
    let options = nerveshub_fwup::CreateOptions {
        compression_level: 1,
        signing_key: Some(key),
        creation_time: 1_700_000_000,
        working_dir: dir.path().to_owned(),
        ..Default::default()
    };
    nerveshub_fwup::create(
        conf.as_bytes(),
        &dir.path().join("fwup.conf"),
        Vec::new(),
        &options,
    )
    .unwrap()
}

/// The `meta-uuid` of an archive.
pub fn uuid_of(bytes: &[u8]) -> String {
    nerveshub_fwup::ArchiveReader::open(bytes)
        .unwrap()
        .head()
        .uuid()
        .to_string()
}
