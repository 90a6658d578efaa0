//! What a restore needs and how it travels: the stream header, the per-frame record of the face
//! squares, and their carriers (SEI messages in H.264/H.265, a sidecar file, image metadata,
//! a container tag). Every constant of the format is defined here once.

pub mod end;
pub mod header;
pub mod imagemeta;
pub mod look;
pub mod pictures;
pub mod sei;
pub mod sidecar;
pub mod signed;

use serde::{Deserialize, Serialize};

use header::{FrameRecord, SealedFace, StreamHeader};

/// The user-data-unregistered SEI identifier of faceveil payloads.
pub const SEI_UUID: [u8; 16] = *b"faceveil-sdn-v1\0";

/// Prefix of the container comment tag that carries the header.
pub const TAG_PREFIX: &str = "faceveil-header:";

/// The header rides in the SEI of a stream's first frame and every this many frames after, so
/// that a restore can join midway.
pub const HEADER_EVERY: u64 = 30;

/// What one frame's SEI message carries: its record, and the header on some frames.
///
/// Encoded as JSON, then, where faces are sealed, their bytes: a NUL (which JSON text never
/// holds), [`SEALED_TAIL_VERSION`], and for each face of the record in order the length of its
/// sealed bytes (u32, little-endian; 0 for none) and the bytes. Payloads with the sealed faces
/// as base64 inside the JSON (written before) still read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SeiPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<StreamHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<FrameRecord>,
}

impl SeiPayload {
    /// The payload of a frame: its record, with `header` when the frame is one that carries it.
    pub fn for_frame(record: &FrameRecord, header: &StreamHeader) -> Self {
        let header = record.frame.is_multiple_of(HEADER_EVERY).then(|| header.clone());
        // The SEI rides in the frame it describes: it has no need of the frame's look.
        Self { header, record: Some(FrameRecord { look: None, ..record.clone() }) }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut record = self.record.clone();
        let sealed: Vec<Option<SealedFace>> = record.iter_mut().flat_map(|r| &mut r.faces).map(|f| f.sealed.take()).collect();
        let json = Self { header: self.header.clone(), record };
        let mut out = serde_json::to_vec(&json).expect("payload serializes");
        if sealed.iter().any(Option::is_some) {
            out.extend_from_slice(&[0, SEALED_TAIL_VERSION]);
            for face in &sealed {
                let bytes = face.as_ref().map_or(&[][..], |s| &s.0);
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// Reads a payload; the header inside is checked as [`StreamHeader::decode`] does.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::Error> {
        #[derive(Deserialize)]
        struct Raw {
            header: Option<serde_json::Value>,
            record: Option<FrameRecord>,
        }
        let bad = |why: String| crate::Error::BadHeader(format!("faceveil SEI payload is not readable: {why}"));
        let (json, tail) = match bytes.iter().position(|&b| b == 0) {
            Some(nul) => (&bytes[..nul], Some(&bytes[nul + 1..])),
            None => (bytes, None),
        };
        let mut raw: Raw = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        if let Some(tail) = tail {
            let faces = raw.record.as_mut().map_or(&mut [][..], |r| &mut r.faces[..]);
            attach_sealed(faces, tail).map_err(|why| bad(why.into()))?;
        }
        let header = raw.header.map(|h| StreamHeader::decode(&h.to_string())).transpose()?;
        Ok(Self { header, record: raw.record })
    }
}

/// The version of the sealed faces' bytes after an SEI payload's JSON.
pub const SEALED_TAIL_VERSION: u8 = 1;

/// Gives `faces` their sealed bytes from an SEI payload's tail (after the NUL).
fn attach_sealed(faces: &mut [header::FaceRecord], tail: &[u8]) -> Result<(), &'static str> {
    let (version, mut rest) = tail.split_first().ok_or("the sealed faces' bytes are cut")?;
    if *version != SEALED_TAIL_VERSION {
        return Err("the sealed faces' bytes are of a later version");
    }
    for face in faces {
        let (len, after) = rest.split_first_chunk::<4>().ok_or("the sealed faces' bytes are cut")?;
        let (bytes, after) = after.split_at_checked(u32::from_le_bytes(*len) as usize).ok_or("a sealed face is cut")?;
        if !bytes.is_empty() {
            if face.sealed.is_some() {
                return Err("a face is sealed twice");
            }
            face.sealed = Some(SealedFace(bytes.to_vec()));
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Err("more sealed faces than faces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faces::geometry::CropSquare;

    #[test]
    fn sei_payloads_carry_the_header_every_so_many_frames() {
        let header = header::tests::sample();
        let faces = vec![header::FaceRecord::new(CropSquare { cx: 10.0, cy: 20.0, side: 30.0 }, 1, None)];
        for frame in [0, 1, HEADER_EVERY] {
            let record = FrameRecord::new(frame, Some(frame * 40), faces.clone());
            let back = SeiPayload::decode(&SeiPayload::for_frame(&record, &header).encode()).unwrap();
            assert_eq!(back.header.is_some(), frame % HEADER_EVERY == 0, "frame {frame}");
            assert_eq!(back.record.unwrap(), record);
        }
        let tampered = String::from_utf8(SeiPayload::for_frame(&FrameRecord::new(0, None, faces), &header).encode())
            .unwrap()
            .replace(&header.salt, &"ff".repeat(16));
        assert!(matches!(SeiPayload::decode(tampered.as_bytes()), Err(crate::Error::BadHeader(_))));
    }

    #[test]
    fn sealed_faces_ride_as_bytes_after_the_json_and_base64_payloads_still_read() {
        let header = header::tests::sample();
        let face = |sealed: Option<Vec<u8>>| header::FaceRecord {
            sealed: sealed.map(SealedFace),
            ..header::FaceRecord::new(CropSquare { cx: 10.0, cy: 20.0, side: 30.0 }, 1, None)
        };
        // Zero bytes inside a sealed face must not be taken for the separator.
        let record =
            FrameRecord::new(3, Some(120), vec![face(Some(vec![0, 0, 3, 255, 0])), face(None), face(Some(vec![7; 300]))]);
        let payload = SeiPayload::for_frame(&record, &header).encode();
        let nul = payload.iter().position(|&b| b == 0).unwrap();
        assert!(!payload[..nul].windows(6).any(|w| w == b"sealed"), "no base64 in the JSON");
        assert_eq!(payload.len() - nul, 2 + 3 * 4 + 5 + 300, "NUL, version, three lengths, the bytes");
        assert_eq!(SeiPayload::decode(&payload).unwrap().record.unwrap(), record);
        // A payload written with the faces as base64 inside the JSON.
        let old = serde_json::to_vec(&SeiPayload { header: None, record: Some(record.clone()) }).unwrap();
        assert!(!old.contains(&0));
        assert_eq!(SeiPayload::decode(&old).unwrap().record.unwrap(), record);
        // Cut, or with a face more or less than the record: refused, not misassigned.
        for bad in [&payload[..payload.len() - 1], &[&payload[..], &[0, 0, 0, 0]].concat()] {
            assert!(matches!(SeiPayload::decode(bad), Err(crate::Error::BadHeader(_))));
        }
        let mut later = payload.clone();
        later[nul + 1] = SEALED_TAIL_VERSION + 1;
        assert!(SeiPayload::decode(&later).unwrap_err().to_string().contains("later version"));
    }
}
