//! The `nerveshub-server` binary as an operator runs it: `--version` names it, settings come
//! from flags > environment > `--config` file > defaults, `config print` masks secrets and
//! reads back as a config file, logs written to a file have no colour codes and are JSON
//! lines with `--log-format json` (never with a request's query), and `admin reset-password`
//! works on the data directory.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_nerveshub-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary with none of the caller's NERVESHUB_* settings.
fn server(dir: &Path) -> Command {
    let mut command = Command::new(SERVER);
    command.current_dir(dir).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("NERVESHUB_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn wait_healthy(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http_get(port, "/health").starts_with("HTTP/1.1 200")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never answered /health"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn version_names_each_binary() {
    for (bin, name) in [
        (SERVER, "nerveshub-server"),
        (env!("CARGO_BIN_EXE_nerveshub-device"), "nerveshub-device"),
    ] {
        let out = run(Command::new(bin).arg("--version"));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.starts_with(&format!("{name} {}", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
    }
}

#[test]
fn settings_come_from_flags_then_environment_then_file_then_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nerveshub.toml");
    std::fs::write(
        &file,
        r#"
api-addr = "127.0.0.1:1111"
device-addr = "127.0.0.1:2222"
admin-email = "file@example.com"
storage = "s3://bucket/prefix"
metrics-addr = "127.0.0.1:9100"
device-host = ["gw.example.com"]
log-format = "json"

[storage-option]
aws_region = "eu-west-1"
aws_secret_access_key = "file-s3-secret"
"#,
    )
    .unwrap();
    let out = run(server(dir.path())
        .args(["--config", file.to_str().unwrap()])
        .env("NERVESHUB_API_ADDR", "127.0.0.1:3333")
        .env("NERVESHUB_ADMIN_EMAIL", "env@example.com")
        .env(
            "NERVESHUB_DATABASE_URL",
            "postgres://hub:hunter2@db.internal/hub",
        )
        .args(["--admin-email", "flag@example.com", "config", "print"]));
    let printed = String::from_utf8(out.stdout).unwrap();
    let table: toml::Table = toml::from_str(&printed).unwrap();
    let text = |key: &str| table[key].as_str().unwrap().to_owned();
    assert_eq!(text("admin-email"), "flag@example.com", "flag > env");
    assert_eq!(text("api-addr"), "127.0.0.1:3333", "env > file");
    assert_eq!(text("device-addr"), "127.0.0.1:2222", "file > default");
    assert_eq!(text("metrics-addr"), "127.0.0.1:9100");
    assert_eq!(text("storage"), "s3://bucket/prefix");
    assert_eq!(text("log-format"), "json");
    assert_eq!(text("data-dir"), "./nerveshub-data", "default");
    assert_eq!(table["max-firmware-size"].as_integer(), Some(209_715_200));
    assert_eq!(table["device-poll-interval"].as_integer(), Some(3600));
    assert_eq!(table["device-host"].as_array().unwrap().len(), 1);
    // Secrets are masked, other options shown.
    assert_eq!(text("database-url"), "postgres://hub:***@db.internal/hub");
    let options = table["storage-option"].as_table().unwrap();
    assert_eq!(options["aws_region"].as_str(), Some("eu-west-1"));
    assert_eq!(options["aws_secret_access_key"].as_str(), Some("***"));
    assert!(!printed.contains("hunter2") && !printed.contains("file-s3-secret"));

    // What it prints is a config file that gives the same settings.
    let again = dir.path().join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    let out =
        run(server(dir.path()).args(["--config", again.to_str().unwrap(), "config", "print"]));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), printed);

    // A misspelt key is an error naming it, not a silently ignored setting.
    std::fs::write(&file, "api-adr = \"127.0.0.1:1\"\n").unwrap();
    let out = server(dir.path())
        .args(["--config", file.to_str().unwrap(), "config", "print"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("api-adr"));
}

#[test]
fn cluster_settings_come_from_flags_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nerveshub.toml");
    std::fs::write(
        &file,
        "node-role = \"api\"\nnode-id = \"file-node\"\ndrain-batch = 10\ndrain-interval = 2\n",
    )
    .unwrap();
    let out = run(server(dir.path())
        .args(["--config", file.to_str().unwrap()])
        .env("NERVESHUB_DRAIN_BATCH", "50")
        .args([
            "--node-id",
            "flag-node",
            "--local-storage-shared",
            "config",
            "print",
        ]));
    let printed = String::from_utf8(out.stdout).unwrap();
    let table: toml::Table = toml::from_str(&printed).unwrap();
    assert_eq!(table["node-role"].as_str(), Some("api"), "{printed}");
    assert_eq!(table["node-id"].as_str(), Some("flag-node"), "flag > file");
    assert_eq!(table["drain-batch"].as_integer(), Some(50), "env > file");
    assert_eq!(table["drain-interval"].as_integer(), Some(2));
    assert_eq!(table["local-storage-shared"].as_bool(), Some(true));
    // The defaults: every node does everything, NervesHub's drain pace.
    let out = run(server(dir.path()).args(["config", "print"]));
    let table: toml::Table = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(table["node-role"].as_str(), Some("all"));
    assert!(!table.contains_key("node-id"));
    assert_eq!(table["drain-batch"].as_integer(), Some(1000));
    assert_eq!(table["drain-interval"].as_integer(), Some(4));
    assert_eq!(table["local-storage-shared"].as_bool(), Some(false));
    // A role that does not exist is refused, from a flag or the file.
    for args in [
        vec!["--node-role", "both", "config", "print"],
        vec!["--drain-batch", "0", "config", "print"],
    ] {
        let out = server(dir.path()).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
    }
    std::fs::write(&file, "node-role = \"both\"\n").unwrap();
    let out = server(dir.path())
        .args(["--config", file.to_str().unwrap(), "config", "print"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("both"));
}

#[test]
fn logs_are_plain_or_json_and_never_show_a_query() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let (api, device) = (free_port(), free_port());
        let log_path = dir.path().join("server.log");
        let mut child = server(dir.path())
            .args(["--api-addr", &format!("127.0.0.1:{api}")])
            .args(["--device-addr", &format!("127.0.0.1:{device}")])
            .args(["--log-format", format])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        wait_healthy(&mut child, api);
        assert!(http_get(api, "/ready?token=query-secret-123").starts_with("HTTP/1.1 200"));
        assert!(http_get(api, "/api/users/me").starts_with("HTTP/1.1 401"));
        terminate(child);

        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            !log.contains('\u{1b}'),
            "{format}: colour codes in a file:\n{log}"
        );
        assert!(!log.contains("query-secret-123"), "{log}");
        assert!(log.contains("nerveshub-server listening"), "{log}");
        let lines: Vec<&str> = log.lines().collect();
        if format == "json" {
            let mut saw_ready = false;
            for line in &lines {
                let value: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(value["level"].is_string() && value["timestamp"].is_string());
                if value["span"]["path"] == "/ready" && value["fields"]["status"] == 200 {
                    assert!(
                        value["span"]["request_id"]
                            .as_str()
                            .is_some_and(|id| !id.is_empty())
                    );
                    assert!(value["fields"]["latency_ms"].is_number());
                    saw_ready = true;
                }
            }
            assert!(saw_ready, "no access-log line for /ready:\n{log}");
        } else {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("path=/ready") && l.contains("status=200")),
                "{log}"
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("path=/api/users/me") && l.contains("status=401")),
                "{log}"
            );
        }

        // The admin's password, reset offline on the same data directory.
        if format == "text" {
            let out = run(server(dir.path()).args(["admin", "reset-password", "admin@localhost"]));
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(
                text.starts_with("New password for admin@localhost"),
                "{text}"
            );
            let out = server(dir.path())
                .args(["admin", "reset-password", "nobody@example.com"])
                .output()
                .unwrap();
            assert!(!out.status.success());
        }
    }
}
