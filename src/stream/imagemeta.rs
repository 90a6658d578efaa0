//! faceveil's data inside image files: a PNG tEXt chunk or JPEG COM segments, both ignored by
//! viewers and kept by most tools that do not re-encode.

use anyhow::{Result, bail, ensure};

const KEYWORD: &[u8] = b"faceveil";
/// A JPEG segment holds at most 65,533 bytes, and sealed faces can take more (a photo with two
/// large faces): the text then continues in further COM segments, each marked as a continuation.
const JPEG_FIRST: u8 = b':';
const JPEG_NEXT: u8 = b'+';
/// The text a COM segment holds after its mark (`faceveil:` or `faceveil+`).
const JPEG_PART: usize = u16::MAX as usize - 2 - KEYWORD.len() - 1;
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Returns `bytes` with `text` embedded (replacing any faceveil data already there).
pub fn embed(bytes: &[u8], text: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(PNG_SIGNATURE) {
        embed_png(bytes, text)
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        embed_jpeg(bytes, text)
    } else {
        bail!("faceveil data can be embedded in PNG and JPEG files only")
    }
}

/// The faceveil text embedded in an image file, if any.
pub fn extract(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(PNG_SIGNATURE) {
        png_chunks(bytes).find_map(|(kind, data)| {
            (kind == *b"tEXt" && data.starts_with(KEYWORD) && data.get(KEYWORD.len()) == Some(&0))
                .then(|| String::from_utf8_lossy(&data[KEYWORD.len() + 1..]).into_owned())
        })
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        // The first part, then the continuations that follow it, in order.
        let mut text: Option<Vec<u8>> = None;
        for (mark, part) in jpeg_segments(bytes).filter_map(|(marker, data)| jpeg_part(marker, data)) {
            match (mark, &mut text) {
                (JPEG_FIRST, None) => text = Some(part.to_vec()),
                (JPEG_NEXT, Some(text)) => text.extend_from_slice(part),
                _ => {}
            }
        }
        text.map(|t| String::from_utf8_lossy(&t).into_owned())
    } else {
        None
    }
}

fn png_chunks(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = PNG_SIGNATURE.len();
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(bytes.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let kind: [u8; 4] = bytes.get(pos + 4..pos + 8)?.try_into().ok()?;
        let data = bytes.get(pos + 8..pos + 8 + len)?;
        pos += 12 + len;
        Some((kind, data))
    })
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn embed_png(bytes: &[u8], text: &str) -> Result<Vec<u8>> {
    let mut out = PNG_SIGNATURE.to_vec();
    let mut inserted = false;
    let mut pos = PNG_SIGNATURE.len();
    for (kind, data) in png_chunks(bytes) {
        let chunk = &bytes[pos..pos + 12 + data.len()];
        pos += chunk.len();
        let ours = kind == *b"tEXt" && data.starts_with(KEYWORD) && data.get(KEYWORD.len()) == Some(&0);
        if !ours {
            out.extend_from_slice(chunk);
        }
        if kind == *b"IHDR" && !inserted {
            let mut payload = KEYWORD.to_vec();
            payload.push(0);
            payload.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            let mut typed = b"tEXt".to_vec();
            typed.extend_from_slice(&payload);
            out.extend_from_slice(&typed);
            out.extend_from_slice(&crc32(&typed).to_be_bytes());
            inserted = true;
        }
    }
    ensure!(inserted && pos == bytes.len(), "damaged PNG");
    Ok(out)
}

/// Segments up to the start of scan: (marker, payload without the length field).
fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut pos = 2;
    std::iter::from_fn(move || {
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = u16::from_be_bytes(bytes.get(pos + 2..pos + 4)?.try_into().ok()?) as usize;
        let data = bytes.get(pos + 4..pos + 2 + len)?;
        pos += 2 + len;
        Some((marker, data))
    })
}

/// The mark and text of one of faceveil's COM segments.
fn jpeg_part(marker: u8, data: &[u8]) -> Option<(u8, &[u8])> {
    let mark = *data.get(KEYWORD.len())?;
    (marker == 0xFE && data.starts_with(KEYWORD) && (mark == JPEG_FIRST || mark == JPEG_NEXT))
        .then(|| (mark, &data[KEYWORD.len() + 1..]))
}

fn embed_jpeg(bytes: &[u8], text: &str) -> Result<Vec<u8>> {
    let mut out = vec![0xFF, 0xD8];
    let mut parts: Vec<&[u8]> = text.as_bytes().chunks(JPEG_PART).collect();
    if parts.is_empty() {
        parts.push(&[]);
    }
    for (i, part) in parts.into_iter().enumerate() {
        let mut payload = KEYWORD.to_vec();
        payload.push(if i == 0 { JPEG_FIRST } else { JPEG_NEXT });
        payload.extend_from_slice(part);
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
    }
    // Copy the rest, dropping older faceveil comments.
    let mut pos = 2;
    for (marker, data) in jpeg_segments(bytes) {
        let end = pos + 4 + data.len();
        let ours = jpeg_part(marker, data).is_some();
        if !ours {
            out.extend_from_slice(&bytes[pos..end]);
        }
        pos = end;
    }
    out.extend_from_slice(&bytes[pos..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_reference() {
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn jpeg_comment_round_trips_and_replaces() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x01, 0x02, 0xFF, 0xDA, 0x00, 0x02, 0x55, 0xFF, 0xD9];
        let once = embed(&jpeg, "{\"a\":1}").unwrap();
        assert_eq!(extract(&once).as_deref(), Some("{\"a\":1}"));
        let twice = embed(&once, "{\"b\":2}").unwrap();
        assert_eq!(extract(&twice).as_deref(), Some("{\"b\":2}"));
        assert_eq!(twice.len(), once.len());
        assert!(twice.ends_with(&[0xFF, 0xDA, 0x00, 0x02, 0x55, 0xFF, 0xD9]));
    }

    #[test]
    fn a_text_past_one_jpeg_segment_continues_in_the_next_and_reads_back_whole() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x01, 0x02, 0xFF, 0xDA, 0x00, 0x02, 0x55, 0xFF, 0xD9];
        let text: String = (0..150_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let long = embed(&jpeg, &text).unwrap();
        let parts = jpeg_segments(&long).filter(|&(m, d)| jpeg_part(m, d).is_some()).count();
        assert_eq!(parts, 3, "150,000 bytes take three segments");
        assert_eq!(extract(&long).as_deref(), Some(text.as_str()));
        // Replaced by a short text, no continuation is left behind.
        let short = embed(&long, "{}").unwrap();
        assert_eq!(extract(&short).as_deref(), Some("{}"));
        assert_eq!(short.len(), embed(&jpeg, "{}").unwrap().len());
    }

    #[test]
    fn non_images_are_refused() {
        assert!(embed(b"GIF89a", "x").is_err());
        assert_eq!(extract(b"nothing"), None);
    }
}
