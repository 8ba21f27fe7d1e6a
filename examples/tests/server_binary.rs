//! The `nerveshub-server` binary on its embedded defaults: it starts in an empty directory,
//! prints the first admin once, answers the API with that token, reuses its data on a second
//! start, and exits 0 on SIGTERM.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &std::path::Path, api: u16, device: u16) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nerveshub-server"))
        .current_dir(dir)
        .env_remove("NERVESHUB_DATABASE_URL")
        .env_remove("NERVESHUB_DATA_DIR")
        .env("NERVESHUB_API_ADDR", format!("127.0.0.1:{api}"))
        .args(["--device-addr", &format!("127.0.0.1:{device}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server exited early: {lines:?}"
        );
        let done = line.starts_with("Management API:");
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, lines)
}

fn get(port: u16, path: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: token {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runs_on_embedded_defaults_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (api, device) = (free_port(), free_port());
    let (child, lines) = start(dir.path(), api, device);
    let token_line = lines
        .iter()
        .find(|l| l.trim_start().starts_with("token:"))
        .expect("token printed");
    let token = token_line.split_whitespace().last().unwrap().to_owned();
    assert!(token.starts_with("nhu_"));
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with("password:"))
    );
    let data = dir.path().join("nerveshub-data");
    assert_eq!(
        std::fs::read_to_string(data.join("admin-token")).unwrap(),
        format!("{token}\n")
    );
    assert!(data.join("nerveshub.db").exists());
    for file in ["ca.pem", "server.pem", "server-key.pem"] {
        assert!(data.join("tls").join(file).exists(), "{file}");
    }
    let me = get(api, "/api/users/me", &token);
    assert!(me.starts_with("HTTP/1.1 200"), "{me}");
    assert!(me.contains(r#""email":"admin@localhost""#), "{me}");
    terminate(child);

    // A second start reuses everything and prints no new credentials.
    let (child, lines) = start(dir.path(), api, device);
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("token:") || l.contains("password:")),
        "{lines:?}"
    );
    assert!(get(api, "/api/users/me", &token).starts_with("HTTP/1.1 200"));
    terminate(child);
}
