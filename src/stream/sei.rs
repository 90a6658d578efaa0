//! User-data-unregistered SEI messages in H.264 and H.265: how faceveil's per-frame data rides
//! inside the video bitstream itself, so that it survives muxing, remuxing and RTP where tags do
//! not. Works on access units in Annex B (start codes) or length-prefixed (AVC, HEVC) form.

/// The two codecs' NAL headers differ: one byte with a 5-bit type in H.264, two bytes with a
/// 6-bit type in H.265.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// H.264 nal_unit_type of SEI.
const H264_SEI: u8 = 6;
/// H.265 nal_unit_type of prefix and suffix SEI.
const H265_PREFIX_SEI: u8 = 39;
const H265_SUFFIX_SEI: u8 = 40;
/// SEI payloadType of user_data_unregistered (both codecs).
const USER_DATA_UNREGISTERED: usize = 5;

impl Codec {
    fn nal_type(self, nal: &[u8]) -> Option<u8> {
        let first = *nal.first()?;
        Some(match self {
            Self::H264 => first & 0x1f,
            Self::H265 => (first >> 1) & 0x3f,
        })
    }

    /// Slices: 1 to 5 in H.264, 0 to 31 in H.265.
    fn is_vcl(self, nal: &[u8]) -> bool {
        self.nal_type(nal).is_some_and(|t| match self {
            Self::H264 => (1..=5).contains(&t),
            Self::H265 => t <= 31,
        })
    }

    fn is_sei(self, nal: &[u8]) -> bool {
        self.nal_type(nal).is_some_and(|t| match self {
            Self::H264 => t == H264_SEI,
            Self::H265 => t == H265_PREFIX_SEI || t == H265_SUFFIX_SEI,
        })
    }

    /// The NAL header of a SEI: H.265's prefix SEI on layer 0 with temporal id 0.
    fn sei_header(self) -> &'static [u8] {
        match self {
            Self::H264 => &[H264_SEI],
            Self::H265 => &[H265_PREFIX_SEI << 1, 1],
        }
    }
}

/// How NAL units are delimited in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    AnnexB,
    /// Big-endian length prefixes of this many bytes (4 from x264 and h264parse).
    Avc(usize),
}

/// NAL units of one access unit, without their delimiters.
pub fn nal_units(au: &[u8], framing: Framing) -> Vec<&[u8]> {
    let mut out = Vec::new();
    match framing {
        Framing::Avc(n) => {
            let mut pos = 0;
            while pos + n <= au.len() {
                let len = au[pos..pos + n].iter().fold(0usize, |a, b| a << 8 | *b as usize);
                let end = (pos + n + len).min(au.len());
                out.push(&au[pos + n..end]);
                pos = end;
            }
        }
        Framing::AnnexB => {
            let starts: Vec<(usize, usize)> = (0..au.len().saturating_sub(2))
                .filter(|&i| au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1)
                .map(|i| (i, i + 3))
                .collect();
            for (k, &(_, begin)) in starts.iter().enumerate() {
                let mut end = starts.get(k + 1).map_or(au.len(), |s| s.0);
                // A four-byte start code leaves a zero at the end of the previous unit.
                while end > begin && au[end - 1] == 0 && k + 1 < starts.len() {
                    end -= 1;
                }
                out.push(&au[begin..end]);
            }
        }
    }
    out
}

/// The slices (VCL NAL units) of one access unit as coded, each without the zero bytes that may
/// trail it before the next start code: a NAL unit never ends in one, and whether a writer
/// leaves them depends on its framing.
pub fn slices(au: &[u8], framing: Framing, codec: Codec) -> Vec<&[u8]> {
    nal_units(au, framing)
        .into_iter()
        .filter(|unit| codec.is_vcl(unit))
        .map(|unit| &unit[..unit.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)])
        .collect()
}

fn add_emulation_prevention(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + 8);
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

fn remove_emulation_prevention(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// One SEI NAL unit holding a user_data_unregistered message, without delimiter.
pub fn sei_nal(codec: Codec, uuid: &[u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut rbsp = vec![USER_DATA_UNREGISTERED as u8];
    let mut size = uuid.len() + payload.len();
    while size >= 255 {
        rbsp.push(255);
        size -= 255;
    }
    rbsp.push(size as u8);
    rbsp.extend_from_slice(uuid);
    rbsp.extend_from_slice(payload);
    rbsp.push(0x80); // rbsp_trailing_bits
    let mut nal = codec.sei_header().to_vec();
    nal.extend(add_emulation_prevention(&rbsp));
    nal
}

/// The access unit with `nal` inserted before its first slice.
pub fn insert_before_first_slice(au: &[u8], framing: Framing, codec: Codec, nal: &[u8]) -> Vec<u8> {
    insert_before_first(au, framing, nal, |unit| codec.is_vcl(unit))
}

/// The access unit with `nal` inserted before its first SEI with a user_data_unregistered
/// message of `uuid`, or before its first slice where that comes first.
pub fn insert_before_user_data(au: &[u8], framing: Framing, codec: Codec, nal: &[u8], uuid: &[u8; 16]) -> Vec<u8> {
    insert_before_first(au, framing, nal, |unit| codec.is_vcl(unit) || !unit_user_data(unit, codec, uuid).is_empty())
}

/// The access unit with `nal` inserted before its first NAL unit for which `here` holds (at its
/// end where none does).
fn insert_before_first(au: &[u8], framing: Framing, nal: &[u8], here: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(au.len() + nal.len() + 8);
    let write = |out: &mut Vec<u8>, unit: &[u8]| match framing {
        Framing::AnnexB => {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(unit);
        }
        Framing::Avc(n) => {
            out.extend_from_slice(&(unit.len() as u64).to_be_bytes()[8 - n..]);
            out.extend_from_slice(unit);
        }
    };
    let mut inserted = false;
    for unit in nal_units(au, framing) {
        if !inserted && here(unit) {
            write(&mut out, nal);
            inserted = true;
        }
        write(&mut out, unit);
    }
    if !inserted {
        write(&mut out, nal);
    }
    out
}

/// The payloads of user_data_unregistered messages with `uuid` in an access unit.
pub fn find_user_data(au: &[u8], framing: Framing, codec: Codec, uuid: &[u8; 16]) -> Vec<Vec<u8>> {
    nal_units(au, framing).into_iter().flat_map(|unit| unit_user_data(unit, codec, uuid)).collect()
}

/// The payloads of user_data_unregistered messages with `uuid` in the NAL unit `unit`.
fn unit_user_data(unit: &[u8], codec: Codec, uuid: &[u8; 16]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    if !codec.is_sei(unit) {
        return found;
    }
    let rbsp = remove_emulation_prevention(unit.get(codec.sei_header().len()..).unwrap_or_default());
    let mut pos = 0;
    while pos < rbsp.len() && rbsp[pos] != 0x80 {
        let read_var = |pos: &mut usize| {
            let mut v = 0usize;
            while *pos < rbsp.len() && rbsp[*pos] == 255 {
                v += 255;
                *pos += 1;
            }
            let last = rbsp.get(*pos).copied().unwrap_or(0) as usize;
            *pos += 1;
            v + last
        };
        let kind = read_var(&mut pos);
        let size = read_var(&mut pos);
        let Some(body) = rbsp.get(pos..pos + size) else { break };
        if kind == USER_DATA_UNREGISTERED && body.len() >= 16 && body[..16] == uuid[..] {
            found.push(body[16..].to_vec());
        }
        pos += size;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = *b"faceveil-test-v1";

    fn slice_nal() -> Vec<u8> {
        vec![0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01, 0x42]
    }

    #[test]
    fn sei_round_trips_in_both_framings_and_sits_before_the_slice() {
        // Zero runs force emulation prevention; 300 bytes force a multi-byte size.
        let payload: Vec<u8> = (0..300).map(|i| if i % 7 < 3 { 0 } else { i as u8 }).collect();
        let sps = [0x67u8, 0x42, 0x00, 0x1e];
        let annexb: Vec<u8> = [&[0, 0, 0, 1][..], &sps, &[0, 0, 1], &slice_nal()].concat();
        let with = insert_before_first_slice(&annexb, Framing::AnnexB, Codec::H264, &sei_nal(Codec::H264, &UUID, &payload));
        assert_eq!(find_user_data(&with, Framing::AnnexB, Codec::H264, &UUID), vec![payload.clone()]);
        let kinds: Vec<u8> = nal_units(&with, Framing::AnnexB).iter().map(|n| n[0] & 0x1f).collect();
        assert_eq!(kinds, vec![7, 6, 5]);
        assert_eq!(nal_units(&with, Framing::AnnexB)[2], &slice_nal()[..]);

        let avc: Vec<u8> = [&[0, 0, 0, 8][..], &slice_nal()].concat();
        let with = insert_before_first_slice(&avc, Framing::Avc(4), Codec::H264, &sei_nal(Codec::H264, &UUID, &payload));
        assert_eq!(find_user_data(&with, Framing::Avc(4), Codec::H264, &UUID), vec![payload]);
        assert!(find_user_data(&with, Framing::Avc(4), Codec::H264, b"another-uuid-xyz").is_empty());
    }

    #[test]
    fn h265_sei_is_a_prefix_sei_before_the_first_slice() {
        let payload = b"{\"record\":{}}".to_vec();
        // VPS (32), SPS (33), PPS (34), then an IDR_W_RADL slice (19).
        let params: Vec<Vec<u8>> = [32u8, 33, 34].iter().map(|t| vec![t << 1, 1, 0x0c, 0x01]).collect();
        let idr = vec![19u8 << 1, 1, 0xaf, 0x00, 0x00, 0x03, 0x01];
        let au: Vec<u8> = params.iter().chain([&idr]).flat_map(|n| [&[0u8, 0, 0, 1][..], n].concat()).collect();
        let with = insert_before_first_slice(&au, Framing::AnnexB, Codec::H265, &sei_nal(Codec::H265, &UUID, &payload));
        let kinds: Vec<u8> = nal_units(&with, Framing::AnnexB).iter().map(|n| (n[0] >> 1) & 0x3f).collect();
        assert_eq!(kinds, vec![32, 33, 34, 39, 19]);
        assert_eq!(find_user_data(&with, Framing::AnnexB, Codec::H265, &UUID), vec![payload.clone()]);
        // Read as H.264, the same bytes hold no SEI of ours: the codec decides.
        assert!(find_user_data(&with, Framing::AnnexB, Codec::H264, &UUID).is_empty());
    }

    #[test]
    fn a_unit_put_before_a_message_goes_before_its_sei_or_else_before_the_slice() {
        let sps = [0x67u8, 0x42, 0x00, 0x1e];
        let other = sei_nal(Codec::H264, b"faceveil-other-1", b"x");
        let ours = sei_nal(Codec::H264, &UUID, b"record");
        let au = |units: &[&[u8]]| -> Vec<u8> { units.iter().flat_map(|u| [&[0, 0, 0, 1][..], u].concat()).collect() };
        let with = au(&[&sps, &ours, &slice_nal()]);
        let put = insert_before_user_data(&with, Framing::AnnexB, Codec::H264, &other, &UUID);
        assert_eq!(put, au(&[&sps, &other, &ours, &slice_nal()]), "before the message's SEI");
        let without = au(&[&sps, &slice_nal()]);
        let put = insert_before_user_data(&without, Framing::AnnexB, Codec::H264, &other, &UUID);
        assert_eq!(put, au(&[&sps, &other, &slice_nal()]), "else before the slice");
    }
}
