//! The small versioned header every SDN output carries so that it can be restored: which model,
//! how the key was derived, and the salt. It never holds the password or anything that could
//! check one. Also the per-frame record of where the faces were cut.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::faces::detect::LANDMARK_VALUES;
use crate::faces::effects::Mode;
use crate::faces::geometry::CropSquare;
use crate::faces::resample::Upsampling;
use crate::model::SdnModel;
use crate::model::keys::{KdfParams, Keying, SALT_LEN, random_salt};
use crate::secrets::{HeaderSignature, KeyEnvelope, SealError, Signer, SigningKey};
use crate::stream::look::Look;

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
    /// One key for the stream (absent: outputs made before per-track keys) or one per track.
    #[serde(default, skip_serializing_if = "Keying::is_stream")]
    pub keying: Keying,
    /// The content key of the sealed faces, wrapped to their recipients (sealed outputs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<KeyEnvelope>,
    /// The surrogates were keyed by a random secret that no one kept, not by a password: an
    /// output sealed to recipients on a machine that holds no secret. No password undoes its
    /// surrogates; only its sealed faces come back ([`crate::pipeline::Anonymizer::keyed_at_random`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyed_at_random: bool,
    /// The one-way effect (blur, pixelate, solid) that replaced the faces of an output sealed
    /// to recipients: no password undoes it, and the model's fields are empty
    /// ([`Self::one_way`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// Faces lying on their side went to the model stood upright by quarter turns, each face's
    /// in its record ([`FaceRecord::turn`], `faces::upright`). Under the checksum, so that a
    /// build from before turns, which would restore those faces without them, refuses the
    /// stream. Outputs written before 2026-12-07 have none and turned no face.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub upright_turns: bool,
    /// The model's change was written onto large faces by interpolating between the grid's
    /// samples ([`Upsampling::Smooth`]), not as blocks: a restore must write its change back the
    /// same way. Under the checksum, so that a build from before it refuses the stream.
    /// Outputs of earlier builds (before 2026-12-07, night) have none and wrote blocks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub smooth_upsampling: bool,
    /// Truncated SHA-256 of the fields above: catches corruption, not an attacker.
    pub check: String,
    /// Every coded picture of the stream carries its signer's signature too (`stream::pictures`),
    /// so that a picture without one, or altered after it, is refused. Signed with the rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pictures_signed: bool,
    /// The stream's writer signs its end when the stream ends ([`crate::stream::end`]), so
    /// that a recording cut short shows. Signed with the rest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end_signed: bool,
    /// Who made the stream: the header's encoding without this, signed (`--sign-with`). It
    /// vouches for the wrapped content key, and so for every face sealed under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<HeaderSignature>,
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
    pub fn new(model: &SdnModel, kdf: KdfParams, salt: &[u8; SALT_LEN], keying: Keying) -> Self {
        let h = Self::unsealed(model.spec.model_id.clone(), model.variant.clone(), model.model_hash.clone(), kdf, salt, keying);
        Self { upright_turns: true, smooth_upsampling: true, ..h }.rechecked()
    }

    /// How the stream's change was written onto the faces' pixels.
    pub fn upsampling(&self) -> Upsampling {
        if self.smooth_upsampling { Upsampling::Smooth } else { Upsampling::Blocks }
    }

    /// The header of an output whose faces a one-way `effect` replaced and whose originals are
    /// sealed: what its records and sealed faces are bound to. It names no model and no key
    /// (the salt is random, the cost parameters the default, and neither derives anything).
    pub fn one_way(effect: Mode) -> Self {
        let h = Self::unsealed(String::new(), String::new(), String::new(), KdfParams::default(), &random_salt(), Keying::Stream);
        Self { effect: Some(effect.name().to_string()), ..h }.rechecked()
    }

    /// A header of these fields, with nothing sealed, marked or signed yet, and no checksum:
    /// each caller sets its own fields over it and then makes the checksum once.
    fn unsealed(
        model_id: String,
        variant: String,
        model_sha256: String,
        kdf: KdfParams,
        salt: &[u8; SALT_LEN],
        keying: Keying,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            model_id,
            variant,
            model_sha256,
            kdf,
            salt: hex(salt),
            keying,
            sealed: None,
            keyed_at_random: false,
            effect: None,
            upright_turns: false,
            smooth_upsampling: false,
            check: String::new(),
            pictures_signed: false,
            end_signed: false,
            signed: None,
        }
    }

    /// The header with its checksum made again, after a field under it changed.
    fn rechecked(mut self) -> Self {
        self.check = self.checksum();
        self
    }

    /// Why no password restores this output's faces, where none does: its surrogates were
    /// keyed at random, or a one-way effect replaced them. Only its sealed faces come back.
    pub fn no_password_restores(&self) -> Option<String> {
        if let Some(effect) = &self.effect {
            return Some(format!(
                "this output's faces were replaced by the one-way {effect} effect and sealed to recipients: no password restores them; restore it with an identity (--identity, faceunveil's identity)"
            ));
        }
        self.keyed_at_random.then(|| {
            "this output was sealed to recipients with no password: its surrogates were keyed at random, so no password restores them; restore it with an identity (--identity, faceunveil's identity)".to_string()
        })
    }

    /// The header with the envelope of its sealed faces.
    pub fn with_sealed(self, envelope: KeyEnvelope) -> Self {
        Self { sealed: Some(envelope), ..self }.rechecked()
    }

    /// The header of surrogates keyed by a random secret that no one kept.
    pub fn keyed_at_random(self) -> Self {
        Self { keyed_at_random: true, ..self }.rechecked()
    }

    /// The header signed with `key`; sign last, as any later change breaks the signature.
    pub fn signed_with(mut self, key: &SigningKey) -> Self {
        self.signed = None;
        self.signed = Some(key.sign(self.encode().as_bytes()));
        self
    }

    /// Who signed the header, its signature checked; `None` for a header without one.
    pub fn signer(&self) -> Result<Option<Signer>, SealError> {
        let Some(signature) = &self.signed else { return Ok(None) };
        let unsigned = Self { signed: None, ..self.clone() };
        signature.verify(unsigned.encode().as_bytes()).map(Some)
    }

    /// Who signed the header, as [`Self::signer`]; an error where `required`, if given, did not,
    /// or where the signer is one of the `revoked` ([`crate::secrets::Revocation`]).
    pub fn check_signer(&self, required: Option<&Signer>, revoked: &[Signer]) -> Result<Option<Signer>, SealError> {
        let signer = self.signer()?;
        if let Some(signer) = signer.as_ref().filter(|s| revoked.contains(s)) {
            return Err(SealError::RevokedSigner(signer.to_string()));
        }
        match (required, &signer) {
            (None, _) => {}
            (Some(required), Some(signer)) if signer == required => {}
            (Some(required), Some(signer)) => {
                return Err(SealError::OtherSigner { signed_by: signer.to_string(), required: required.to_string() });
            }
            (Some(required), None) => return Err(SealError::NotSigned { required: required.to_string() }),
        }
        Ok(signer)
    }

    /// SHA-256 of the header as it travels: what each sealed face is bound to.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode().as_bytes()).into()
    }

    fn checksum(&self) -> String {
        // Headers keyed per stream keep the checksum they had before keying was recorded.
        let keying = if self.keying == Keying::Track { "|track" } else { "" };
        let sealed = self.sealed.as_ref().map(|e| format!("|sealed|{}|{}", e.threshold, hex(&e.check))).unwrap_or_default();
        let random = if self.keyed_at_random { "|random" } else { "" };
        let effect = self.effect.as_ref().map(|e| format!("|effect|{e}")).unwrap_or_default();
        let turns = if self.upright_turns { "|turns" } else { "" };
        let smooth = if self.smooth_upsampling { "|smooth" } else { "" };
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
        ) + keying
            + &sealed
            + random
            + &effect
            + turns
            + smooth;
        hex(&Sha256::digest(text.as_bytes())[..8])
    }

    /// The fields of the header's `text` that this build dropped in reading it `self`: a later
    /// build's, which it also put under the checksum (writers leave out fields at their
    /// defaults, so a field read and written again is one this build knows).
    fn unknown_fields(&self, text: &str) -> Vec<String> {
        let keys = |v: serde_json::Value| match v {
            serde_json::Value::Object(map) => map.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        };
        let known = keys(serde_json::to_value(self).unwrap_or_default());
        let read = keys(serde_json::from_str(text.trim()).unwrap_or_default());
        read.into_iter().filter(|k| !known.contains(k)).collect()
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
            let newer = h.unknown_fields(text);
            if !newer.is_empty() {
                return bad(format!(
                    "faceveil header has fields this build does not know ({}): the output was made by a newer faceveil; restore it with that version or later",
                    newer.join(", ")
                ));
            }
            return bad("faceveil header fails its checksum: it was altered or damaged".into());
        }
        if let Err(e) = h.signer() {
            return bad(format!("faceveil header: {e}"));
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

    /// Refuses to restore with a model other than the one that anonymized (or one that sdn.json
    /// says restores its streams: an earlier graph of the same map, an earlier map).
    pub fn check_model(&self, model: &SdnModel) -> Result<(), Error> {
        if !model.restores_streams_of(&self.model_sha256) {
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

/// One face of a frame as the stream records it: where it was cut, which track it belongs to
/// and where its landmarks were, so that a restore cuts the same square and gives the model what
/// the anonymization gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceRecord {
    /// The crop square: centre x, centre y and side, in frame pixels.
    pub square: [f32; 3],
    /// The tracker's id for the face; 0 where it was not tracked.
    #[serde(default)]
    pub track: u64,
    /// Left eye, right eye, nose, left and right mouth corner (CenterFace's order) as x, y
    /// pairs relative to the square (0..1), where the detector gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<[f32; LANDMARK_VALUES]>,
    /// Quarter turns (0..=3) the face lay rolled clockwise, by which its grid went to the model
    /// turned back upright (`faces::upright`); 0 for an upright face. Landmarks stay as the frame
    /// has them.
    #[serde(default, skip_serializing_if = "is_upright")]
    pub turn: u8,
    /// The original pixels under the face, sealed to the stream's recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedFace>,
}

fn is_upright(turn: &u8) -> bool {
    *turn == 0
}

/// A face's sealed bytes. In JSON (the sidecar, image metadata, and SEI payloads written before
/// they carried bytes) they are base64; SEI payloads now carry them as bytes after the JSON
/// ([`crate::stream::SeiPayload`]), a quarter less than base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFace(pub Vec<u8>);

impl Serialize for SealedFace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SealedFace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map(Self).map_err(|_| serde::de::Error::custom("a sealed face is not base64"))
    }
}

impl FaceRecord {
    /// The record of a face cut at `crop`, with its landmarks in frame pixels.
    pub fn new(crop: CropSquare, track: u64, landmarks: Option<[(f32, f32); 5]>) -> Self {
        let (x0, y0) = (crop.cx - crop.side / 2.0, crop.cy - crop.side / 2.0);
        let landmarks = landmarks.map(|points| {
            let mut v = [0f32; LANDMARK_VALUES];
            for (i, (x, y)) in points.iter().enumerate() {
                v[2 * i] = (x - x0) / crop.side;
                v[2 * i + 1] = (y - y0) / crop.side;
            }
            v
        });
        Self { square: [crop.cx, crop.cy, crop.side], track, landmarks, turn: 0, sealed: None }
    }

    /// This record with its face stood upright by `turn` quarter turns for the model.
    pub fn turned(self, turn: u8) -> Self {
        Self { turn: turn % 4, ..self }
    }

    pub fn crop(&self) -> CropSquare {
        CropSquare { cx: self.square[0], cy: self.square[1], side: self.square[2] }
    }
}

/// The faces of one frame: what a restore needs to cut exactly the same squares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "RecordAsRead")]
pub struct FrameRecord {
    /// Frame number in the stream, from 0.
    pub frame: u64,
    /// Presentation time in nanoseconds, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pts: Option<u64>,
    pub faces: Vec<FaceRecord>,
    /// The anonymized frame's look, in sidecars: it tells a restore whether this record is the
    /// frame's ([`crate::stream::look`]). Sidecars written before 2026-12-03 have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub look: Option<Look>,
    /// In a signed stream, the signer's signature of the record (less this and the look, which
    /// the SEI does not carry), bound to the header: see [`Self::signed_with`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
}

/// A record as read. Outputs written before records carried tracks and landmarks list bare
/// squares under `crops`; they still restore.
#[derive(Deserialize)]
struct RecordAsRead {
    frame: u64,
    #[serde(default)]
    pts: Option<u64>,
    #[serde(default)]
    faces: Vec<FaceRecord>,
    #[serde(default)]
    crops: Vec<[f32; 3]>,
    #[serde(default)]
    look: Option<Look>,
    #[serde(default)]
    signed: Option<String>,
}

impl From<RecordAsRead> for FrameRecord {
    fn from(r: RecordAsRead) -> Self {
        let mut faces = r.faces;
        faces.extend(r.crops.into_iter().map(|square| FaceRecord { square, track: 0, landmarks: None, turn: 0, sealed: None }));
        Self { frame: r.frame, pts: r.pts, faces, look: r.look, signed: r.signed }
    }
}

impl FrameRecord {
    pub fn new(frame: u64, pts: Option<u64>, faces: Vec<FaceRecord>) -> Self {
        Self { frame, pts, faces, look: None, signed: None }
    }

    /// The bytes of this frame's sealed faces, as the SEI carries them (a sidecar holds them
    /// again as base64).
    pub fn sealed_bytes(&self) -> u64 {
        self.faces.iter().filter_map(|face| face.sealed.as_ref()).map(|sealed| sealed.0.len() as u64).sum()
    }

    /// What a record's signature covers: its encoding without the signature and the look.
    fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&Self { look: None, signed: None, ..self.clone() }).expect("records serialize")
    }

    /// The record signed with `key`, in the stream whose signed header has digest `header`
    /// ([`StreamHeader::digest`]): every face's square, track and sealed bytes, the frame's
    /// number and time. A recipient, who can seal faces under the stream's content key, cannot
    /// sign them.
    pub fn signed_with(mut self, key: &SigningKey, header: &[u8; 32]) -> Self {
        self.signed = Some(key.sign_record(header, &self.signed_bytes()));
        self
    }

    /// Whether this record carries `signer`'s signature in the stream whose header has digest
    /// `header`.
    pub fn is_signed_by(&self, signer: &Signer, header: &[u8; 32]) -> bool {
        self.signed.as_deref().is_some_and(|signature| signer.signed_record(header, &self.signed_bytes(), signature))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> StreamHeader {
        StreamHeader::unsealed("m".into(), "fast".into(), "ab".repeat(32), KdfParams::default(), &[1; SALT_LEN], Keying::Track)
            .rechecked()
    }

    #[test]
    fn a_one_way_header_names_its_effect_under_its_checksum_and_no_password_restores_it() {
        let h = StreamHeader::one_way(Mode::Blur);
        assert_eq!(StreamHeader::decode(&h.encode()).unwrap(), h);
        assert!(h.no_password_restores().unwrap().contains("one-way blur effect"));
        assert!(sample().no_password_restores().is_none(), "an sdn header with a password restores");
        let swapped = StreamHeader { effect: Some("solid".into()), ..h.clone() };
        assert!(StreamHeader::decode(&swapped.encode()).is_err(), "another effect fails the check");
        let unmarked = StreamHeader { effect: None, ..h };
        assert!(StreamHeader::decode(&unmarked.encode()).is_err(), "no effect fails the check");
    }

    #[test]
    fn a_header_that_turns_faces_says_so_under_its_checksum_and_each_record_carries_its_turn() {
        let h = StreamHeader { upright_turns: true, ..sample() }.rechecked();
        assert_eq!(StreamHeader::decode(&h.encode()).unwrap(), h);
        // A build from before turns reads the header without the mark and fails its check.
        let unmarked = StreamHeader { upright_turns: false, ..h };
        assert!(StreamHeader::decode(&unmarked.encode()).is_err(), "the mark is under the checksum");
        // An upright face's record is as records were before turns; a turned one says its turn.
        let face = FaceRecord::new(CropSquare { cx: 50.0, cy: 60.0, side: 40.5 }, 3, None);
        assert!(!serde_json::to_string(&face).unwrap().contains("turn"));
        let turned = serde_json::to_string(&face.turned(5)).unwrap();
        assert_eq!(serde_json::from_str::<FaceRecord>(&turned).unwrap().turn, 1, "{turned}");
    }

    #[test]
    fn a_header_of_smooth_upsampling_says_so_under_its_checksum() {
        let h = StreamHeader { smooth_upsampling: true, ..sample() }.rechecked();
        assert_eq!(StreamHeader::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.upsampling(), Upsampling::Smooth);
        // A build from before it reads the header without the mark and fails its check.
        let unmarked = StreamHeader { smooth_upsampling: false, ..h };
        assert!(StreamHeader::decode(&unmarked.encode()).is_err(), "the mark is under the checksum");
        assert_eq!(sample().upsampling(), Upsampling::Blocks, "a header without it wrote blocks");
    }

    #[test]
    fn a_header_of_a_newer_build_is_refused_as_such_and_a_damaged_one_as_damaged() {
        // A later build adds a field under the checksum, as `smooth_upsampling` was added.
        let mut value = serde_json::to_value(sample()).unwrap();
        value["faces_drawn_by_a_generator"] = serde_json::Value::Bool(true);
        value["check"] = serde_json::Value::String("00".repeat(8));
        let e = StreamHeader::decode(&value.to_string()).unwrap_err().to_string();
        assert!(e.contains("faces_drawn_by_a_generator") && e.contains("newer faceveil"), "{e}");
        let damaged = sample().encode().replace(&"01".repeat(16), &"02".repeat(16));
        let e = StreamHeader::decode(&damaged).unwrap_err().to_string();
        assert!(e.contains("altered or damaged") && !e.contains("newer"), "{e}");
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
        // Dropping the per-track keying from the text is caught like any other change.
        let downgraded = h.encode().replace(r#","keying":"track""#, "");
        assert_ne!(downgraded, h.encode());
        assert!(matches!(StreamHeader::decode(&downgraded), Err(Error::BadHeader(why)) if why.contains("checksum")));
    }

    #[test]
    fn a_signed_header_names_its_signer_and_refuses_every_change_and_every_other_signer() {
        let (key, forger) = (SigningKey::generate(), SigningKey::generate());
        let signed = sample().signed_with(&key);
        let back = StreamHeader::decode(&signed.encode()).unwrap();
        assert_eq!(back.signer().unwrap(), Some(key.signer()));
        assert_eq!(back.check_signer(Some(&key.signer()), &[]).unwrap(), Some(key.signer()));
        assert_eq!(back.check_signer(None, &[]).unwrap(), Some(key.signer()));
        // A forger changes a field and mends the checksum: the signature no longer verifies.
        let mut changed = back.clone();
        changed.salt = "02".repeat(16);
        changed.check = changed.checksum();
        let e = StreamHeader::decode(&changed.encode()).unwrap_err().to_string();
        assert!(e.contains("signature does not verify"), "{e}");
        // ... or makes a header of their own, unsigned or signed by their key.
        let unsigned = sample();
        assert!(matches!(unsigned.check_signer(Some(&key.signer()), &[]), Err(SealError::NotSigned { .. })));
        let theirs = StreamHeader::decode(&sample().signed_with(&forger).encode()).unwrap();
        assert!(matches!(theirs.check_signer(Some(&key.signer()), &[]), Err(SealError::OtherSigner { .. })));
        // Signing changes what each sealed face is bound to.
        assert_ne!(signed.digest(), sample().digest());
    }

    #[test]
    fn a_signed_record_verifies_as_the_sei_and_sidecar_carry_it_and_not_once_changed() {
        let key = SigningKey::generate();
        let header = sample().signed_with(&key);
        let face = FaceRecord {
            sealed: Some(SealedFace(vec![7; 40])),
            ..FaceRecord::new(CropSquare { cx: 50.0, cy: 60.0, side: 40.5 }, 3, None)
        };
        let record = FrameRecord::new(30, Some(1_200_000_000), vec![face]).signed_with(&key, &header.digest());
        let (signer, digest) = (key.signer(), header.digest());
        assert!(record.is_signed_by(&signer, &digest));
        // As the SEI carries it (sealed bytes after the JSON, no look), and as a sidecar's line.
        let sei = crate::stream::SeiPayload::for_frame(&record, &header).encode();
        let from_sei = crate::stream::SeiPayload::decode(&sei).unwrap().record.unwrap();
        assert!(from_sei.is_signed_by(&signer, &digest));
        let line: FrameRecord = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert!(line.is_signed_by(&signer, &digest));
        // Any change, another stream's header, another signer: no.
        let mut moved = record.clone();
        moved.faces[0].square[0] += 1.0;
        let mut resealed = record.clone();
        resealed.faces[0].sealed = Some(SealedFace(vec![8; 40]));
        let later = FrameRecord { pts: Some(1_240_000_000), ..record.clone() };
        for (what, r) in [("moved", &moved), ("resealed", &resealed), ("retimed", &later)] {
            assert!(!r.is_signed_by(&signer, &digest), "{what}");
        }
        assert!(!record.is_signed_by(&signer, &sample().digest()), "another header");
        assert!(!record.is_signed_by(&SigningKey::generate().signer(), &digest), "another signer");
        assert!(!FrameRecord { signed: None, ..record }.is_signed_by(&signer, &digest), "unsigned");
    }

    #[test]
    fn frame_records_keep_squares_tracks_and_landmarks() {
        let crop = CropSquare { cx: 50.0, cy: 60.0, side: 40.0 };
        let eyes_nose_mouth = [(40.0, 50.0), (60.0, 50.0), (50.0, 60.0), (42.0, 70.0), (58.0, 70.0)];
        let r = FrameRecord::new(3, Some(100), vec![FaceRecord::new(crop, 7, Some(eyes_nose_mouth))]);
        let back: FrameRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.faces[0].crop(), crop);
        assert_eq!(back.faces[0].track, 7);
        // Crop-relative: the left eye sits a quarter in from the left, a quarter down.
        assert_eq!(back.faces[0].landmarks.unwrap()[..2], [0.25, 0.25]);
    }

    #[test]
    fn records_of_earlier_outputs_still_read() {
        let r: FrameRecord = serde_json::from_str(r#"{"frame":2,"pts":80,"crops":[[10.0,20.0,30.0]]}"#).unwrap();
        assert_eq!(r.faces, vec![FaceRecord { square: [10.0, 20.0, 30.0], track: 0, landmarks: None, turn: 0, sealed: None }]);
    }
}
