//! The header's addons: `addons_len(1) | protobuf Addons`, where
//! `message Addons { string Flow = 1; bytes Seed = 2; }`.
//!
//! Only the flow matters (Xray never sends a seed). Decoding still accepts any
//! well-formed protobuf, as Go's decoder does: fields of the wrong wire type
//! or unknown number are skipped, a repeated flow's last value wins.

use super::VlessError;

/// The length field is one byte, which caps what a peer can make us read.
pub(super) const MAX_ADDONS_LEN: usize = u8::MAX as usize;

/// Tag byte of field 1 (Flow) with wire type LEN.
const FLOW_TAG: u8 = 0x0a;
const FLOW_FIELD: u64 = 1;
/// Protobuf field numbers are 29 bits; 0 is reserved.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_START_GROUP: u64 = 3;
const WIRE_END_GROUP: u64 = 4;
const WIRE_I32: u64 = 5;

fn bad(what: &'static str) -> VlessError {
    VlessError::BadAddons(what)
}

/// Length of the protobuf for `flow`. An empty flow is proto3's default
/// value, so it is not written at all.
fn body_len(flow: Option<&str>) -> usize {
    match flow {
        Some(f) if !f.is_empty() => 1 + varint_len(f.len() as u64) + f.len(),
        _ => 0,
    }
}

/// Refuses a flow whose addons would not fit the length byte.
pub(super) fn validate(flow: Option<&str>) -> Result<(), VlessError> {
    if body_len(flow) > MAX_ADDONS_LEN {
        return Err(VlessError::AddonsTooLong);
    }
    Ok(())
}

/// Writes `addons_len | addons`; [`validate`] must have passed. For
/// `xtls-rprx-vision` this is Xray's `12 0a 10 "xtls-rprx-vision"`.
pub(super) fn encode(flow: Option<&str>, out: &mut Vec<u8>) {
    // validate() bounds this to one byte.
    out.push(body_len(flow) as u8);
    if let Some(f) = flow.filter(|f| !f.is_empty()) {
        out.push(FLOW_TAG);
        write_varint(f.len() as u64, out);
        out.extend_from_slice(f.as_bytes());
    }
}

/// Parses the addons bytes (without their length byte) into the flow; an
/// absent or empty flow is `None`.
pub(super) fn decode(mut rest: &[u8]) -> Result<Option<String>, VlessError> {
    let mut flow = None;
    // Field numbers of the groups we are inside; their contents are unknown
    // fields, never the top-level flow.
    let mut open_groups = Vec::new();
    while !rest.is_empty() {
        let key = read_varint(&mut rest)?;
        let field = key >> 3;
        if field == 0 || field > MAX_FIELD_NUMBER {
            return Err(bad("invalid field number"));
        }
        match key & 7 {
            WIRE_VARINT => {
                read_varint(&mut rest)?;
            }
            WIRE_I64 => {
                take(&mut rest, 8)?;
            }
            WIRE_I32 => {
                take(&mut rest, 4)?;
            }
            WIRE_LEN => {
                let len = read_varint(&mut rest)?;
                let value = take(&mut rest, len)?;
                if field == FLOW_FIELD && open_groups.is_empty() {
                    // Go refuses a proto3 string that is not UTF-8.
                    let text = std::str::from_utf8(value).map_err(|_| bad("flow is not UTF-8"))?;
                    flow = Some(text);
                }
            }
            WIRE_START_GROUP => open_groups.push(field),
            WIRE_END_GROUP => {
                if open_groups.pop() != Some(field) {
                    return Err(bad("unmatched end of group"));
                }
            }
            _ => return Err(bad("invalid wire type")),
        }
    }
    if !open_groups.is_empty() {
        return Err(bad("unterminated group"));
    }
    Ok(flow.filter(|f| !f.is_empty()).map(str::to_owned))
}

fn take<'a>(rest: &mut &'a [u8], len: u64) -> Result<&'a [u8], VlessError> {
    let len = usize::try_from(len).map_err(|_| bad("length past the end"))?;
    if len > rest.len() {
        return Err(bad("length past the end"));
    }
    let (value, tail) = rest.split_at(len);
    *rest = tail;
    Ok(value)
}

fn read_varint(rest: &mut &[u8]) -> Result<u64, VlessError> {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first().ok_or(bad("truncated varint"))?;
        *rest = tail;
        // The tenth byte may only carry bit 63.
        if shift == 63 && byte > 1 {
            break;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint longer than 64 bits"))
}

fn varint_len(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    const VISION: &str = "xtls-rprx-vision";

    fn encoded(flow: Option<&str>) -> Vec<u8> {
        validate(flow).unwrap();
        let mut out = Vec::new();
        encode(flow, &mut out);
        out
    }

    #[test]
    fn vision_is_written_as_xray_does() {
        let mut want = vec![0x12, 0x0a, 0x10];
        want.extend_from_slice(VISION.as_bytes());
        assert_eq!(encoded(Some(VISION)), want);
    }

    #[test]
    fn no_flow_and_empty_flow_are_a_zero_length() {
        assert_eq!(encoded(None), [0]);
        assert_eq!(encoded(Some("")), [0]);
    }

    #[test]
    fn long_flows_use_multi_byte_lengths_until_the_cap() {
        let flow = "f".repeat(252);
        let out = encoded(Some(&flow));
        assert_eq!(&out[..4], [0xff, 0x0a, 0xfc, 0x01]);
        assert_eq!(decode(&out[1..]), Ok(Some(flow)));
        let too_long = "f".repeat(253);
        assert_eq!(validate(Some(&too_long)), Err(VlessError::AddonsTooLong));
    }

    #[test]
    fn unknown_fields_and_the_seed_are_skipped() {
        let mut body = vec![
            0x08, 0x96, 0x01, // field 1 as a varint: wrong wire type, skipped
            0x12, 0x02, 0xaa, 0xbb, // Seed
            0x19, 1, 2, 3, 4, 5, 6, 7, 8, // field 3, fixed64
            0x25, 1, 2, 3, 4, // field 4, fixed32
            0x2b, 0x0a, 0x01, b'x', 0x2c, // group 5 holding a "flow" of its own
            0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00, // field 2^29-1, varint
        ];
        body.extend_from_slice(&[0x0a, 0x10]);
        body.extend_from_slice(VISION.as_bytes());
        assert_eq!(decode(&body), Ok(Some(VISION.into())));
    }

    #[test]
    fn the_last_flow_wins_and_empty_means_none() {
        assert_eq!(decode(b"\x0a\x01a\x0a\x01b"), Ok(Some("b".into())));
        assert_eq!(decode(b"\x0a\x01a\x0a\x00"), Ok(None));
        assert_eq!(decode(b""), Ok(None));
    }

    #[test]
    fn non_minimal_varints_are_accepted() {
        assert_eq!(decode(b"\x0a\x81\x00z"), Ok(Some("z".into())));
        let max = b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
        assert_eq!(decode(max), Ok(None));
    }

    #[test]
    fn malformed_protobuf_is_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x0a", "truncated varint"),
            (b"\x0a\x05abc", "length past the end"),
            (
                b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                "length past the end",
            ),
            (
                b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",
                "varint longer than 64 bits",
            ),
            (
                b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00",
                "varint longer than 64 bits",
            ),
            (b"\x11\x01\x02", "length past the end"),
            (b"\x15\x01", "length past the end"),
            (b"\x0e", "invalid wire type"),
            (b"\x0f", "invalid wire type"),
            (b"\x02\x00", "invalid field number"),
            (b"\x80\x80\x80\x80\x10\x00", "invalid field number"),
            (b"\x0c", "unmatched end of group"),
            (b"\x0b\x14", "unmatched end of group"),
            (b"\x0b", "unterminated group"),
            (b"\x0a\x02\xc3\x28", "flow is not UTF-8"),
        ];
        for (body, why) in cases {
            assert_eq!(decode(body), Err(bad(why)), "{body:02x?}");
        }
    }

    #[test]
    fn varint_lengths_match_the_writer() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            write_varint(v, &mut out);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut rest = &out[..];
            assert_eq!(read_varint(&mut rest), Ok(v));
            assert!(rest.is_empty());
        }
    }
}
