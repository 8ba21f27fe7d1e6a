//! Throughput check (ignored by default; run in release):
//! `cargo test --release -p nerveshub-fwup --lib zip::tests::perf -- --ignored --nocapture`.

use std::io::{Seek, Write};
use std::time::Instant;

use super::builder::{Spec, build};
use crate::zip::ZipStreamReader;

#[test]
#[ignore = "throughput measurement; run in release"]
fn streaming_inflate_throughput() {
    const MIB: usize = 1024 * 1024;
    let mut random = vec![0u8; 256 * MIB];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for chunk in random.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let zeros = vec![0u8; 256 * MIB];
    let specs = [
        Spec::fwup("data/random.img", &random, true),
        Spec::fwup("data/zeros.img", &zeros, true),
    ];
    let archive = build(&specs, false);
    drop((random, zeros));
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&archive).unwrap();
    file.rewind().unwrap();
    drop(archive);

    let start = Instant::now();
    let mut reader = ZipStreamReader::new(&mut file);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    while reader.next_entry().unwrap().is_some() {
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    reader.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "stream reader: {total} bytes in {secs:.3} s = {:.0} MB/s (inflate + CRC-32)",
        total as f64 / secs / 1e6
    );
}
