//! What a restore needs and how it travels: the stream header, the per-frame record of the face
//! squares, and their carriers (SEI messages in H.264/H.265, a sidecar file, image metadata,
//! a container tag). Every constant of the format is defined here once.

pub mod header;
pub mod imagemeta;
pub mod sei;
pub mod sidecar;

use serde::{Deserialize, Serialize};

use header::{FrameRecord, StreamHeader};

/// The user-data-unregistered SEI identifier of faceveil payloads.
pub const SEI_UUID: [u8; 16] = *b"faceveil-sdn-v1\0";

/// Prefix of the container comment tag that carries the header.
pub const TAG_PREFIX: &str = "faceveil-header:";

/// The header rides in the SEI of a stream's first frame and every this many frames after, so
/// that a restore can join midway.
pub const HEADER_EVERY: u64 = 30;

/// What one frame's SEI message carries: its record, and the header on some frames.
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
        Self { header, record: Some(record.clone()) }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("payload serializes")
    }

    /// Reads a payload; the header inside is checked as [`StreamHeader::decode`] does.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::Error> {
        #[derive(Deserialize)]
        struct Raw {
            header: Option<serde_json::Value>,
            record: Option<FrameRecord>,
        }
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| crate::Error::BadHeader(format!("faceveil SEI payload is not readable: {e}")))?;
        let header = raw.header.map(|h| StreamHeader::decode(&h.to_string())).transpose()?;
        Ok(Self { header, record: raw.record })
    }
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
}
