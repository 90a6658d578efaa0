//! The restore direction: a frame's recorded faces given back, from their seals where the
//! stream's identities or password open them, else by the SDN's inverse under the password.

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{face_place, open_sdn};
use crate::Error;
use crate::config::Config;
use crate::faces::detect::Face;
use crate::faces::upright;
use crate::finder::FaceFinder;
use crate::frame::{FrameMut, Region};
use crate::model::Direction;
use crate::model::keys::{Keying, PasswordKeys};
use crate::secrets::{FaceCodec, FacePlace, FaceVault, Identity, OpenedFace};
use crate::stream::end::{EndCheck, StreamEnd};
use crate::stream::header::{FaceRecord, FrameRecord, StreamHeader};
use crate::stream::signed::SignedRecords;
use crate::veil::Veil;

/// Gives back the faces of one stream (or image) that an [`Anonymizer`](super::Anonymizer)
/// recorded: from their seals where the identities or the password open them, else through the
/// SDN's restore with the password.
pub struct Restorer {
    /// The password restore; absent when only identities were given.
    veil: Option<Veil>,
    /// Opened on the first frame without recorded crops.
    finder: Option<FaceFinder>,
    config: Config,
    keying: Keying,
    /// The stream stood faces lying on their side upright ([`StreamHeader::upright_turns`]).
    upright_turns: bool,
    /// Opens the sealed faces, when identities were given.
    vault: Option<FaceVault>,
    /// Decodes faces sealed as video, once the vault is open.
    face_codec: Option<Arc<dyn FaceCodec>>,
    /// Sealed faces left as they were because their face video had not started here yet.
    waiting: u64,
    /// Sealed faces opened back into place.
    opened: u64,
    /// Where the header is signed: the check of every record against its signer, and the last
    /// two records' numbers where they did not follow each other.
    signed: Option<SignedRecords>,
    skipped: Option<(u64, u64)>,
}

impl Restorer {
    /// Checks the header against the model and derives the key from its salt. Where the faces
    /// were also sealed to the password, their seals open with it, and a wrong password fails
    /// here, saying so. Otherwise a wrong password is not detectable by design: it yields other
    /// faces.
    ///
    /// Without a variant of its own, the config takes the one the header names: a stream made
    /// with any variant of the model restores without the user having to remember which.
    pub fn new(config: &Config, password: Option<&[u8]>, header: &StreamHeader) -> Result<Self> {
        Self::with_keys(config, password.map(PasswordKeys::new).as_ref(), header)
    }

    /// As [`Self::new`], the password's secret for the header's salt taken from `keys` where
    /// an earlier output of the run derived it.
    pub fn with_keys(config: &Config, keys: Option<&PasswordKeys>, header: &StreamHeader) -> Result<Self> {
        if let Some(why) = header.no_password_restores() {
            bail!(why);
        }
        let signed = SignedRecords::of(header, config.signer.as_ref(), &config.revoked)?;
        let config = Config { variant: config.variant.clone().or_else(|| Some(header.variant.clone())), ..config.clone() };
        let salt = header.salt_bytes().context("header salt")?;
        let keys = keys.filter(|keys| !keys.is_empty()).ok_or(Error::MissingPassword)?;
        let mut veil = open_sdn(&config, Direction::Restore, || keys.derive(&salt, &header.kdf), header.keying)?;
        header.check_model(veil.model().expect("sdn veil has a model"))?;
        veil.restore_stream_of(&header.model_sha256);
        veil.set_upsampling(header.upsampling());
        let wrap_key = veil.password_wrap_key().expect("sdn veil has a password");
        let vault = match &header.sealed {
            Some(envelope) => FaceVault::open_with_password(envelope, &wrap_key, header.digest()).transpose()?,
            None => None,
        };
        Ok(Self {
            veil: Some(veil),
            finder: None,
            config,
            keying: header.keying,
            upright_turns: header.upright_turns,
            vault,
            face_codec: None,
            waiting: 0,
            opened: 0,
            signed,
            skipped: None,
        })
    }

    /// The restore a front end was asked for: with `password` alone the SDN's restore of the
    /// surrogates (and the faces sealed to the password, if any); with `identities` too, the
    /// faces sealed to them where there are any; with `identities` alone, the sealed faces
    /// only. An output keyed at random, or made with a one-way effect, opens with identities
    /// alone: a password given beside them is left unused, and one given without them is
    /// refused, saying so.
    pub fn open(config: &Config, password: Option<&[u8]>, identities: &[Identity], header: &StreamHeader) -> Result<Self> {
        Self::open_with_keys(config, password.map(PasswordKeys::new).as_ref(), identities, header)
    }

    /// As [`Self::open`], for a run that opens many outputs with one password (a folder's
    /// photos): `keys` holds the password and the secrets derived for it so far.
    pub fn open_with_keys(
        config: &Config,
        keys: Option<&PasswordKeys>,
        identities: &[Identity],
        header: &StreamHeader,
    ) -> Result<Self> {
        match keys {
            Some(_) if header.no_password_restores().is_some() && !identities.is_empty() => {
                Self::sealed_only(config, identities, header)
            }
            Some(keys) if identities.is_empty() => Self::with_keys(config, Some(keys), header),
            Some(keys) => Self::with_keys(config, Some(keys), header)?.unseal_with(identities, header),
            None => Self::sealed_only(config, identities, header),
        }
    }

    /// A restore with identities and no password: only the sealed faces come back.
    pub fn sealed_only(config: &Config, identities: &[Identity], header: &StreamHeader) -> Result<Self> {
        Self {
            signed: SignedRecords::of(header, config.signer.as_ref(), &config.revoked)?,
            veil: None,
            finder: None,
            config: config.clone(),
            keying: header.keying,
            upright_turns: header.upright_turns,
            vault: None,
            face_codec: None,
            waiting: 0,
            opened: 0,
            skipped: None,
        }
        .unseal_with(identities, header)
    }

    /// Also opens the stream's sealed faces with `identities`: where a face was sealed, its
    /// original pixels replace whatever the password restore gives. Fails, before any frame,
    /// when the stream has no sealed faces or the identities are not (enough of) its recipients
    /// (the password's own opening, if it had one, is not kept: the identities were asked for).
    pub fn unseal_with(mut self, identities: &[Identity], header: &StreamHeader) -> Result<Self> {
        let envelope = header
            .sealed
            .as_ref()
            .context("this output has no sealed faces (it was made without recipients or --seal-password)")?;
        let mut vault = FaceVault::open(envelope, identities, header.digest())?;
        if let Some(codec) = &self.face_codec {
            vault.decode_with(codec.clone());
        }
        self.vault = Some(vault);
        Ok(self)
    }

    /// Whether the frames went through a lossy codec (the default, as every video does) or not
    /// (a PNG): the password restore then unbends the surrogate's darkest and brightest values
    /// with a limited slope and leaves out the fine chroma detail 4:2:0 kept too little of, or
    /// restores exactly. See [`crate::model::SdnModel::set_lossy_input`].
    pub fn lossy_input(mut self, lossy: bool) -> Self {
        if let Some(veil) = &mut self.veil {
            veil.set_lossy_input(lossy);
        }
        self
    }

    /// Decodes faces sealed as video (the default layout) with `codec`; without one, such a
    /// face fails to open, saying so. Photos' faces are sealed losslessly and need none.
    pub fn decode_faces_with(mut self, codec: Arc<dyn FaceCodec>) -> Self {
        if let Some(vault) = &mut self.vault {
            vault.decode_with(codec.clone());
        }
        self.face_codec = Some(codec);
        self
    }

    /// In a signed output, the numbers of the last two records restored where they did not
    /// follow each other (frames cut out or lost on the way, repeated or out of order), once.
    pub fn take_skipped(&mut self) -> Option<(u64, u64)> {
        self.skipped.take()
    }

    /// In a signed output, how its signed `end` stands against the records restored so far.
    pub fn end_check(&self, end: &StreamEnd) -> Option<EndCheck> {
        self.signed.as_ref().map(|signed| signed.end_check(end))
    }

    /// How many sealed faces were left as they were so far, because the restore joined their
    /// face video midway (or a frame before them was lost) and waits for its next keyframe.
    pub fn faces_waiting(&self) -> u64 {
        self.waiting
    }

    /// How many sealed faces were opened back into place so far.
    pub fn faces_opened(&self) -> u64 {
        self.opened
    }

    /// Whether this restore opens sealed faces (it was given identities, or the password they
    /// were sealed to). Where it does not, a sealed face comes back from its surrogate like any
    /// other.
    pub fn opens_seals(&self) -> bool {
        self.vault.is_some()
    }

    /// Restores one frame from its record: the sealed faces opened back into place, and the
    /// password restore of the others (not sealed, or waiting for their face video's next
    /// keyframe). A sealed face that does not open fails the frame, naming it.
    ///
    /// The password does not restore a face its seal then gives back whole (what is sealed is
    /// all the effect may rewrite): on 05_crowd_mot20-08_960x366.mp4 anonymized with 24 faces a
    /// frame, that took 21 of a restore's 26 seconds. A face that overlaps one the password restores still
    /// goes through it too, so that the overlapping faces are undone in their order as before.
    pub fn process_record(&mut self, frame: &mut FrameMut, record: &FrameRecord) -> Result<usize> {
        if let Some(signed) = &mut self.signed
            && let Some(skipped) = signed.check(record)?
        {
            self.skipped = Some(skipped);
        }
        let places: Vec<Option<(Region, FacePlace)>> =
            record.faces.iter().enumerate().map(|(i, face)| face_place(frame, face, record.frame, record.pts, i)).collect();
        let mut opened: Vec<Option<OpenedFace>> = Vec::with_capacity(record.faces.len());
        for (index, face) in record.faces.iter().enumerate() {
            let (Some(vault), Some(sealed)) = (&mut self.vault, &face.sealed) else {
                opened.push(None);
                continue;
            };
            let (region, place) =
                places[index].as_ref().with_context(|| format!("frame {}: face {index} lies outside the frame", record.frame))?;
            let original = vault.open_face(frame.format(), *region, place, &sealed.0)?;
            self.waiting += u64::from(original.is_none());
            self.opened += u64::from(original.is_some());
            opened.push(original);
        }
        let by_password = |i: usize| opened[i].is_none();
        let overlaps = |i: usize, j: usize| matches!((&places[i], &places[j]), (Some((a, _)), Some((b, _))) if a.overlaps(b));
        let others: Vec<FaceRecord> = (0..record.faces.len())
            .filter(|&i| by_password(i) || (0..record.faces.len()).any(|j| j != i && by_password(j) && overlaps(i, j)))
            .map(|i| record.faces[i].clone())
            .collect();
        self.process(frame, Some(&others))?;
        for original in opened.into_iter().flatten() {
            original.write_into(frame)?;
        }
        Ok(record.faces.len())
    }

    /// Restores the faces of one frame: exactly as `recorded` when the stream recorded them,
    /// otherwise where the anonymized faces are detected again.
    pub fn process(&mut self, frame: &mut FrameMut, recorded: Option<&[FaceRecord]>) -> Result<usize> {
        let Some(veil) = &mut self.veil else {
            // Identities alone: the sealed faces are all there is to restore.
            return recorded.map(<[FaceRecord]>::len).context("a restore without a password needs the stream's records");
        };
        let faces = match recorded {
            Some(faces) => faces.to_vec(),
            None => {
                if self.keying == Keying::Track {
                    // The faces' keys hang on the track ids only the records carry.
                    return Err(Error::UnrecordedFrame.into());
                }
                if self.finder.is_none() {
                    // Every frame is searched: a surrogate face left unrestored is a visible loss.
                    self.finder = Some(FaceFinder::new(&Config { detect_every: 1, ..self.config.clone() })?);
                }
                let faces = self.finder.as_mut().expect("finder was just set").detect(frame)?;
                // A surrogate lies as its face lay: its own landmarks give back the turn.
                let turn = |f: &Face| if self.upright_turns { upright::nearest_clear_turn(f.landmarks.as_ref()) } else { 0 };
                faces.iter().map(|f| FaceRecord::new(veil.crop_for(&f.bbox), 0, f.landmarks).turned(turn(f))).collect()
            }
        };
        veil.apply(frame, &faces)?;
        Ok(faces.len())
    }
}
