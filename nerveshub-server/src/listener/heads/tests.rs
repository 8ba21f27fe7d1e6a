use proptest::prelude::*;

use super::*;

/// Feeds `input` in pieces of `piece` bytes, answering each upgrade with `upgraded`, as the
/// connection does; returns what hyper would see and the events.
fn run(input: &[u8], piece: usize, upgraded: bool) -> (Vec<u8>, Vec<Event>) {
    let mut scanner = Scanner::default();
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut held: Vec<u8> = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        held.extend_from_slice(chunk);
        loop {
            if scanner.awaiting_upgrade().is_some() {
                scanner.upgrade_answered(upgraded);
            }
            if let Some(limit) = scanner.direct() {
                let n = held.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
                out.extend(held.drain(..n));
                scanner.passed_direct(n);
                if held.is_empty() {
                    break;
                }
                continue;
            }
            if held.is_empty() {
                break;
            }
            let input = std::mem::take(&mut held);
            let event = scanner.feed(&input, &mut out);
            if event != Event::None {
                events.push(event);
            }
            match event {
                Event::AwaitUpgrade { consumed, .. } => held = input[consumed..].to_vec(),
                Event::Refused { .. } => return (out, events),
                Event::None => break,
            }
        }
    }
    (out, events)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").into_bytes()
}

fn refused(out: &[u8], events: &[Event], index: u64, refusal: Refusal) {
    assert_eq!(
        events.last(),
        Some(&Event::Refused { index, refusal }),
        "{events:?}"
    );
    assert!(out.ends_with(STAND_IN), "{}", String::from_utf8_lossy(out));
}

#[test]
fn kept_alive_requests_with_bodies_pass_untouched() {
    let mut stream = get("/a");
    // A body that looks like a head end must not be taken for one.
    stream.extend_from_slice(b"POST /b HTTP/1.1\r\ncontent-length: 8\r\n\r\n\r\n\r\nxyzw");
    stream.extend_from_slice(
        b"POST /c HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n\
          4;name=value\r\n\r\n\r\n\r\n0\r\ntrailer: x\r\n\r\n",
    );
    stream.extend_from_slice(&get("/d"));
    for piece in [1, 2, 3, 7, 64, stream.len()] {
        let (out, events) = run(&stream, piece, false);
        assert_eq!(out, stream, "piece {piece}");
        assert!(events.is_empty(), "{events:?}");
    }
}

#[test]
fn leading_empty_lines_are_dropped_as_httparse_skips_them() {
    let mut stream = b"\r\n\n".to_vec();
    stream.extend_from_slice(&get("/a"));
    let (out, _) = run(&stream, 1, false);
    assert_eq!(out, get("/a"));
}

#[test]
fn a_long_target_is_refused_before_its_line_ends() {
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(70 * 1024));
    let (out, events) = run(long.as_bytes(), 4096, false);
    refused(&out, &events, 0, Refusal::UriTooLong);
    assert_eq!(out, STAND_IN, "nothing of the long head reaches hyper");
    // Just over the bound, in a complete head.
    let over = get(&format!("/{}", "a".repeat(MAX_URI_LEN)));
    let (out, events) = run(&over, 100, false);
    refused(&out, &events, 0, Refusal::UriTooLong);
    let at = get(&format!("/{}", "a".repeat(MAX_URI_LEN - 1)));
    assert_eq!(run(&at, 100, false).0, at);
}

#[test]
fn big_header_sections_and_many_fields_are_refused() {
    let value = "v".repeat(30 * 1024);
    let big: String = (0..20).map(|i| format!("x-big-{i}: {value}\r\n")).collect();
    let big = format!("GET / HTTP/1.1\r\n{big}\r\n");
    let (out, events) = run(big.as_bytes(), 4096, false);
    refused(&out, &events, 0, Refusal::HeadersTooLarge);

    let many: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    let (out, events) = run(many.as_bytes(), 4096, false);
    refused(&out, &events, 0, Refusal::HeadersTooLarge);

    let at: String = (0..MAX_HEADERS).map(|i| format!("x-h{i}: v\r\n")).collect();
    let at = format!("GET / HTTP/1.1\r\n{at}\r\n");
    assert_eq!(run(at.as_bytes(), 4096, false).0, at.as_bytes());
}

#[test]
fn a_refused_second_request_follows_the_first() {
    let mut stream = b"POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc".to_vec();
    let first = stream.clone();
    stream.extend_from_slice(format!("GET /{} HTTP/1.1\r\n", "a".repeat(70 * 1024)).as_bytes());
    let (out, events) = run(&stream, 1000, false);
    refused(&out, &events, 1, Refusal::UriTooLong);
    assert_eq!(&out[..first.len()], first.as_slice());
}

#[test]
fn malformed_heads_and_framing_are_refused_as_hyper_refuses_them() {
    for head in [
        "GET / HTTP/1.1\r\nbad header\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: +1\r\n\r\n",
        "POST / HTTP/1.1\r\ncontent-length: 99999999999999999999999\r\n\r\n",
    ] {
        let (out, events) = run(head.as_bytes(), 5, false);
        refused(&out, &events, 0, Refusal::Malformed);
    }
    // Equal repeated lengths, and a length after chunked, are what hyper accepts.
    for head in [
        "POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx",
        "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n",
    ] {
        let (out, events) = run(head.as_bytes(), 5, false);
        assert_eq!(out, head.as_bytes());
        assert!(events.is_empty(), "{head}: {events:?}");
    }
}

#[test]
fn a_bad_chunk_line_stops_scanning_and_is_left_to_hyper() {
    let stream = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec();
    let mut tail = stream.clone();
    tail.extend_from_slice(format!("GET /{} HTTP/1.1\r\n", "a".repeat(20_000)).as_bytes());
    let (out, events) = run(&tail, 100, false);
    assert_eq!(out, tail);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn an_upgrade_ends_scanning_and_a_refused_one_resumes_it() {
    let upgrade = b"GET /socket HTTP/1.1\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
    // Frames after the switch may hold anything, a long "request line" included.
    let mut stream = upgrade.to_vec();
    let frames = vec![b'a'; 100_000];
    stream.extend_from_slice(&frames);
    let (out, events) = run(&stream, 4096, true);
    assert_eq!(out, stream);
    assert_eq!(
        events.first(),
        Some(&Event::AwaitUpgrade {
            index: 0,
            consumed: upgrade.len()
        })
    );

    // Without the switch, what follows is a head again.
    let (out, events) = run(&stream, 4096, false);
    refused(&out, &events, 1, Refusal::UriTooLong);

    let mut scanner = Scanner::default();
    let mut out = Vec::new();
    let event = scanner.feed(upgrade, &mut out);
    assert_eq!(
        event,
        Event::AwaitUpgrade {
            index: 0,
            consumed: upgrade.len()
        }
    );
    assert_eq!(
        scanner.feed(b"more", &mut out),
        Event::AwaitUpgrade {
            index: 0,
            consumed: 0
        },
        "nothing is taken while the answer is awaited"
    );
    assert_eq!(scanner.awaiting_upgrade(), Some(0));
}

#[test]
fn connect_waits_for_its_answer() {
    let connect = b"CONNECT example.com:443 HTTP/1.1\r\n\r\n";
    let mut scanner = Scanner::default();
    let mut out = Vec::new();
    assert!(matches!(
        scanner.feed(connect, &mut out),
        Event::AwaitUpgrade { index: 0, .. }
    ));
}

proptest! {
    /// However the stream is cut into reads, hyper sees the same bytes.
    #[test]
    fn pieces_do_not_matter(piece in 1usize..300, bodies in proptest::collection::vec(0usize..600, 1..6)) {
        let mut stream = Vec::new();
        for (i, len) in bodies.iter().enumerate() {
            if i % 2 == 0 {
                stream.extend_from_slice(format!("PUT /{i} HTTP/1.1\r\ncontent-length: {len}\r\n\r\n").as_bytes());
                stream.extend(std::iter::repeat_n(b'\n', *len));
            } else {
                stream.extend_from_slice(format!("PUT /{i} HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n{len:x}\r\n").as_bytes());
                stream.extend(std::iter::repeat_n(b'\r', *len));
                if *len > 0 {
                    stream.extend_from_slice(b"\r\n0\r\n");
                }
                stream.extend_from_slice(b"\r\n");
            }
        }
        let (whole, _) = run(&stream, stream.len(), false);
        let (cut, events) = run(&stream, piece, false);
        prop_assert_eq!(&whole, &stream);
        prop_assert_eq!(&cut, &stream);
        prop_assert!(events.is_empty());
    }
}
