//! Checking a download against the `update` message's SHA-256 (`checksum`, upper-case hex)
//! and per-MiB `partials_checksums`, as the bytes stream past.

use sha2::{Digest, Sha256};

/// The size of one part of `partials_checksums` (NervesHub's chunk size).
pub(crate) const PART_SIZE: u64 = 1024 * 1024;

/// Parses hex SHA-256 (any case).
pub(crate) fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Upper-case hex, as NervesHub writes checksums.
pub(crate) fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Hashes a stream and checks it.
#[derive(Debug, Clone)]
pub(crate) struct StreamCheck {
    whole: Sha256,
    part: Sha256,
    part_len: u64,
    part_index: usize,
    total: u64,
    expected: Option<[u8; 32]>,
    partials: Vec<[u8; 32]>,
}

impl StreamCheck {
    /// A check against `checksum` and `partials` (unparseable values are an error).
    pub(crate) fn new(checksum: Option<&str>, partials: Option<&[String]>) -> Result<Self, String> {
        let expected = checksum
            .map(|c| parse_sha256(c).ok_or_else(|| format!("invalid checksum {c:?}")))
            .transpose()?;
        let partials = partials
            .unwrap_or_default()
            .iter()
            .map(|c| parse_sha256(c).ok_or_else(|| format!("invalid partial checksum {c:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StreamCheck {
            whole: Sha256::new(),
            part: Sha256::new(),
            part_len: 0,
            part_index: 0,
            total: 0,
            expected,
            partials,
        })
    }

    /// Bytes downloaded so far.
    #[cfg(any(test, feature = "fwup-process"))]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Adds data; fails as soon as a complete part does not match its checksum.
    pub(crate) fn update(&mut self, mut data: &[u8]) -> Result<(), String> {
        self.whole.update(data);
        self.total += data.len() as u64;
        while !data.is_empty() {
            let room = usize::try_from(PART_SIZE - self.part_len).unwrap_or(usize::MAX);
            let n = room.min(data.len());
            self.part.update(&data[..n]);
            self.part_len += n as u64;
            data = &data[n..];
            if self.part_len == PART_SIZE {
                self.finish_part()?;
            }
        }
        Ok(())
    }

    fn finish_part(&mut self) -> Result<(), String> {
        let digest: [u8; 32] = std::mem::take(&mut self.part).finalize().into();
        let index = self.part_index;
        self.part_index += 1;
        self.part_len = 0;
        match self.partials.get(index) {
            Some(expected) if *expected != digest => Err(format!(
                "checksum mismatch in part {index}: expected {}, got {}",
                upper_hex(expected),
                upper_hex(&digest)
            )),
            _ => Ok(()),
        }
    }

    /// At the end of the stream: the last part and the whole-file checksum.
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        if self.part_len > 0 {
            self.finish_part()?;
        }
        if !self.partials.is_empty() && self.part_index != self.partials.len() {
            return Err(format!(
                "download has {} parts, partials_checksums lists {}",
                self.part_index,
                self.partials.len()
            ));
        }
        let digest: [u8; 32] = std::mem::take(&mut self.whole).finalize().into();
        match self.expected {
            Some(expected) if expected != digest => Err(format!(
                "checksum mismatch: expected {}, got {}",
                upper_hex(&expected),
                upper_hex(&digest)
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        upper_hex(&Sha256::digest(data))
    }

    #[test]
    fn whole_and_partial_checksums() {
        let data: Vec<u8> = (0..(PART_SIZE as usize * 2 + 10))
            .map(|i| i as u8)
            .collect();
        let parts: Vec<String> = data.chunks(PART_SIZE as usize).map(sha).collect();
        let mut ok = StreamCheck::new(Some(&sha(&data).to_lowercase()), Some(&parts)).unwrap();
        for c in data.chunks(70_000) {
            ok.update(c).unwrap();
        }
        ok.finish().unwrap();
        assert_eq!(ok.total(), data.len() as u64);

        let mut bad = data.clone();
        bad[5] ^= 1;
        let mut check = StreamCheck::new(Some(&sha(&data)), Some(&parts)).unwrap();
        let err = bad
            .chunks(70_000)
            .try_for_each(|c| check.update(c))
            .unwrap_err();
        assert!(err.contains("part 0"), "{err}");

        let mut whole_only = StreamCheck::new(Some(&sha(&data)), None).unwrap();
        whole_only.update(&bad).unwrap();
        assert!(
            whole_only
                .finish()
                .unwrap_err()
                .starts_with("checksum mismatch")
        );
        assert!(StreamCheck::new(Some("xyz"), None).is_err());
    }
}
