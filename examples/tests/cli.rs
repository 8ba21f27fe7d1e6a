//! The `nerveshub` CLI end to end: every command run as a subprocess of the built binary, on
//! a temporary HOME, against a real server on loopback (SQLite, and PostgreSQL when
//! `NERVESHUB_TEST_DATABASE_URL` is set), with a simulated device taking the update.
//!
//! - the README's walkthrough done with `nerveshub`: sign in, org, product, signing key, a
//!   Device CA registered with automatic proof of possession and JITP, a device certificate
//!   issued and registered, firmware signed locally and published, the device taking it;
//! - `--json` parsed back everywhere it is used;
//! - the errors users hit: unreachable server, bad token, role too low (403), not found,
//!   device offline (409), invalid fields (422), firmware not signed by the org's keys;
//! - CSV import with its per-row report, listing filters and pagination;
//! - `--help` with an example on every command, shell completions.
#![cfg(unix)]
#![allow(clippy::print_stderr)]

mod e2e_support;

use nerveshub_test_support::device as common;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::firmware;
use e2e_support::{Hub, SimDevice, databases, read_env};
use nerveshub_client::{Auth, Identity, PublicKey};
use serde_json::Value;

/// A user of the CLI: their own HOME (config) and working directory (key files).
struct User {
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User {
            home: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn config_file(&self) -> PathBuf {
        self.home.path().join(".config/nerveshub/config.toml")
    }

    /// Runs `nerveshub args…` with `stdin`, with no NERVESHUB_* variables but `env`.
    async fn run_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        use tokio::io::AsyncWriteExt as _;
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_nerveshub"));
        command
            .args(args)
            .current_dir(self.work.path())
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for var in [
            "NERVESHUB_URL",
            "NERVESHUB_TOKEN",
            "NERVESHUB_ORG",
            "NERVESHUB_PRODUCT",
            "NERVESHUB_CA_FILE",
            "NERVESHUB_CONFIG",
        ] {
            command.env_remove(var);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("nerveshub did not finish in 120 s")
            .unwrap()
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, "", &[]).await
    }

    /// A command that must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert_success(args, &output);
        String::from_utf8(output.stdout).unwrap()
    }

    /// A command that must succeed, run with `--json`; its output parsed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let stdout = self.ok(&all).await;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// A command that must fail with `code`; its stderr.
    async fn fails(&self, args: &[&str], code: i32) -> String {
        self.fails_env(args, code, &[]).await
    }

    async fn fails_env(&self, args: &[&str], code: i32, env: &[(&str, &str)]) -> String {
        let output = self.run_env(args, "", env).await;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: stdout {} stderr {stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            stderr.starts_with("error: "),
            "{args:?}: one clear line: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}

fn assert_success(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "nerveshub {args:?}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `check` every 200 ms for up to 90 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a `--watch` command until its first line of output, then stops it.
async fn watch_once(user: &User, args: &[&str]) -> Value {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nerveshub"))
        .args(args)
        .current_dir(user.work.path())
        .env("HOME", user.home.path())
        .env_remove("XDG_CONFIG_HOME")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a first refresh")
        .unwrap()
        .expect("a line");
    let second = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a second refresh")
        .unwrap()
        .expect("a line");
    child.kill().await.unwrap();
    let value: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        value["name"],
        serde_json::from_str::<Value>(&second).unwrap()["name"]
    );
    value
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const ORG: &str = "cli-org";
/// The product the test firmware names in its meta-product.
const PRODUCT: &str = "demo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_with_the_cli() {
    for db in databases() {
        eprintln!("database: {}", db.name());
        let hub = Hub::start(db, |_| {}).await;
        walkthrough(&hub).await;
        hub.stop().await;
    }
}

async fn walkthrough(hub: &Hub) {
    let admin = User::new();
    let url = hub.api_url();
    let ca = hub.ca_file();
    let ca = ca.to_str().unwrap();

    // Sign in by pasting the admin's token; the config is private.
    let output = admin
        .run_env(
            &["login", "--url", &url, "--ca-file", ca, "--token"],
            &format!("{}\n", hub.token()),
            &[],
        )
        .await;
    assert_success(&["login"], &output);
    assert_eq!(mode(&admin.config_file()), 0o600);
    let config = std::fs::read_to_string(admin.config_file()).unwrap();
    assert!(config.contains(hub.token()), "{config}");
    let me = admin.json(&["whoami"]).await;
    assert_eq!(me["email"], "admin@localhost");

    // Org and product, chosen as defaults.
    admin.ok(&["org", "create", ORG]).await;
    admin.ok(&["org", "use", ORG]).await;
    let orgs = admin.json(&["org", "list"]).await;
    assert!(
        orgs.as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == ORG && o["role"] == "admin"),
        "{orgs}"
    );
    let created = admin.json(&["product", "create", PRODUCT]).await;
    assert_eq!(created["name"], PRODUCT);
    admin.ok(&["product", "use", PRODUCT]).await;
    let table = admin.ok(&["product", "list"]).await;
    assert!(
        table.starts_with("NAME\n") && table.contains(PRODUCT),
        "{table}"
    );

    // A signing key made as `fwup -g` makes it, registered with the org.
    admin.ok(&["key", "create"]).await;
    let public = std::fs::read_to_string(admin.path("fwup-key.pub")).unwrap();
    let private = std::fs::read_to_string(admin.path("fwup-key.priv")).unwrap();
    let public_key = PublicKey::from_base64(&public).unwrap();
    assert!(nerveshub_fwup::PrivateKey::from_base64(&private).is_ok());
    assert_eq!(mode(&admin.path("fwup-key.priv")), 0o600);
    admin.ok(&["key", "register", "prod"]).await;
    let keys = admin.json(&["key", "list"]).await;
    assert_eq!(keys[0]["name"], "prod");
    assert_eq!(keys[0]["key"], public.as_str());
    // A second `key create` never overwrites the private key.
    admin.fails(&["key", "create"], 1).await;
    assert_eq!(
        std::fs::read_to_string(admin.path("fwup-key.priv")).unwrap(),
        private
    );

    // A colleague with the view role: signs in with email and password, can read, and is
    // told which role a change needs.
    let output = admin
        .run_env(
            &["user", "create", "jane@example.com", "--name", "Jane"],
            "a long password\n",
            &[],
        )
        .await;
    assert_success(&["user", "create"], &output);
    admin
        .ok(&["user", "add", "jane@example.com", "--role", "view"])
        .await;
    let members = admin.json(&["user", "list"]).await;
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == "jane@example.com" && m["role"] == "view"),
        "{members}"
    );
    let jane = User::new();
    let output = jane
        .run_env(
            &["login", "--url", &url, "--email", "jane@example.com"],
            "a long password\n",
            &[],
        )
        .await;
    assert_success(&["login", "--email"], &output);
    assert_eq!(jane.json(&["whoami"]).await["email"], "jane@example.com");
    let keys = jane.json(&["key", "list", "--org", ORG]).await;
    assert_eq!(keys.as_array().unwrap().len(), 1);
    std::fs::copy(admin.path("fwup-key.pub"), jane.path("fwup-key.pub")).unwrap();
    let stderr = jane
        .fails(&["key", "register", "other", "--org", ORG], 5)
        .await;
    assert!(stderr.contains("needs the `manage` role"), "{stderr}");
    let output = jane
        .run_env(
            &["login", "--url", &url, "--email", "jane@example.com"],
            "wrong\n",
            &[],
        )
        .await;
    assert_eq!(output.status.code(), Some(4), "a wrong password");
    assert!(String::from_utf8_lossy(&output.stderr).contains("HTTP 401"));

    // A Device CA made here and registered with proof of possession and JITP.
    admin.ok(&["ca", "create", "--name", "acme-devices"]).await;
    assert_eq!(mode(&admin.path("ca-key.pem")), 0o600);
    let registered = admin
        .json(&[
            "ca",
            "register",
            "--jitp-product",
            PRODUCT,
            "--jitp-tag",
            "jitp",
        ])
        .await;
    let serial = registered["serial"].as_str().unwrap().to_owned();
    assert_eq!(registered["jitp"]["product_name"], PRODUCT);
    let cas = admin.json(&["ca", "list"]).await;
    assert_eq!(cas[0]["serial"], serial.as_str());
    // The same CA twice is refused with the server's field error.
    let stderr = admin.fails(&["ca", "register"], 8).await;
    assert!(stderr.contains("(HTTP 422)"), "{stderr}");

    // A device certificate issued from that CA and registered in one step.
    let issued = admin
        .json(&["device", "cert", "issue", "device-1", "--register"])
        .await;
    assert_eq!(issued["identifier"], "device-1");
    assert_eq!(mode(&admin.path("device-1-key.pem")), 0o600);
    let certs = admin.json(&["device", "cert", "list", "device-1"]).await;
    assert_eq!(certs[0]["serial"], issued["serial"]);

    // Firmware: v1 on the device's image; v2 signed by some other key is refused locally,
    // then signed here with the org's key and published.
    let dir = admin.work.path();
    let other_key = firmware::signing_key(9);
    let fw1 = firmware::build(dir, "1.0.0", &other_key);
    let image = admin.path("disk.img");
    firmware::provision(&image, &fw1);
    let fw2 = firmware::build(dir, "2.0.0", &other_key);
    std::fs::write(admin.path("v2.fw"), &fw2).unwrap();
    let stderr = admin.fails(&["firmware", "publish", "v2.fw"], 1).await;
    assert!(
        stderr.contains("does not verify against any of org cli-org's keys (prod)"),
        "{stderr}"
    );
    admin.ok(&["firmware", "sign", "v2.fw"]).await;
    let published = admin.json(&["firmware", "publish", "v2.fw"]).await;
    let uuid = published["uuid"].as_str().unwrap().to_owned();
    assert_eq!(published["version"], "2.0.0");
    let list = admin.json(&["firmware", "list"]).await;
    assert_eq!(list[0]["uuid"], uuid.as_str());
    assert_eq!(
        admin.json(&["firmware", "show", &uuid]).await["version"],
        "2.0.0"
    );
    admin
        .ok(&["firmware", "download", &uuid, "-o", "copy.fw"])
        .await;
    assert_eq!(
        std::fs::read(admin.path("copy.fw")).unwrap(),
        std::fs::read(admin.path("v2.fw")).unwrap()
    );

    // The device connects with the issued certificate and trusts the org's key.
    let cert = std::fs::read(admin.path("device-1.pem")).unwrap();
    let key = std::fs::read(admin.path("device-1-key.pem")).unwrap();
    let auth = Auth::Certificate(Identity::from_bytes(&cert, &key).unwrap());
    let device = SimDevice::start(hub, auth, &image, vec![public_key]);
    eventually("device-1 online", async || {
        let shown = admin.json(&["device", "show", "device-1"]).await;
        if shown["online"] == true {
            Ok(())
        } else {
            Err(shown.to_string())
        }
    })
    .await;

    // A deployment takes it there: created (off), switched on; the device, reconnecting,
    // joins it and updates.
    let created = admin
        .json(&[
            "deployment",
            "create",
            "beta",
            "--firmware",
            &uuid,
            "--version",
            ">= 1.0.0",
        ])
        .await;
    assert_eq!(created["is_active"], false);
    assert_eq!(created["conditions"]["version"], ">= 1.0.0");
    let on = admin.json(&["deployment", "on", "beta"]).await;
    assert_eq!(on["is_active"], true);
    admin.ok(&["device", "reconnect", "device-1"]).await;
    eventually("device-1 on 2.0.0", async || {
        let shown = admin.json(&["device", "show", "device-1"]).await;
        if shown["online"] == true && shown["version"] == "2.0.0" {
            Ok(())
        } else {
            Err(format!("{shown} {}", device.log()))
        }
    })
    .await;
    assert_eq!(read_env(&image).active_slot(), Some("b"));
    let updates = admin.json(&["device", "updates", "device-1"]).await;
    assert_eq!(
        updates.as_array().unwrap().last().unwrap()["status"],
        "completed"
    );
    let status = admin.json(&["deployment", "status", "beta"]).await;
    assert_eq!(
        status["release"]["firmware_uuid"],
        uuid.as_str(),
        "{status}"
    );
    assert_eq!(status["release"]["percent_complete"], 100, "{status}");
    let text = admin.ok(&["deployment", "status", "beta"]).await;
    assert!(text.starts_with("deployment beta: on"), "{text}");
    let list = admin.json(&["deployment", "list"]).await;
    assert_eq!(list[0]["name"], "beta");
    let table = admin.ok(&["deployment", "list"]).await;
    assert!(table.contains("2.0.0"), "{table}");
    // --watch streams one JSON document per refresh until stopped.
    watch_once(
        &admin,
        &[
            "deployment",
            "status",
            "beta",
            "--watch",
            "--interval",
            "1",
            "--json",
        ],
    )
    .await;
    let updated = admin
        .json(&[
            "deployment",
            "update",
            "beta",
            "--notes",
            "first wave",
            "--set",
            "halt_window=7",
        ])
        .await;
    assert_eq!(updated["notes"], "first wave");
    assert_eq!(updated["halt_window"], 7, "{updated}");
    let releases = admin.json(&["deployment", "releases", "beta"]).await;
    assert_eq!(releases[0]["firmware"]["uuid"], uuid.as_str());
    assert_eq!(
        admin.json(&["deployment", "off", "beta"]).await["is_active"],
        false
    );

    // And a push by hand: v3 with `device upgrade`.
    let fw3 = firmware::build(dir, "3.0.0", &other_key);
    std::fs::write(admin.path("v3.fw"), &fw3).unwrap();
    admin.ok(&["firmware", "sign", "v3.fw"]).await;
    let uuid3 = admin.json(&["firmware", "publish", "v3.fw"]).await["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .ok(&["device", "upgrade", "device-1", "--firmware", &uuid3])
        .await;
    eventually("device-1 on 3.0.0", async || {
        let shown = admin.json(&["device", "show", "device-1"]).await;
        if shown["online"] == true && shown["version"] == "3.0.0" {
            Ok(())
        } else {
            Err(format!("{shown} {}", device.log()))
        }
    })
    .await;
    admin.ok(&["deployment", "delete", "beta"]).await;
    admin.fails(&["deployment", "show", "beta"], 6).await;

    // A product shared secret, shown once.
    let secret = admin.json(&["secret", "create"]).await;
    assert!(
        secret["key"].as_str().unwrap().starts_with("nhp_"),
        "{secret}"
    );
    assert!(secret["secret"].as_str().is_some_and(|s| !s.is_empty()));
    let secrets = admin.json(&["secret", "list"]).await;
    assert!(
        secrets[0].get("secret").is_none_or(Value::is_null),
        "{secrets}"
    );

    devices_and_errors(hub, &admin).await;
    drop(device);
}

/// CSV import, listing, device changes and the errors users hit.
async fn devices_and_errors(hub: &Hub, admin: &User) {
    std::fs::write(
        admin.path("devices.csv"),
        "identifier,description,tags\n\
         bench-1,on the bench,beta;eu\n\
         device-1,taken,\n\
         bench-2,,eu\n\
         bad id,,\n",
    )
    .unwrap();
    let output = admin
        .run(&["device", "import", "devices.csv", "--json"])
        .await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed row fails the command"
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["failed"], 2, "{report}");
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["result"], "created");
    assert_eq!(rows[1]["result"], "failed");
    assert!(
        rows[1]["error"].as_str().unwrap().contains("identifier"),
        "{report}"
    );
    assert_eq!(rows[3]["row"], 5);

    let eu = admin.json(&["device", "list", "--tag", "eu"]).await;
    let ids: Vec<&str> = eu["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["identifier"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bench-1", "bench-2"]);
    let all = admin
        .json(&["device", "list", "--page-size", "1", "--all"])
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "{all}");
    let page = admin.ok(&["device", "list", "--page-size", "1"]).await;
    assert!(page.contains("page 1 of 3"), "{page}");
    let found = admin.json(&["device", "list", "--search", "BENCH-2"]).await;
    assert_eq!(found["data"][0]["identifier"], "bench-2");
    let updated = admin
        .json(&[
            "device",
            "update",
            "bench-1",
            "--tags",
            "gamma",
            "--description",
            "moved",
        ])
        .await;
    assert_eq!(updated["tags"], serde_json::json!(["gamma"]));

    // 409: the device is offline.
    let stderr = admin.fails(&["device", "reboot", "bench-1"], 7).await;
    assert!(stderr.contains("device is offline"), "{stderr}");
    // 404.
    let stderr = admin.fails(&["device", "show", "nope"], 6).await;
    assert!(stderr.contains("not found"), "{stderr}");
    // 422 with the field.
    let stderr = admin.fails(&["org", "create", "bad name"], 8).await;
    assert!(stderr.contains("  name: "), "{stderr}");
    // Unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let stderr = admin.fails(&["whoami", "--url", &dead], 3).await;
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    // A bad token: sign in again.
    let stderr = admin
        .fails_env(&["whoami"], 4, &[("NERVESHUB_TOKEN", "nhu_wrong")])
        .await;
    assert!(stderr.contains("nerveshub login"), "{stderr}");
    // No org or product chosen.
    let stderr = admin
        .fails_env(
            &["device", "list"],
            1,
            &[("NERVESHUB_CONFIG", "/nonexistent/c.toml")],
        )
        .await;
    assert!(stderr.contains("nerveshub login"), "{stderr}");

    let cleared = admin.json(&["device", "clear-penalty", "bench-1"]).await;
    assert_eq!(cleared["penalty_cleared"], true);
    admin.ok(&["device", "delete", "bench-2"]).await;
    admin.fails(&["device", "show", "bench-2"], 6).await;

    // Signing out forgets the token.
    admin.ok(&["logout"]).await;
    let stderr = admin.fails(&["whoami"], 4).await;
    assert!(stderr.contains("nerveshub login"), "{stderr}");
    let _ = hub;
}

#[tokio::test]
async fn help_has_an_example_everywhere_and_completions_work() {
    let user = User::new();
    let commands: &[&[&str]] = &[
        &["login"],
        &["logout"],
        &["whoami"],
        &["org", "list"],
        &["org", "create"],
        &["org", "use"],
        &["product", "list"],
        &["product", "create"],
        &["user", "add"],
        &["user", "create"],
        &["device", "list"],
        &["device", "import"],
        &["device", "upgrade"],
        &["device", "clear-penalty"],
        &["device", "cert", "issue"],
        &["secret", "create"],
        &["ca", "create"],
        &["ca", "register"],
        &["key", "create"],
        &["key", "register"],
        &["firmware", "sign"],
        &["firmware", "publish"],
        &["firmware", "download"],
        &["deployment", "create"],
        &["deployment", "update"],
        &["deployment", "status"],
        &["completions"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let help = user.ok(&args).await;
        assert!(help.contains("Example"), "{command:?}: {help}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = user.ok(&["completions", shell]).await;
        assert!(
            script.contains("nerveshub") && script.contains("deployment"),
            "{shell}"
        );
    }
    // Usage errors exit 2 (clap).
    let output = user.run(&["device", "frobnicate"]).await;
    assert_eq!(output.status.code(), Some(2));
}

/// `login --certificate` on the HTTPS API listener: the CSR is signed by the user CA, the
/// certificate alone then signs in, and not after it is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_login_then_revocation() {
    for db in databases() {
        eprintln!("database: {}", db.name());
        certificate_login(db).await;
    }
}

async fn certificate_login(db: e2e_support::TestDb) {
    let hub = Hub::start(db, |config| {
        config.api_tls_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let https = hub.api_tls_url().expect("an HTTPS API listener");
    let ca = hub.ca_file();
    let ca = ca.to_str().unwrap();
    let admin = User::new();
    let output = admin
        .run_env(
            &["login", "--url", &hub.api_url(), "--token"],
            &format!("{}\n", hub.token()),
            &[],
        )
        .await;
    assert_success(&["login"], &output);
    let output = admin
        .run_env(
            &["user", "create", "jane@example.com", "--name", "Jane"],
            "a long password\n",
            &[],
        )
        .await;
    assert_success(&["user", "create"], &output);

    let jane = User::new();
    let output = jane
        .run_env(
            &[
                "login",
                "--url",
                &https,
                "--ca-file",
                ca,
                "--email",
                "jane@example.com",
                "--certificate",
            ],
            "a long password\n",
            &[],
        )
        .await;
    assert_success(&["login", "--certificate"], &output);
    let config = std::fs::read_to_string(jane.config_file()).unwrap();
    assert!(!config.contains("token"), "the certificate alone: {config}");
    let key = jane.home.path().join(".config/nerveshub/user-key.pem");
    assert_eq!(mode(&key), 0o600);

    // The certificate alone signs in on the HTTPS listener …
    assert_eq!(jane.json(&["whoami"]).await["email"], "jane@example.com");
    let certs = jane.json(&["user", "certificates"]).await;
    let serial = certs[0]["serial"].as_str().unwrap().to_owned();
    assert!(certs[0]["revoked_at"].is_null());
    // … but not on the plain HTTP one, where no certificate is sent.
    jane.fails(&["whoami", "--url", &hub.api_url()], 4).await;
    // Someone else's token cannot revoke it.
    admin
        .fails(&["user", "revoke-certificate", &serial], 6)
        .await;

    // Revoked (with the certificate itself), it signs in no more.
    jane.ok(&["user", "revoke-certificate", &serial]).await;
    let stderr = jane.fails(&["whoami"], 4).await;
    assert!(stderr.contains("nerveshub login"), "{stderr}");
    hub.stop().await;
}
