//! faceveil's data inside image files: a PNG tEXt chunk or a JPEG COM segment, both ignored by
//! viewers and kept by most tools that do not re-encode.

use anyhow::{Result, bail, ensure};

const KEYWORD: &[u8] = b"faceveil";
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
        jpeg_segments(bytes).find_map(|(marker, data)| {
            (marker == 0xFE && data.starts_with(KEYWORD) && data.get(KEYWORD.len()) == Some(&b':'))
                .then(|| String::from_utf8_lossy(&data[KEYWORD.len() + 1..]).into_owned())
        })
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

fn embed_jpeg(bytes: &[u8], text: &str) -> Result<Vec<u8>> {
    let mut payload = KEYWORD.to_vec();
    payload.push(b':');
    payload.extend_from_slice(text.as_bytes());
    ensure!(payload.len() + 2 <= u16::MAX as usize, "faceveil data too large for a JPEG comment");
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xFE];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    // Copy the rest, dropping an older faceveil comment.
    let mut pos = 2;
    for (marker, data) in jpeg_segments(bytes) {
        let end = pos + 4 + data.len();
        let ours = marker == 0xFE && data.starts_with(KEYWORD) && data.get(KEYWORD.len()) == Some(&b':');
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
    fn non_images_are_refused() {
        assert!(embed(b"GIF89a", "x").is_err());
        assert_eq!(extract(b"nothing"), None);
    }
}
