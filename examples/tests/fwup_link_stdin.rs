//! The device side's own call: nerves_hub_link runs
//! `fwup --framing --exit-handshake --apply --no-unmount -d DEV --task upgrade --public-key B64`
//! with the archive on standard input, framed as the Erlang port sends it (`{packet, 4}`: a
//! 4-byte big-endian length before each chunk, and no empty end packet), and reads framed
//! `PR`/`WN`/`OK`/`ER` packets, then the exit handshake's two raw bytes; it closes stdin only
//! after that. These tests run exactly that command line against `fwup-rs`.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(common::fixtures().join(path)).unwrap()
}

fn gunzip(path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&fixture(path)[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn public_key(name: &str) -> String {
    String::from_utf8(fixture(&format!("keys/{name}.pub")))
        .unwrap()
        .trim()
        .to_owned()
}

/// Starts fwup-rs as nerves_hub_link starts fwup.
fn spawn_like_the_link(device: &Path, key: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .args([
            "--framing",
            "--exit-handshake",
            "--apply",
            "--no-unmount",
            "-d",
        ])
        .arg(device)
        .args(["--task", "upgrade", "--public-key", key])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One framed packet from fwup: type, code, text.
type Packet = ([u8; 2], u16, Vec<u8>);

/// Reads packets until `OK` or `ER`, then the two handshake bytes, as the Erlang side does.
fn read_until_handshake(stdout: &mut impl Read) -> (Vec<Packet>, [u8; 2]) {
    let mut packets = Vec::new();
    loop {
        let mut len = [0u8; 4];
        stdout.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stdout.read_exact(&mut body).unwrap();
        let kind = [body[0], body[1]];
        let code = u16::from_be_bytes([body[2], body[3]]);
        packets.push((kind, code, body[4..].to_vec()));
        if &kind == b"OK" || &kind == b"ER" {
            break;
        }
    }
    let mut handshake = [0u8; 2];
    stdout.read_exact(&mut handshake).unwrap();
    (packets, handshake)
}

/// Sends the archive in `{packet, 4}` frames of uneven sizes, without an end packet, keeps
/// stdin open until the handshake was read, checks fwup-rs is still waiting for stdin to
/// close, then closes it. Returns the packets, the handshake and the exit status.
fn run_like_the_link(device: &Path, key: &str, archive: &[u8]) -> (Vec<Packet>, [u8; 2], i32) {
    let mut child = spawn_like_the_link(device, key);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let data = archive.to_vec();
    // The writer runs beside the reader: fwup-rs may answer (ER) before taking all input.
    let writer = std::thread::spawn(move || {
        let sizes = [1usize, 7, 4096, 65_536, 999, 16_384];
        let mut rest = &data[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            let mut frame = (n as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&rest[..n]);
            if stdin.write_all(&frame).is_err() {
                break;
            }
            rest = &rest[n..];
            i += 1;
        }
        stdin
    });
    let (packets, handshake) = read_until_handshake(&mut stdout);
    let stdin = writer.join().unwrap();
    // Still running: the handshake waits for the controller to close stdin.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "fwup-rs exited before stdin was closed"
    );
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "fwup-rs did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "bytes after the handshake: {rest:?}");
    (packets, handshake, status.code().unwrap())
}

#[test]
fn the_links_own_command_line_applies_a_signed_upgrade_from_framed_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("mmcblk0.img");
    // A device whose slot a is active (C fwup's own "complete" result) …
    std::fs::write(&device, gunzip("images/ab--step1-complete.img.gz")).unwrap();
    let archive = fixture("fw/ab-signed.fw");

    let (packets, handshake, code) = run_like_the_link(&device, &public_key("fwup-key"), &archive);

    // … gets slot b, byte for byte as C fwup 1.16 wrote it.
    let image = std::fs::read(&device).unwrap();
    let want = gunzip("images/ab--step2-upgrade.img.gz");
    assert_eq!(image.len(), want.len());
    assert!(sha2::Sha256::digest(&image) == sha2::Sha256::digest(&want));

    let progress: Vec<u16> = packets
        .iter()
        .filter(|(k, _, _)| k == b"PR")
        .map(|(_, c, _)| *c)
        .collect();
    assert_eq!(progress.first(), Some(&0));
    assert_eq!(progress.last(), Some(&100));
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert!(packets.iter().all(|(k, _, t)| k != b"PR" || t.is_empty()));
    let others: Vec<(&[u8; 2], u16, &[u8])> = packets
        .iter()
        .filter(|(k, _, _)| k != b"PR")
        .map(|(k, c, t)| (k, *c, &t[..]))
        .collect();
    assert_eq!(
        others,
        [(b"WN", 0, &b"upgrade.b selected"[..]), (b"OK", 0, &b""[..])]
    );
    assert_eq!(handshake, [0x1a, 0]);
    assert_eq!(code, 0);
}

#[test]
fn a_wrong_key_answers_er_and_exit_status_one_in_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("mmcblk0.img");
    let before = gunzip("images/ab--step1-complete.img.gz");
    std::fs::write(&device, &before).unwrap();

    let (packets, handshake, code) = run_like_the_link(
        &device,
        &public_key("other-key"),
        &fixture("fw/ab-signed.fw"),
    );

    let last = packets.last().unwrap();
    assert_eq!(&last.0, b"ER");
    assert_eq!(
        String::from_utf8_lossy(&last.2),
        "Firmware archive's meta.conf fails digital signature verification."
    );
    assert_eq!(handshake, [0x1a, 1]);
    assert_eq!(code, 1);
    assert_eq!(std::fs::read(&device).unwrap(), before, "nothing written");
}

#[test]
fn an_unsigned_archive_is_refused_when_a_key_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let device = dir.path().join("mmcblk0.img");
    std::fs::write(&device, gunzip("images/ab--step1-complete.img.gz")).unwrap();
    let (packets, handshake, code) =
        run_like_the_link(&device, &public_key("fwup-key"), &fixture("fw/ab.fw"));
    let last = packets.last().unwrap();
    assert_eq!(&last.0, b"ER");
    assert_eq!(
        String::from_utf8_lossy(&last.2),
        "Expecting signed firmware archive."
    );
    assert_eq!((handshake, code), ([0x1a, 1], 1));
}

/// Unframed standard input: `-i -`, and no `-i` at all.
#[test]
fn plain_stdin_with_dash_or_without_i() {
    let archive = fixture("fw/ab.fw");
    let want = gunzip("images/ab--step1-complete.img.gz");
    for input in [&["-i", "-"][..], &[][..]] {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("out.img");
        let mut child = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .args(["-a", "-q", "-t", "complete", "-d"])
            .arg(&device)
            .args(input)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&archive).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{input:?}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "fwup: ab complete: wrote slot a\n"
        );
        assert!(std::fs::read(&device).unwrap() == want, "{input:?}");
    }

    // -V without -i reads standard input too.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .arg("-V")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "Valid archive without a signature\n"
    );
}

/// Easy mode: a lone file name means `-a -i FILE -t complete` on the card found; with no
/// card (a build machine) fwup's message, and nothing else happens.
#[test]
fn easy_mode_and_cli_messages() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .args(args)
            .current_dir(common::fixtures())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let output = run(&["fw/ab.fw"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    if crate_has_no_cards() {
        assert_eq!(
            text,
            "fwup: No memory cards found. Try reinserting the card.\n"
        );
    } else {
        // A card is attached: without -y and with stdin closed the answer is "no".
        assert_eq!(text, "fwup: aborted by user\n");
    }

    let output = run(&["fw/ab.fw", "extra"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fwup: unexpected parameter: fw/ab.fw\n"
    );
    let output = run(&["-q"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fwup: specify one of -a, -c, -l, -m, -S, -V, or -z\n"
    );
    let output = run(&["-a", "-q", "-n", "-t", "x", "-d", "/dev/null"]);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fwup: pick either -n or -q, but not both\n"
    );
    for (args, code) in [(&["-?"][..], 1), (&["-h"][..], 0), (&[][..], 1)] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        let usage = String::from_utf8_lossy(&output.stdout);
        for option in [
            "--apply",
            "--create",
            "--detect",
            "--framing",
            "--gen-keys",
            "--list",
            "--metadata",
            "--sign",
            "--verify",
            "--exit-handshake",
            "--public-key",
        ] {
            assert!(usage.contains(option), "{args:?}: usage lacks {option}");
        }
    }
    let output = run(&["--version"]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1.16.0\n");
}

fn crate_has_no_cards() -> bool {
    let output = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .arg("-D")
        .output()
        .unwrap();
    output.stdout.is_empty()
}

/// `--minimize-writes` reads first and skips what is already there: applying the same
/// archive again over its own result writes nothing (the file's mtime stays put), while
/// without it the file is written. `--verify-writes` reads every write back.
#[test]
fn minimize_and_verify_writes() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("out.img");
    let archive = common::fixtures().join("fw/ab.fw");
    let apply = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
            .args(["-a", "-q", "-t", "complete", "-d"])
            .arg(&image)
            .arg("-i")
            .arg(&archive)
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{extra:?}: {output:?}");
    };
    apply(&["--verify-writes"]);
    assert!(std::fs::read(&image).unwrap() == gunzip("images/ab--step1-complete.img.gz"));

    let past = SystemTime::now() - Duration::from_secs(3600);
    let set_old = || {
        std::fs::File::options()
            .write(true)
            .open(&image)
            .unwrap()
            .set_modified(past)
            .unwrap();
    };
    let mtime = || std::fs::metadata(&image).unwrap().modified().unwrap();
    set_old();
    apply(&["--minimize-writes", "--verify-writes"]);
    assert_eq!(mtime(), past, "an unchanged image was written to");
    apply(&["--minimize-writes", "--no-minimize-writes"]);
    assert_ne!(
        mtime(),
        past,
        "without --minimize-writes the image is written"
    );
    assert!(std::fs::read(&image).unwrap() == gunzip("images/ab--step1-complete.img.gz"));
}

/// A real block device (a loop device) as destination: verify-writes is on by default for
/// devices. Needs root and loop devices; says so and skips otherwise.
#[test]
fn apply_to_a_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("disk.img");
    std::fs::write(&backing, vec![0u8; 2 << 20]).unwrap();
    let attach = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output();
    let device = match attach {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        other => {
            nerveshub_test_support::skip_or_fail(format!("no loop device available ({other:?})"));
            return;
        }
    };
    let output = Command::new(env!("CARGO_BIN_EXE_fwup-rs"))
        .args(["-a", "-q", "-U", "-t", "complete", "-d", &device, "-i"])
        .arg(common::fixtures().join("fw/ab.fw"))
        .output()
        .unwrap();
    let _ = Command::new("losetup").args(["-d", &device]).status();
    assert!(output.status.success(), "{output:?}");
    // A device keeps its size; the image's bytes are C fwup's up to its length.
    let want = gunzip("images/ab--step1-complete.img.gz");
    let got = std::fs::read(&backing).unwrap();
    assert_eq!(got.len(), 2 << 20);
    assert!(got[..want.len()] == want[..]);
}
