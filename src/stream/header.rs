//! The small versioned header every SDN output carries so that it can be restored: which model,
//! how the key was derived, and the salt. It never holds the password or anything that could
//! check one. Also the per-frame record of where the faces were cut.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::faces::geometry::CropSquare;
use crate::model::SdnModel;
use crate::model::keys::{KdfParams, SALT_LEN};

pub const FORMAT: &str = "faceveil";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHeader {
    pub format: String,
    pub version: u32,
    pub model_id: String,
    pub variant: String,
    /// SHA-256 of the anonymize graph, so that a restore with another model is refused.
    pub model_sha256: String,
    pub kdf: KdfParams,
    /// Hex, 16 bytes.
    pub salt: String,
    /// Truncated SHA-256 of the fields above: catches corruption, not an attacker.
    pub check: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect())
        .flatten()
}

impl StreamHeader {
    pub fn new(model: &SdnModel, kdf: KdfParams, salt: &[u8; SALT_LEN]) -> Self {
        let mut h = Self {
            format: FORMAT.into(),
            version: VERSION,
            model_id: model.spec.model_id.clone(),
            variant: model.variant.clone(),
            model_sha256: model.model_hash.clone(),
            kdf,
            salt: hex(salt),
            check: String::new(),
        };
        h.check = h.checksum();
        h
    }

    fn checksum(&self) -> String {
        let text = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.format,
            self.version,
            self.model_id,
            self.variant,
            self.model_sha256,
            self.kdf.m,
            self.kdf.t,
            self.kdf.p,
            self.salt
        );
        hex(&Sha256::digest(text.as_bytes())[..8])
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("header serializes")
    }

    /// Parses and checks a header; anything unknown, tampered or weakened is an error.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let bad = |why: String| Err(Error::BadHeader(why));
        let h: StreamHeader = match serde_json::from_str(text.trim()) {
            Ok(h) => h,
            Err(e) => return bad(format!("faceveil header is not readable (corrupt or not a faceveil output): {e}")),
        };
        if h.format != FORMAT {
            return bad(format!("not a faceveil header (format '{}')", h.format));
        }
        if h.version != VERSION {
            return bad(format!("faceveil header version {} is not supported (this build reads {VERSION})", h.version));
        }
        if h.check != h.checksum() {
            return bad("faceveil header fails its checksum: it was altered or damaged".into());
        }
        if let Err(e) = h.kdf.validate() {
            return bad(format!("faceveil header: {e:#}"));
        }
        if h.salt_bytes().is_none() {
            return bad("faceveil header salt is malformed".into());
        }
        Ok(h)
    }

    pub fn salt_bytes(&self) -> Option<[u8; SALT_LEN]> {
        unhex(&self.salt)?.try_into().ok()
    }

    /// Refuses to restore with a model other than the one that anonymized.
    pub fn check_model(&self, model: &SdnModel) -> Result<(), Error> {
        if self.model_sha256 != model.model_hash {
            return Err(Error::ModelMismatch {
                made_with: format!(
                    "{} ({}, sha256 {}…)",
                    self.model_id,
                    self.variant,
                    &self.model_sha256[..12.min(self.model_sha256.len())]
                ),
                loaded: format!("{} ({})", model.spec.model_id, model.variant),
            });
        }
        Ok(())
    }
}

/// Where the faces of one frame were cut: what a restore needs to cut exactly the same squares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameRecord {
    /// Frame number in the stream, from 0.
    pub frame: u64,
    /// Presentation time in nanoseconds, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pts: Option<u64>,
    pub crops: Vec<[f32; 3]>,
}

impl FrameRecord {
    pub fn new(frame: u64, pts: Option<u64>, crops: &[CropSquare]) -> Self {
        Self { frame, pts, crops: crops.iter().map(|c| [c.cx, c.cy, c.side]).collect() }
    }

    pub fn crops(&self) -> Vec<CropSquare> {
        self.crops.iter().map(|c| CropSquare { cx: c[0], cy: c[1], side: c[2] }).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> StreamHeader {
        let mut h = StreamHeader {
            format: FORMAT.into(),
            version: VERSION,
            model_id: "m".into(),
            variant: "fast".into(),
            model_sha256: "ab".repeat(32),
            kdf: KdfParams::default(),
            salt: "01".repeat(16),
            check: String::new(),
        };
        h.check = h.checksum();
        h
    }

    #[test]
    fn header_round_trips_and_rejects_tampering() {
        let h = sample();
        assert_eq!(StreamHeader::decode(&h.encode()).unwrap(), h);
        let tampered = h.encode().replace(&"01".repeat(16), &"02".repeat(16));
        assert!(matches!(StreamHeader::decode(&tampered), Err(Error::BadHeader(why)) if why.contains("checksum")));
        let mut weak = h.clone();
        weak.kdf.m = 1024;
        weak.check = weak.checksum();
        assert!(matches!(StreamHeader::decode(&weak.encode()), Err(Error::BadHeader(_))));
        let mut future = h.clone();
        future.version = 9;
        future.check = future.checksum();
        assert!(StreamHeader::decode(&future.encode()).unwrap_err().to_string().contains("version"));
        assert!(matches!(StreamHeader::decode("garbage"), Err(Error::BadHeader(_))));
    }

    #[test]
    fn frame_records_keep_crops() {
        let crops = [CropSquare { cx: 1.5, cy: 2.0, side: 30.0 }];
        let r = FrameRecord::new(3, Some(100), &crops);
        let back: FrameRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.crops(), crops);
    }
}
