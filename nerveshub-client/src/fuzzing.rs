//! Entry points for the client's fuzz targets (`fuzz/fuzz_targets/client_*.rs`) and for the
//! stable test that replays their corpus. Not part of the supported API. A broken property is
//! reported as text for the fuzzer's crash report.

/// One packet payload as the `fwup` program writes it on stdout (`OK`/`ER`/`WN`/`PR`, a
/// 16-bit code, text): parsing never panics and a packet's kind is its first two bytes.
#[cfg(feature = "fwup-process")]
pub fn fwup_packet(data: &[u8]) -> Result<(), String> {
    use crate::fwup_process::{Packet, parse_packet};
    if let Some(packet) = parse_packet(data) {
        let expected: &[u8] = match packet {
            Packet::Ok(_) => b"OK",
            Packet::Error(_) => b"ER",
            Packet::Warning(_) => b"WN",
            Packet::Progress(_) => b"PR",
        };
        if data.get(..2) != Some(expected) {
            return Err(format!("{data:?} parsed as {packet:?}"));
        }
    }
    Ok(())
}
