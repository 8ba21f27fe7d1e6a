//! dm-crypt "plain" sector encryption for `raw_write(block, "cipher=…", "secret=…")`, as
//! fwup writes it and as `cryptsetup open --type plain` reads it back: every 512-byte
//! sector on its own, numbered from 0 at the `raw_write` offset.
//!
//! * `aes-cbc-plain`: AES-256-CBC, IV = the sector number as 32-bit little endian, zero
//!   padded (dm-crypt's `plain` IV); a 64-hex-digit key (or base64, as fwup 1.5 took it).
//! * `aes-xts-plain64`: AES-256-XTS (two keys), tweak = the sector number as 64-bit little
//!   endian (`plain64`); a 128-hex-digit key.

use aes::Aes256;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use base64::Engine as _;
use xts_mode::{Xts128, get_tweak_default};

use crate::{ApplyError, Error, Result};

/// dm-crypt's sector size.
pub(crate) const SECTOR: usize = 512;

/// A configured cipher.
pub(crate) enum SectorCipher {
    /// `aes-cbc-plain` with its 256-bit key.
    CbcPlain([u8; 32]),
    /// `aes-xts-plain64`.
    XtsPlain64(Box<Xts128<Aes256>>),
}

impl std::fmt::Debug for SectorCipher {
    // Keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::CbcPlain(_) => "SectorCipher::CbcPlain(..)",
            Self::XtsPlain64(_) => "SectorCipher::XtsPlain64(..)",
        })
    }
}

fn failed(message: impl Into<String>) -> Error {
    Error::Apply(ApplyError::FunctionFailed {
        function: "raw_write".to_owned(),
        message: message.into(),
    })
}

fn hex_key<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let mut key = [0u8; N];
    for (out, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *out = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(key)
}

impl SectorCipher {
    /// Parses fwup's options (`"cipher=…"`, `"secret=…"`, or both in one argument separated
    /// by a comma), with fwup's messages. `Ok(None)` when neither is given.
    pub(crate) fn from_options(args: &[String]) -> Result<Option<Self>> {
        let mut cipher = String::new();
        let mut secret = String::new();
        for arg in args {
            for pair in arg.split(',') {
                let Some((key, value)) = pair.split_once('=') else {
                    return Err(failed(format!("Expecting '=' for in parameter '{pair}'")));
                };
                match key {
                    "cipher" => cipher = value.chars().take(32).collect(),
                    "secret" => secret = value.chars().take(128).collect(),
                    _ => return Err(failed(format!("Unexpected parameter: {pair}"))),
                }
            }
        }
        if cipher.is_empty() != secret.is_empty() {
            return Err(failed(
                "Both a cipher and secret are required if one is supplied",
            ));
        }
        if cipher.is_empty() {
            return Ok(None);
        }
        match cipher.as_str() {
            "aes-cbc-plain" => {
                let key = hex_key::<32>(&secret)
                    .or_else(|| {
                        base64::engine::general_purpose::STANDARD
                            .decode(&secret)
                            .ok()
                            .and_then(|k| <[u8; 32]>::try_from(k).ok())
                    })
                    .ok_or_else(|| failed("aes-cbc-plain requires a hex-encoded 256-bit key"))?;
                Ok(Some(Self::CbcPlain(key)))
            }
            "aes-xts-plain64" => {
                let key = hex_key::<64>(&secret)
                    .ok_or_else(|| failed("aes-xts-plain64 requires a hex-encoded 512-bit key"))?;
                let (k1, k2) = key.split_at(32);
                let c1 = Aes256::new_from_slice(k1).map_err(|_| failed("bad key"))?;
                let c2 = Aes256::new_from_slice(k2).map_err(|_| failed("bad key"))?;
                Ok(Some(Self::XtsPlain64(Box::new(Xts128::new(c1, c2)))))
            }
            other => Err(failed(format!("Unsupported disk encryption: {other}"))),
        }
    }

    /// Encrypts whole sectors in place; `first` is the number of the first one.
    pub(crate) fn encrypt(&self, data: &mut [u8], first: u64) {
        for (i, sector) in data.chunks_exact_mut(SECTOR).enumerate() {
            let lba = first.wrapping_add(i as u64);
            match self {
                Self::CbcPlain(key) => {
                    let mut cbc = cbc::Encryptor::<Aes256>::new(key.into(), &plain_iv(lba).into());
                    let (blocks, _) = aes::Block::slice_as_chunks_mut(sector);
                    cbc.encrypt_blocks(blocks);
                }
                Self::XtsPlain64(xts) => {
                    xts.encrypt_sector(sector, get_tweak_default(u128::from(lba)));
                }
            }
        }
    }

    /// Decrypts whole sectors in place (tests and delta sources).
    pub(crate) fn decrypt(&self, data: &mut [u8], first: u64) {
        for (i, sector) in data.chunks_exact_mut(SECTOR).enumerate() {
            let lba = first.wrapping_add(i as u64);
            match self {
                Self::CbcPlain(key) => {
                    let mut cbc = cbc::Decryptor::<Aes256>::new(key.into(), &plain_iv(lba).into());
                    let (blocks, _) = aes::Block::slice_as_chunks_mut(sector);
                    cbc.decrypt_blocks(blocks);
                }
                Self::XtsPlain64(xts) => {
                    xts.decrypt_sector(sector, get_tweak_default(u128::from(lba)));
                }
            }
        }
    }
}

/// dm-crypt's `plain` IV: the low 32 bits of the sector number, little endian.
fn plain_iv(lba: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    // Truncation is the definition of `plain` (as opposed to `plain64`).
    iv[..4].copy_from_slice(&(lba as u32).to_le_bytes());
    iv
}

#[cfg(test)]
mod tests {
    use super::*;

    const CBC_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn options_parse_as_fwup_parses_them() {
        let opts = |a: &[&str]| {
            SectorCipher::from_options(&a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        };
        assert!(opts(&[]).unwrap().is_none());
        assert!(matches!(
            opts(&["cipher=aes-cbc-plain", &format!("secret={CBC_KEY}")]).unwrap(),
            Some(SectorCipher::CbcPlain(_))
        ));
        assert!(
            opts(&[&format!("cipher=aes-cbc-plain,secret={CBC_KEY}")])
                .unwrap()
                .is_some()
        );
        let err = |a: &[&str]| opts(a).unwrap_err().to_string();
        assert_eq!(
            err(&["cipher=aes-cbc-plain"]),
            "raw_write: Both a cipher and secret are required if one is supplied"
        );
        assert_eq!(
            err(&["cipher=rot13", "secret=00"]),
            "raw_write: Unsupported disk encryption: rot13"
        );
        assert_eq!(
            err(&["cipher=aes-xts-plain64", "secret=00"]),
            "raw_write: aes-xts-plain64 requires a hex-encoded 512-bit key"
        );
        assert_eq!(
            err(&["nonsense"]),
            "raw_write: Expecting '=' for in parameter 'nonsense'"
        );
    }

    #[test]
    fn sectors_round_trip_and_differ_by_number() {
        let xts_key = format!("{CBC_KEY}{}", CBC_KEY.replace('0', "f"));
        for options in [
            vec![
                "cipher=aes-cbc-plain".to_owned(),
                format!("secret={CBC_KEY}"),
            ],
            vec![
                "cipher=aes-xts-plain64".to_owned(),
                format!("secret={xts_key}"),
            ],
        ] {
            let cipher = SectorCipher::from_options(&options).unwrap().unwrap();
            let plain = vec![0x5au8; 2 * SECTOR];
            let mut data = plain.clone();
            cipher.encrypt(&mut data, 7);
            assert_ne!(data, plain);
            assert_ne!(
                data[..SECTOR],
                data[SECTOR..],
                "{options:?}: same text, other sector"
            );
            cipher.decrypt(&mut data, 7);
            assert_eq!(data, plain);
        }
    }

    #[test]
    fn cbc_plain_first_block_is_aes_of_plaintext_xor_iv() {
        use aes::cipher::BlockCipherEncrypt;
        let cipher = SectorCipher::from_options(&[
            "cipher=aes-cbc-plain".to_owned(),
            format!("secret={CBC_KEY}"),
        ])
        .unwrap()
        .unwrap();
        let mut data = vec![0u8; SECTOR];
        cipher.encrypt(&mut data, 3);
        // Block 0 = AES(0 ^ IV(3)).
        let aes = Aes256::new_from_slice(&hex_key::<32>(CBC_KEY).unwrap()).unwrap();
        let mut block = aes::Block::from(plain_iv(3));
        aes.encrypt_block(&mut block);
        assert_eq!(&data[..16], block.as_slice());
    }
}
