//! The V3 serializer's MessagePack, mapped to and from JSON values.
//!
//! Decoding uses `rmpv` with a depth bound. Values with no JSON equivalent are mapped as the
//! JSON serializer would have sent them: timestamps (extension -1) become ISO-8601 strings,
//! binaries become strings when they are UTF-8 (Msgpax sends Elixir binaries as `str` anyway)
//! and arrays of byte values otherwise, scalar non-string map keys become their JSON text (array
//! and map keys are refused: their text would grow exponentially with nesting). Other
//! extension types and non-finite floats are refused.

use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

use crate::error::{Error, MsgPackError, Result};

/// rmpv counts a level for the value and one for its contents, so this is about 64 levels.
const MAX_DEPTH: usize = 128;

pub(crate) fn decode(bytes: &[u8]) -> Result<Value> {
    let mut rd = bytes;
    let mp = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| Error::MsgPack(MsgPackError::Decode(e)))?;
    if !rd.is_empty() {
        return Err(Error::MsgPack(MsgPackError::TrailingBytes(rd.len())));
    }
    to_json(mp)
}

fn to_json(mp: Mp) -> Result<Value> {
    Ok(match mp {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => {
            if let Some(u) = i.as_u64() {
                Value::Number(u.into())
            } else if let Some(s) = i.as_i64() {
                Value::Number(s.into())
            } else {
                return Err(Error::MsgPack(MsgPackError::IntegerOutOfRange));
            }
        }
        Mp::F32(f) => float(f64::from(f))?,
        Mp::F64(f) => float(f)?,
        Mp::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => return Err(Error::MsgPack(MsgPackError::StringNotUtf8)),
        },
        Mp::Binary(b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s),
            Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::from).collect()),
        },
        Mp::Array(items) => Value::Array(items.into_iter().map(to_json).collect::<Result<_>>()?),
        Mp::Map(pairs) => {
            let mut obj = Map::new();
            for (k, v) in pairs {
                let key = match k {
                    Mp::String(s) => s
                        .into_str()
                        .ok_or(Error::MsgPack(MsgPackError::KeyNotUtf8))?,
                    // A scalar key becomes its JSON text. A container key is refused: its text
                    // would hold its own keys' text escaped again, which doubles with every
                    // level of nesting (32 levels of maps-as-keys would be gigabytes).
                    Mp::Array(_) | Mp::Map(_) => {
                        return Err(Error::MsgPack(MsgPackError::ContainerKey));
                    }
                    other => to_json(other)?.to_string(),
                };
                obj.insert(key, to_json(v)?);
            }
            Value::Object(obj)
        }
        Mp::Ext(-1, data) => Value::String(timestamp(&data)?),
        Mp::Ext(ty, _) => return Err(Error::MsgPack(MsgPackError::UnsupportedExtension(ty))),
    })
}

fn float(f: f64) -> Result<Value> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or(Error::MsgPack(MsgPackError::NonFiniteFloat))
}

/// Formats a MessagePack timestamp (extension -1) as an RFC 3339 UTC string.
fn timestamp(data: &[u8]) -> Result<String> {
    let bad = || Error::MsgPack(MsgPackError::InvalidTimestamp);
    let (secs, nanos): (i64, u32) = match data.len() {
        4 => {
            let b: [u8; 4] = data.try_into().map_err(|_| bad())?;
            (i64::from(u32::from_be_bytes(b)), 0)
        }
        8 => {
            let b: [u8; 8] = data.try_into().map_err(|_| bad())?;
            let v = u64::from_be_bytes(b);
            let nanos = u32::try_from(v >> 34).map_err(|_| bad())?;
            let secs = i64::try_from(v & 0x3_ffff_ffff).map_err(|_| bad())?;
            (secs, nanos)
        }
        12 => {
            let n: [u8; 4] = data
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)?;
            let s: [u8; 8] = data
                .get(4..)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)?;
            (i64::from_be_bytes(s), u32::from_be_bytes(n))
        }
        _ => return Err(bad()),
    };
    if nanos >= 1_000_000_000 {
        return Err(bad());
    }
    // Years 0000..=9999 only: 0000-01-01 is -62167219200, 10000-01-01 is 253402300800.
    if !(-62_167_219_200..253_402_300_800).contains(&secs) {
        return Err(bad());
    }
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let frac = if nanos == 0 {
        String::new()
    } else if nanos % 1000 == 0 {
        format!(".{:06}", nanos / 1000)
    } else {
        format!(".{nanos:09}")
    };
    Ok(format!(
        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{frac}Z"
    ))
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Encodes a JSON value as MessagePack (always succeeds; strings as `str`, integers in the
/// smallest form, other numbers as float64).
pub(crate) fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value);
    out
}

fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_uint(out, u);
            } else if let Some(i) = n.as_i64() {
                write_int(out, i);
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
            }
        }
        Value::String(s) => {
            write_len(out, s.len(), 0xa0, 31, [0xd9, 0xda, 0xdb]);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            write_len(out, items.len(), 0x90, 15, [0, 0xdc, 0xdd]);
            for item in items {
                write(out, item);
            }
        }
        Value::Object(obj) => {
            write_len(out, obj.len(), 0x80, 15, [0, 0xde, 0xdf]);
            for (k, v) in obj {
                write_len(out, k.len(), 0xa0, 31, [0xd9, 0xda, 0xdb]);
                out.extend_from_slice(k.as_bytes());
                write(out, v);
            }
        }
    }
}

/// Writes a length header: the fix form up to `fix_max`, then 8-bit (if `markers[0]` is not
/// 0), 16-bit and 32-bit forms. Lengths beyond u32 cannot occur for bounded frames; they are
/// clamped (the decoder then rejects the frame).
fn write_len(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, markers: [u8; 3]) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if markers[0] != 0 && len <= 0xff {
        out.push(markers[0]);
        out.push(len as u8);
    } else if len <= 0xffff {
        out.push(markers[1]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(markers[2]);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}

fn write_uint(out: &mut Vec<u8>, u: u64) {
    if u < 0x80 {
        out.push(u as u8);
    } else if u <= 0xff {
        out.extend_from_slice(&[0xcc, u as u8]);
    } else if u <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(u as u16).to_be_bytes());
    } else if u <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(u as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&u.to_be_bytes());
    }
}

fn write_int(out: &mut Vec<u8>, i: i64) {
    if i >= 0 {
        write_uint(out, i as u64);
    } else if i >= -32 {
        out.push(i as u8);
    } else if i >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, i as u8]);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `proto_frame` fuzz target: maps nested as keys of maps. Converting each key
    /// to JSON text escaped the inner keys again at every level, so 32 levels asked for 2 GiB.
    #[test]
    fn container_map_keys_are_refused_not_expanded() {
        let mut bytes = vec![0x81u8; 40]; // 40 levels of one-pair maps, each the next one's key
        bytes.extend([0xa1, b'k', 0xc0]); // the innermost pair: "k" => nil
        bytes.extend(std::iter::repeat_n(0xc0, 39)); // the other levels' values: nil
        match decode(&bytes) {
            Err(Error::MsgPack(MsgPackError::ContainerKey)) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Scalar keys still become their JSON text.
        let value = decode(&[0x82, 0x01, 0xc3, 0xc2, 0xa1, b'x']).unwrap();
        assert_eq!(value, serde_json::json!({"1": true, "false": "x"}));
        // An array as a key too.
        assert!(decode(&[0x81, 0x91, 0x01, 0xc0]).is_err());
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(
            timestamp(&0u32.to_be_bytes()).unwrap(),
            "1970-01-01T00:00:00Z"
        );
        let mut b = Vec::new();
        b.extend_from_slice(&123_456_000u32.to_be_bytes());
        b.extend_from_slice(&1_787_120_842i64.to_be_bytes());
        assert_eq!(timestamp(&b).unwrap(), "2026-08-19T06:27:22.123456Z");
        let v: u64 = (5u64 << 34) | 1;
        assert_eq!(
            timestamp(&v.to_be_bytes()).unwrap(),
            "1970-01-01T00:00:01.000000005Z"
        );
        assert!(timestamp(&[0; 3]).is_err());
    }

    #[test]
    fn encodes_like_the_reference() {
        let v: Value = serde_json::json!([null, "1", "phoenix", "heartbeat", {}]);
        let mut expected = Vec::new();
        rmpv::encode::write_value(
            &mut expected,
            &Mp::Array(vec![
                Mp::Nil,
                Mp::from("1"),
                Mp::from("phoenix"),
                Mp::from("heartbeat"),
                Mp::Map(vec![]),
            ]),
        )
        .unwrap();
        assert_eq!(encode(&v), expected);
        assert_eq!(decode(&expected).unwrap(), v);
    }
}
