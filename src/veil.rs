//! Finding faces in a frame and replacing them: the work every front end (elements, CLI) shares.

use anyhow::Result;
use ndarray::{Array2, Array4, ArrayView1, ArrayView2};
use zeroize::{Zeroize, Zeroizing};

use crate::config::Config;
use crate::faces::blend::{BlendShape, CropContext, FaceBands, FineDetail};
use crate::faces::changes::{CellMeans, ChangeMap, Look};
use crate::faces::cuts::SceneCuts;
use crate::faces::detect::{DetectionWorker, DetectorSettings, Face, LANDMARK_VALUES};
use crate::faces::effects::{self, Mode};
use crate::faces::geometry::{BBox, CropFraming, CropSquare};
use crate::faces::resample::MapCache;
use crate::faces::track::{Track, Tracker};
use crate::frame::{FrameMut, Region};
use crate::model::keys::{Keying, SecretKey};
use crate::model::{Direction, SdnModel};
use crate::stream::header::FaceRecord;
use crate::timing::{StageTimes, lap};
use std::time::Instant;

/// What the detection threshold is multiplied by when detection skips frames. A face at the edge
/// of detectability scores around the threshold from frame to frame (a crowd behind a speaker:
/// 0.31-0.48 on one frame, 0.52-0.56 on the next), so detection on every frame covers it from
/// its first frame above the threshold, while a detection every few frames that saw it just
/// below would leave it uncovered until the next. Started from a lower score on the detection
/// frames, the track covers it in between. With the default threshold, 0.4 becomes 0.24. At 0.3
/// (a factor of 0.75) one face of the crowd clip, scoring 0.27-0.28 on the frames before, was
/// left uncovered in one frame with detection every 2nd frame; at 0.24 none is, on any of
/// scripts/leaks.py's five clips. The extra boxes are faces too small or turned to clear 0.4, and
/// some that are not faces, which get covered too (CenterFace at 640 px, every 6th frame, boxes a
/// frame at 0.4 / 0.3 / 0.24: the Hamilton clip 2.7 / 3.2 / 3.5, the crowd clip 0.4 / 1.6 / 4.6,
/// the sample, juggler and selfie clips none more).
pub const SCHEDULED_THRESHOLD_FACTOR: f32 = 0.6;

/// Detection every few frames plus tracking in between, and at once on a scene cut.
/// With detection every few frames, the whole frame is looked at at least this often (frames),
/// whatever changed: the scheduled detections between look only where the picture changed
/// (`faces::changes`), and this catches what changes too slowly for that to see.
pub const WHOLE_FRAME_EVERY: u32 = 30;

pub struct FaceFinder {
    worker: DetectionWorker,
    settings: DetectorSettings,
    tracker: Tracker,
    detect_every: u32,
    cuts: SceneCuts,
    /// Where the picture changed since faces were last looked for there.
    changes: ChangeMap,
    /// Frames since the last detection; `None` until the first.
    since_detection: Option<u32>,
    /// Frames since the last detection of the whole frame; `None` until the first.
    since_whole: Option<u32>,
    /// Width and height of the frames the tracks belong to.
    frame_size: Option<(usize, usize)>,
    times: StageTimes,
}

impl FaceFinder {
    /// Starts the detector `config` asks for (on its own thread) with an empty tracker.
    pub fn new(config: &Config) -> Result<Self> {
        let mut settings = config.detector.clone();
        if config.detect_every > 1 {
            settings.threshold *= SCHEDULED_THRESHOLD_FACTOR;
        }
        Ok(Self {
            worker: DetectionWorker::spawn(settings.clone(), config.runtime.clone())?,
            settings,
            tracker: Tracker::new(config.tracker.clone()),
            detect_every: config.detect_every.max(1),
            cuts: SceneCuts::default(),
            changes: ChangeMap::default(),
            since_detection: None,
            since_whole: None,
            frame_size: None,
            times: StageTimes::default(),
        })
    }

    /// Plain detection on one frame, in frame coordinates.
    pub fn detect(&mut self, frame: &FrameMut) -> Result<Vec<Face>> {
        let t = Instant::now();
        let (small, scale) = frame.downscaled_rgb(self.settings.max_side);
        let t = lap(&mut self.times.downscale, t);
        let faces = self.worker.detect(small, scale)?;
        lap(&mut self.times.detect, t);
        self.times.detections += 1;
        Ok(faces)
    }

    pub fn times(&self) -> &StageTimes {
        &self.times
    }

    /// The faces to cover in this frame: a fresh detection on every `detect_every`-th frame and
    /// on the first frame of a new shot (a face that comes with a cut has no track to follow it),
    /// the tracker's predictions in between. With `detect_every` above 1, a scheduled detection
    /// looks only at the part of the frame that changed since faces were last looked for there,
    /// and skips when nothing did; the whole frame on a cut and at least every
    /// [`WHOLE_FRAME_EVERY`] frames. A frame of another size starts afresh (tracks in the old
    /// geometry would cover the wrong places), with a detection.
    pub fn find(&mut self, frame: &FrameMut) -> Result<&[Track]> {
        let size = (frame.width(), frame.height());
        if self.frame_size.is_some_and(|s| s != size) {
            self.reset();
        }
        self.frame_size = Some(size);
        self.since_whole = self.since_whole.map(|n| n + 1);
        let due = self.since_detection.is_none_or(|n| n + 1 >= self.detect_every);
        // Detecting every frame leaves nothing for a cut to change; otherwise the grid is taken
        // on every frame, so that the comparison is always with the frame before.
        let t = Instant::now();
        let cut = self.detect_every > 1 && self.cuts.is_cut(frame);
        lap(&mut self.times.downscale, t);
        if due || cut {
            if cut && !due {
                self.times.cut_detections += 1;
            }
            let whole = cut || self.since_whole.is_none_or(|n| n >= WHOLE_FRAME_EVERY);
            self.look(frame, whole)?;
            self.since_detection = Some(0);
        } else {
            let t = Instant::now();
            self.tracker.predict();
            lap(&mut self.times.track, t);
            self.since_detection = self.since_detection.map(|n| n + 1);
        }
        Ok(self.tracker.tracks())
    }

    /// A scheduled detection: of the whole frame when `whole` or when detecting every frame,
    /// else of what changed.
    fn look(&mut self, frame: &FrameMut, whole: bool) -> Result<()> {
        if self.detect_every == 1 {
            let faces = self.detect(frame)?;
            let t = Instant::now();
            self.tracker.update(&faces);
            lap(&mut self.times.track, t);
            return Ok(());
        }
        let t = Instant::now();
        let (small, scale) = frame.downscaled_rgb(self.settings.max_side);
        let cells = CellMeans::of(&small);
        let look = if whole {
            Look::Whole
        } else {
            let faces: Vec<BBox> = self.tracker.tracks().iter().map(|t| t.bbox.scaled(1.0 / scale)).collect();
            self.changes.plan(&cells, &faces, small.width, small.height)
        };
        let t = lap(&mut self.times.downscale, t);
        match look {
            Look::Nothing => {
                self.tracker.hold();
                self.times.skipped_detections += 1;
                lap(&mut self.times.track, t);
            }
            Look::Whole => {
                let faces = self.worker.detect(small, scale)?;
                let t = lap(&mut self.times.detect, t);
                self.times.detections += 1;
                self.tracker.update(&faces);
                self.changes.looked_at(cells, None);
                self.since_whole = Some(0);
                lap(&mut self.times.track, t);
            }
            Look::Regions(regions) => {
                let mut faces = Vec::new();
                for r in &regions {
                    let found = self.worker.detect(small.cropped(r.x, r.y, r.width, r.height), scale)?;
                    faces.extend(found.iter().map(|f| f.shifted(r.x as f32 * scale, r.y as f32 * scale)));
                }
                let t = lap(&mut self.times.detect, t);
                self.times.detections += 1;
                self.times.region_detections += 1;
                let boxes: Vec<BBox> = regions.iter().map(|r| r.bbox().scaled(scale)).collect();
                self.tracker.update_within(&faces, &boxes);
                self.changes.looked_at(cells, Some(&regions));
                lap(&mut self.times.track, t);
            }
        }
        Ok(())
    }

    /// Feeds detections made elsewhere (e.g. upstream region-of-interest metas) to the tracker.
    pub fn observe(&mut self, faces: &[Face]) -> &[Track] {
        self.tracker.update(faces);
        self.since_detection = Some(0);
        self.tracker.tracks()
    }

    /// Forgets all tracks (a new stream, an unrelated image, a reconnected source).
    pub fn reset(&mut self) {
        self.tracker.reset();
        self.cuts.reset();
        self.changes.reset();
        self.since_detection = None;
        self.since_whole = None;
        self.frame_size = None;
    }
}

/// The SDN with a stream's secret, how it keys faces, and the attribute factors.
pub struct SdnKeyed {
    pub model: SdnModel,
    secret: SecretKey,
    /// The stream's vector, derived once, when every face shares it ([`Keying::Stream`]).
    stream_key: Option<Zeroizing<Vec<f32>>>,
    /// Part of the secret, like the key.
    attributes: Zeroizing<Vec<f32>>,
    /// The batch's key rows, one a face; wiped as they are refilled and when dropped.
    keys: Zeroizing<Vec<f32>>,
}

impl SdnKeyed {
    pub fn new(model: SdnModel, secret: SecretKey, keying: Keying, attributes: Zeroizing<Vec<f32>>) -> Self {
        let stream_key = keying.is_stream().then(|| secret.key_vector(model.spec.key_bits));
        Self { model, secret, stream_key, attributes, keys: Zeroizing::new(Vec::new()) }
    }

    /// Fills the key rows for `tracks`, in the batch's order.
    fn fill_keys(&mut self, tracks: &[u64]) {
        let bits = self.model.spec.key_bits;
        self.keys.zeroize();
        for &track in tracks {
            match &self.stream_key {
                Some(key) => self.keys.extend_from_slice(key),
                None => self.keys.extend_from_slice(&self.secret.key_vector_for_track(track, bits)),
            }
        }
    }
}

enum Effect {
    Sdn(Box<SdnKeyed>),
    Classic(Mode),
}

/// Replaces (or restores) the faces in given crops of a frame.
pub struct Veil {
    effect: Effect,
    framing: CropFraming,
    shape: BlendShape,
    /// The batch's crops ([N, 3, S, S]), reused while N stays the same.
    batch: Array4<f32>,
    /// The batch's landmarks ([N, 10]), for a model that takes them.
    landmarks: Array2<f32>,
    /// The resampling maps of recent crop squares.
    maps: MapCache,
    times: StageTimes,
}

impl Veil {
    /// A one-way classic effect; `mode` must not be [`Mode::Sdn`].
    pub fn classic(mode: Mode) -> Self {
        assert_ne!(mode, Mode::Sdn, "the SDN needs a model; use Veil::sdn");
        Self {
            effect: Effect::Classic(mode),
            framing: CropFraming::default(),
            shape: BlendShape::default(),
            batch: Array4::zeros((0, 3, 0, 0)),
            maps: MapCache::default(),
            landmarks: Array2::zeros((0, LANDMARK_VALUES)),
            times: StageTimes::default(),
        }
    }

    /// The SDN in the direction its model was opened for, framed and blended as it was trained.
    pub fn sdn(keyed: SdnKeyed) -> Self {
        let framing = keyed.model.spec.crop.framing;
        let shape = keyed.model.spec.blend;
        Self {
            effect: Effect::Sdn(Box::new(keyed)),
            framing,
            shape,
            batch: Array4::zeros((0, 3, 0, 0)),
            maps: MapCache::default(),
            landmarks: Array2::zeros((0, LANDMARK_VALUES)),
            times: StageTimes::default(),
        }
    }

    /// Grows or shrinks the blended ellipse (1 = as trained).
    pub fn with_mask_scale(mut self, factor: f32) -> Self {
        self.shape = self.shape.scaled(factor);
        self
    }

    pub fn times(&self) -> &StageTimes {
        &self.times
    }

    pub fn model(&self) -> Option<&SdnModel> {
        match &self.effect {
            Effect::Sdn(k) => Some(&k.model),
            Effect::Classic(_) => None,
        }
    }

    /// The crop this veil would use for a face box.
    pub fn crop_for(&self, bbox: &BBox) -> CropSquare {
        CropSquare::around(bbox, &self.framing)
    }

    /// Applies the effect to every face. A restore undoes faces in reverse order so that where
    /// two faces overlap the one composited last is taken off first.
    pub fn apply(&mut self, frame: &mut FrameMut, faces: &[FaceRecord]) -> Result<()> {
        self.times.frames += 1;
        self.times.faces += faces.len() as u64;
        let times = &mut self.times;
        match &mut self.effect {
            Effect::Classic(mode) => {
                for face in faces {
                    let crop = face.crop();
                    let t = Instant::now();
                    let Some(ctx) = CropContext::read(frame, crop) else { continue };
                    let origin = (ctx.region.x, ctx.region.y);
                    let t = lap(&mut times.crop, t);
                    let out = match mode {
                        Mode::Blur => effects::blur(&ctx.pixels, crop.side),
                        Mode::Pixelate => effects::pixelate(&ctx.pixels, crop.side, origin),
                        Mode::Solid | Mode::Sdn => {
                            let mut img = ctx.pixels.clone();
                            img.data.fill(0);
                            img
                        }
                    };
                    let t = lap(&mut times.model, t);
                    ctx.composite(frame, &self.shape, |x, y| {
                        let p = out.pixel(x - origin.0, y - origin.1);
                        [p[0] as f32, p[1] as f32, p[2] as f32]
                    });
                    lap(&mut times.blend, t);
                }
                Ok(())
            }
            Effect::Sdn(keyed) => {
                let size = keyed.model.input_size();
                let mut order: Vec<&FaceRecord> = faces.iter().collect();
                if keyed.model.direction() == Direction::Restore {
                    order.reverse();
                }
                let t = Instant::now();
                let fine = match keyed.model.direction() {
                    Direction::Anonymize => FineDetail::Keep(keyed.model.detail_kept()),
                    Direction::Restore => FineDetail::Restore(keyed.model.detail_kept()),
                };
                let (shape, maps) = (&self.shape, &mut self.maps);
                let mut split = |ctx: &CropContext| ctx.bands(shape, size, fine, maps);
                // Faces whose crops lie wholly outside the frame have nothing to change.
                let (faces, contexts): (Vec<&FaceRecord>, Vec<CropContext>) =
                    order.into_iter().filter_map(|face| Some((face, CropContext::read(frame, face.crop())?))).unzip();
                let bands: Vec<FaceBands> = contexts.iter().map(&mut split).collect();
                let n = contexts.len();
                if self.batch.dim() != (n, 3, size, size) {
                    self.batch = Array4::zeros((n, 3, size, size));
                    self.landmarks = Array2::zeros((n, LANDMARK_VALUES));
                }
                for (face, slot) in bands.iter().zip(self.batch.outer_iter_mut()) {
                    face.to_tensor(slot);
                }
                // A model that takes landmarks gives their mean for faces without any.
                let mean = keyed.model.landmark_mean();
                if let Some(mean) = mean {
                    for (face, mut row) in faces.iter().zip(self.landmarks.outer_iter_mut()) {
                        row.assign(&ArrayView1::from(&face.landmarks.unwrap_or(mean)));
                    }
                }
                let t = lap(&mut times.crop, t);
                let tracks: Vec<u64> = faces.iter().map(|f| f.track).collect();
                keyed.fill_keys(&tracks);
                let keys = ArrayView2::from_shape((n, keyed.model.spec.key_bits), keyed.keys.as_slice())?;
                let out = keyed.model.run(self.batch.view(), keys, &keyed.attributes, mean.map(|_| self.landmarks.view()))?;
                let t = lap(&mut times.model, t);
                let mut written: Vec<Region> = Vec::with_capacity(n);
                for ((ctx, face), patch) in contexts.into_iter().zip(bands).zip(out.outer_iter()) {
                    // A face overlapping one blended before blends over that result, so its
                    // pixels are read again; the others keep what was read for the batch.
                    let face = if written.iter().any(|r| r.overlaps(&ctx.region)) {
                        let Some(again) = CropContext::read(frame, ctx.crop) else { continue };
                        split(&again)
                    } else {
                        face
                    };
                    face.composite(frame, ctx.region, patch);
                    written.push(ctx.region);
                }
                lap(&mut times.blend, t);
                Ok(())
            }
        }
    }
}
