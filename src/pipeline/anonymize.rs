//! The anonymize direction: faces found in a frame replaced in place, each recorded (and sealed
//! or signed where the stream asks) so that a restore can find and undo it.

use std::time::Instant;

use anyhow::{Context, Result, ensure};

use super::{Fallback, FrameOutcome, Signing, face_place, open_sdn, required};
use crate::config::Config;
use crate::faces::effects::Mode;
use crate::faces::geometry::BBox;
use crate::faces::steady::SteadyCrops;
use crate::faces::track::Track;
use crate::faces::upright::UprightTurns;
use crate::frame::FrameMut;
use crate::model::Direction;
use crate::model::keys::{self, EarlyKey, SecretKey};
use crate::secrets::{FaceVault, Recipient, SealedLayout, SigningKey};
use crate::stream::end::StreamEnd;
use crate::stream::header::{FaceRecord, FrameRecord, SealedFace, StreamHeader};
use crate::stream::look::Look;
use crate::timing::StageTimes;
use crate::veil::Veil;

/// Replaces the faces of one stream (or image) with the veil's effect and keeps the record a
/// restore needs. Where the faces are comes from a [`FaceFinder`](crate::finder::FaceFinder),
/// which front ends may run on another thread, ahead of this.
pub struct Anonymizer {
    veil: Veil,
    header: Option<StreamHeader>,
    /// Seals each face's original pixels to the stream's recipients, when it has any.
    vault: Option<FaceVault>,
    /// Signs each frame's record where the header was signed, bound to the header's digest.
    signing: Option<(SigningKey, [u8; 32])>,
    /// Still faces keep their crop square, so that their surrogate does not flicker.
    steady: SteadyCrops,
    /// Faces lying on their side go to the model stood upright, each track by its own turn.
    upright: UprightTurns,
    frames: u64,
    /// The last frame's presentation time, for the stream's signed end.
    last_pts: Option<u64>,
}

impl Anonymizer {
    /// Opens the model for the sdn mode and derives this output's key from the password with a
    /// fresh random salt.
    pub fn new(config: &Config, password: Option<&[u8]>) -> Result<Self> {
        Self::with_early_key(config, password, None)
    }

    /// As [`Self::new`], taking the key whose derivation `early` began for this password where it
    /// fits (the sdn mode, the config's cost parameters); its salt is then the stream's.
    pub fn with_early_key(config: &Config, password: Option<&[u8]>, early: Option<EarlyKey>) -> Result<Self> {
        if config.mode != Mode::Sdn {
            return Ok(Self::with_veil(Veil::classic(config.mode).with_mask_scale(config.mask_scale), None));
        }
        let password = required(password)?;
        let early = early.filter(|key| *key.kdf() == config.kdf);
        let salt = early.as_ref().map_or_else(keys::random_salt, |key| *key.salt());
        let derive = || match early {
            Some(key) => key.finish(),
            None => SecretKey::derive(password, &salt, &config.kdf),
        };
        let veil = open_sdn(config, Direction::Anonymize, derive, config.keying)?;
        let header = StreamHeader::new(veil.model().expect("sdn veil has a model"), config.kdf, &salt, config.keying);
        Ok(Self::with_veil(veil, Some(header)))
    }

    /// Opens the model for the sdn mode with a random secret that no one keeps, for an output
    /// sealed to recipients ([`Self::seal_to`]) on a machine that holds no secret: no password
    /// then undoes its surrogates, and its header says so, so that a restore asks for an
    /// identity instead of drawing a third face.
    pub fn keyed_at_random(config: &Config) -> Result<Self> {
        ensure!(config.mode == Mode::Sdn, "only the sdn mode is keyed");
        let veil = open_sdn(config, Direction::Anonymize, || Ok(SecretKey::random()), config.keying)?;
        let model = veil.model().expect("sdn veil has a model");
        let header = StreamHeader::new(model, config.kdf, &keys::random_salt(), config.keying).keyed_at_random();
        Ok(Self::with_veil(veil, Some(header)))
    }

    fn with_veil(mut veil: Veil, header: Option<StreamHeader>) -> Self {
        if let Some(header) = &header {
            veil.set_upsampling(header.upsampling());
        }
        let upright = UprightTurns::default();
        Self { veil, header, vault: None, signing: None, steady: SteadyCrops::default(), upright, frames: 0, last_pts: None }
    }

    /// Seals every face's original pixels to `recipients`, any `threshold` of whom can open
    /// them together, and to the stream's password where `to_password` is set, in `layout`,
    /// and signs the header and each record with `signing` where given; call before the first
    /// frame. Needs the sdn mode's header to travel in.
    pub fn seal_to(
        &mut self,
        recipients: &[Recipient],
        threshold: usize,
        to_password: bool,
        layout: SealedLayout,
        signing: Option<Signing<'_>>,
    ) -> Result<()> {
        ensure!(self.frames == 0, "sealing must be set up before the first frame");
        let random = self.header.as_ref().is_some_and(|h| h.keyed_at_random);
        let wrap_key = self.veil.password_wrap_key().filter(|_| to_password && !random);
        ensure!(
            !to_password || wrap_key.is_some(),
            "faces are sealed to the sdn mode's password, which an output keyed at random or made with a one-way effect has not"
        );
        let (key, envelope) = FaceVault::create(recipients, threshold, wrap_key.as_deref())?;
        // A one-way effect has no header of its own: its sealed faces get one to be bound to.
        let header = self.header.take().or_else(|| self.veil.one_way().map(StreamHeader::one_way));
        let header = header.context("sealing is set up once, before the first frame")?.with_sealed(envelope);
        let header = match signing {
            Some(Signing { key, pictures }) => {
                StreamHeader { pictures_signed: pictures, end_signed: true, ..header }.signed_with(key)
            }
            None => header,
        };
        let digest = header.digest();
        self.signing = signing.map(|s| (s.key.clone(), digest));
        self.vault = Some(FaceVault::new(key, digest, layout));
        self.header = Some(header);
        Ok(())
    }

    /// The signed end of the stream so far, for a writer to put after its last frame where the
    /// stream is signed ([`crate::stream::end`]).
    pub fn end(&self) -> Option<StreamEnd> {
        let (key, header) = self.signing.as_ref()?;
        Some(StreamEnd::signed_with(self.frames, self.last_pts, key, header))
    }

    /// A checkpoint of the stream so far, signed while it goes on, where it is signed: it had
    /// at least the frames processed up to now ([`crate::stream::end`]).
    pub fn checkpoint(&self) -> Option<StreamEnd> {
        let (key, header) = self.signing.as_ref()?;
        Some(StreamEnd::checkpoint_with(self.frames, self.last_pts, key, header))
    }

    /// How many frames have been processed.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The header a restore needs (sdn mode only).
    pub fn header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// Anonymizes the faces `tracks` cover in `frame`, the next frame of the stream.
    pub fn process(&mut self, frame: &mut FrameMut, tracks: &[Track], pts: Option<u64>) -> Result<FrameOutcome> {
        // Landmarks describe the face's geometry, which identifies people: they travel in the
        // clear records only for a model that needs them to restore.
        let takes_landmarks = self.veil.model().is_some_and(|m| m.landmark_mean().is_some());
        let turns = self.header.as_ref().is_some_and(|h| h.upright_turns);
        let faces: Vec<FaceRecord> = tracks
            .iter()
            .map(|t| {
                let square = self.steady.square(t.id, self.veil.crop_for(&t.bbox));
                let turn = if turns { self.upright.turn(t.id, t.landmarks.as_ref()) } else { 0 };
                FaceRecord::new(square, t.id, t.landmarks.filter(|_| takes_landmarks)).turned(turn)
            })
            .collect();
        let ids: Vec<u64> = tracks.iter().map(|t| t.id).collect();
        self.steady.keep_only(&ids);
        self.upright.keep_only(&ids);
        let mut faces = if self.veil.model().is_some() { self.once_each(tracks, faces) } else { faces };
        if let Some(vault) = &mut self.vault {
            // Before the effect: what is sealed is what the camera saw. A face that cannot be
            // sealed fails the frame, whose faces are then painted over (fail closed).
            let start = Instant::now();
            for (index, face) in faces.iter_mut().enumerate() {
                if let Some((region, place)) = face_place(frame, face, self.frames, pts, index) {
                    face.sealed = Some(SealedFace(vault.seal(frame, region, &place)?));
                }
            }
            self.veil.add_seal_time(start.elapsed());
        }
        self.veil.apply(frame, &faces)?;
        let record = self.record(frame, pts, faces);
        Ok(FrameOutcome { record, tracks: tracks.to_vec(), fallback: None })
    }

    /// The records of `tracks` (one each, in order), those of boxes centred on a larger face
    /// merged into its record, whose square then covers all their boxes. Two tracks on one face
    /// (CenterFace, made for upright faces, boxes a face lying on its side twice now and then,
    /// the boxes 0.29 apart by IoU where its suppression stops at 0.3, one of them read the
    /// other way round) would have the SDN change much of it twice, the second time a surrogate,
    /// whose restore multiplies the rounding and the codec's error twice (and, before faces were
    /// changed one after the other, did not undo it at all: coloured noise). A one-way
    /// effect is only repeated, and keeps every track; in the sdn mode a merged face's seal is
    /// its square over both boxes.
    fn once_each(&self, tracks: &[Track], mut faces: Vec<FaceRecord>) -> Vec<FaceRecord> {
        let mut order: Vec<usize> = (0..tracks.len()).collect();
        order.sort_by(|&a, &b| tracks[b].bbox.area().total_cmp(&tracks[a].bbox.area()).then(tracks[a].id.cmp(&tracks[b].id)));
        // Each face kept, with the union of the boxes merged into it where there are any: a box
        // is then measured against the square over that union, as it will be cut.
        let mut kept: Vec<(usize, Option<BBox>)> = Vec::with_capacity(order.len());
        for i in order {
            let square =
                |(j, merged): &(usize, Option<BBox>)| merged.map_or_else(|| faces[*j].crop(), |b| self.veil.crop_for(&b));
            match kept.iter_mut().find(|k| self.veil.centred_on(&square(k), faces[k.0].turn, &tracks[i].bbox)) {
                Some((j, merged)) => *merged = Some(merged.unwrap_or(tracks[*j].bbox).union(&tracks[i].bbox)),
                None => kept.push((i, None)),
            }
        }
        let mut keep = vec![false; faces.len()];
        for (j, merged) in kept {
            keep[j] = true;
            if let Some(bbox) = merged {
                let (face, track) = (&faces[j], &tracks[j]);
                let landmarks = track.landmarks.filter(|_| face.landmarks.is_some());
                faces[j] = FaceRecord::new(self.veil.crop_for(&bbox), track.id, landmarks).turned(face.turn);
            }
        }
        faces.into_iter().zip(keep).filter_map(|(face, keep)| keep.then_some(face)).collect()
    }

    /// The record of `frame` as it leaves, the next of the stream: its look, and its signature
    /// where the stream is signed.
    fn record(&mut self, frame: &FrameMut, pts: Option<u64>, faces: Vec<FaceRecord>) -> FrameRecord {
        let mut record = FrameRecord::new(self.frames, pts, faces);
        if let Some((key, header)) = &self.signing {
            record = record.signed_with(key, header);
        }
        self.frames += 1;
        self.last_pts = pts;
        FrameRecord { look: Some(Look::of(frame)), ..record }
    }

    /// Anonymizes one frame and fails closed: a frame whose faces could not be found (`found`
    /// is an error) leaves blanked, and faces the effect could not change leave painted black.
    /// Nothing here lets a face through; the outcome says which fallback, if any, was taken.
    pub fn process_fail_closed(&mut self, frame: &mut FrameMut, found: Result<Vec<Track>>, pts: Option<u64>) -> FrameOutcome {
        let (tracks, fallback) = match found {
            Ok(tracks) => match self.process(frame, &tracks, pts) {
                Ok(outcome) => return outcome,
                Err(e) => {
                    // The faces of a batch are written only once the batch has every result,
                    // but a frame whose faces overlap runs batches one after another
                    // (`veil::waves`), and a later one may fail after an earlier one was written:
                    // each face square is painted over whole, whichever it holds.
                    for track in &tracks {
                        let b = self.veil.crop_for(&track.bbox).bounds();
                        if let Some(region) = frame.align_region(b.x0, b.y0, b.x1, b.y1) {
                            frame.fill_black(region).expect("an aligned region inside the frame");
                        }
                    }
                    (tracks, Fallback::FacesFilled(e))
                }
            },
            Err(e) => {
                frame.fill_black(frame.whole()).expect("the whole frame is aligned");
                (Vec::new(), Fallback::Blanked(e))
            }
        };
        let record = self.record(frame, pts, Vec::new());
        FrameOutcome { record, tracks, fallback: Some(fallback) }
    }

    /// Time spent cropping, in the model or effect, and blending, so far.
    pub fn times(&self) -> &StageTimes {
        self.veil.times()
    }
}
