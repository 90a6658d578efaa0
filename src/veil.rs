//! Replacing the faces of a frame (or restoring them): the work every front end (elements, CLI)
//! shares once the faces are found (`finder`).

use anyhow::Result;
use ndarray::{Array2, Array3, Array4, ArrayView1, ArrayView2, Axis, s};
use zeroize::{Zeroize, Zeroizing};

use crate::faces::blend::{BlendShape, CropContext, FaceBands, FineDetail};
use crate::faces::detect::LANDMARK_VALUES;
use crate::faces::effects::{self, Mode};
use crate::faces::geometry::{BBox, CropFraming, CropSquare};
use crate::faces::resample::{MapCache, Upsampling};
use crate::faces::upright;
use crate::frame::FrameMut;
use crate::model::keys::{Keying, SecretKey};
use crate::model::{Direction, SdnModel};
use crate::stream::header::FaceRecord;
use crate::timing::{StageTimes, lap};
use std::time::{Duration, Instant};

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
    batch: Batch,
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
            batch: Batch::default(),
            maps: MapCache::default(),
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
            batch: Batch::default(),
            maps: MapCache::default(),
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

    /// Counts the time the frame's faces took to seal before this veil changed them, so that
    /// one [`StageTimes`] holds every stage of the frame.
    pub fn add_seal_time(&mut self, took: Duration) {
        self.times.seal += took;
    }

    pub fn model(&self) -> Option<&SdnModel> {
        match &self.effect {
            Effect::Sdn(k) => Some(&k.model),
            Effect::Classic(_) => None,
        }
    }

    /// The one-way effect (blur, pixelate, solid); `None` for the SDN.
    pub fn one_way(&self) -> Option<Mode> {
        match &self.effect {
            Effect::Classic(mode) => Some(*mode),
            Effect::Sdn(_) => None,
        }
    }

    /// The key the password's sealed faces are wrapped under ([`SecretKey::password_wrap_key`]);
    /// `None` for a one-way effect, which has no password.
    pub fn password_wrap_key(&self) -> Option<Zeroizing<[u8; 32]>> {
        match &self.effect {
            Effect::Sdn(k) => Some(k.secret.password_wrap_key()),
            Effect::Classic(_) => None,
        }
    }

    /// See [`SdnModel::restore_stream_of`].
    pub fn restore_stream_of(&mut self, graph: &str) {
        if let Effect::Sdn(k) = &mut self.effect {
            k.model.restore_stream_of(graph);
        }
    }

    /// Writes the model's change onto the faces as `upsampling` says: an anonymize as its
    /// header says, a restore as its stream's did.
    pub fn set_upsampling(&mut self, upsampling: Upsampling) {
        if self.maps.upsampling() != upsampling {
            self.maps = MapCache::new(upsampling);
        }
    }

    /// See [`SdnModel::set_lossy_input`].
    pub fn set_lossy_input(&mut self, lossy: bool) {
        if let Effect::Sdn(k) = &mut self.effect {
            k.model.set_lossy_input(lossy);
        }
    }

    /// The crop this veil would use for a face box.
    pub fn crop_for(&self, bbox: &BBox) -> CropSquare {
        CropSquare::around(bbox, &self.framing)
    }

    /// Whether the box `other` is centred on the face cut at `crop` (turned by `turn`): where
    /// its blend weighs at least one half.
    pub fn centred_on(&self, crop: &CropSquare, turn: u8, other: &BBox) -> bool {
        let (x, y) = other.center();
        let half = crop.side / 2.0;
        self.shape.turned(turn).weight((x - crop.cx) / half, (y - crop.cy) / half) >= 0.5
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
                let fine = match keyed.model.direction() {
                    Direction::Anonymize => FineDetail::Keep(keyed.model.detail_kept()),
                    Direction::Restore => FineDetail::Restore(keyed.model.detail_kept()),
                };
                for wave in waves(frame, &self.shape, &order) {
                    let t = Instant::now();
                    // Faces whose crops lie wholly outside the frame have nothing to change.
                    let (faces, bands): (Vec<&FaceRecord>, Vec<FaceBands>) = wave
                        .into_iter()
                        .filter_map(|face| {
                            let shape = self.shape.turned(face.turn);
                            Some((face, FaceBands::read(frame, face.crop(), &shape, size, fine, &mut self.maps)?))
                        })
                        .unzip();
                    lap(&mut times.crop, t);
                    // A model that fits a face cut by the frame's edge to its part inside takes
                    // such a face in a batch of its own; the others share one.
                    let fits = keyed.model.fits_cut_faces();
                    let inside: Vec<Option<Array2<f32>>> = bands.iter().map(|b| if fits { b.inside() } else { None }).collect();
                    let whole: Vec<(&FaceRecord, &FaceBands)> =
                        faces.iter().zip(&bands).zip(&inside).filter(|(_, i)| i.is_none()).map(|((f, b), _)| (*f, b)).collect();
                    self.batch.run(keyed, frame, &whole, None, times)?;
                    for ((face, bands), inside) in faces.iter().zip(&bands).zip(&inside) {
                        if let Some(inside) = inside {
                            self.batch.run(keyed, frame, &[(*face, bands)], Some(inside), times)?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// The model's inputs, reused from run to run and grown to the largest batch yet: a frame whose
/// faces overlap runs several batches of other sizes (`waves`), and the first N rows serve.
struct Batch {
    /// The crops ([N, 3, S, S]).
    crops: Array4<f32>,
    /// The landmarks ([N, 10]), for a model that takes them.
    landmarks: Array2<f32>,
}

impl Default for Batch {
    fn default() -> Self {
        Self { crops: Array4::zeros((0, 3, 0, 0)), landmarks: Array2::zeros((0, LANDMARK_VALUES)) }
    }
}

impl Batch {
    /// Runs `faces` (each with its bands, read from `frame`) through the model in one call and
    /// composites the results into `frame`; `inside`: the grid samples the frame holds of a
    /// batch of one cut face ([`SdnModel::fits_cut_faces`]).
    fn run(
        &mut self,
        keyed: &mut SdnKeyed,
        frame: &mut FrameMut,
        faces: &[(&FaceRecord, &FaceBands)],
        inside: Option<&Array2<f32>>,
        times: &mut StageTimes,
    ) -> Result<()> {
        if faces.is_empty() {
            return Ok(());
        }
        let t = Instant::now();
        let n = faces.len();
        let size = keyed.model.input_size();
        if self.crops.dim().0 < n || self.crops.dim().2 != size {
            self.crops = Array4::zeros((n, 3, size, size));
            self.landmarks = Array2::zeros((n, LANDMARK_VALUES));
        }
        let mut batch = self.crops.slice_mut(s![..n, .., .., ..]);
        let mut landmark_rows = self.landmarks.slice_mut(s![..n, ..]);
        for ((face, bands), slot) in faces.iter().zip(batch.outer_iter_mut()) {
            if face.turn == 0 {
                bands.to_tensor(slot);
            } else {
                let mut lying = Array3::zeros(slot.raw_dim());
                bands.to_tensor(lying.view_mut());
                upright::stand_up(lying.view(), face.turn, slot);
            }
        }
        // The grid the model sees is stood up; so is what the frame holds of it.
        let inside = inside.map(|grid| {
            let lying = grid.view().insert_axis(Axis(0));
            let mut stood = Array4::zeros((1, 1, size, size));
            upright::stand_up(lying, faces[0].0.turn, stood.index_axis_mut(Axis(0), 0));
            stood
        });
        // A model that takes landmarks gives their mean (an upright face's) for faces without
        // any, and a turned face's turned with it.
        let mean = keyed.model.landmark_mean();
        if let Some(mean) = mean {
            for ((face, _), mut row) in faces.iter().zip(landmark_rows.outer_iter_mut()) {
                let points = face.landmarks.map(|l| stood_up_landmarks(l, face.turn)).unwrap_or(mean);
                row.assign(&ArrayView1::from(&points));
            }
        }
        let t = lap(&mut times.crop, t);
        let tracks: Vec<u64> = faces.iter().map(|(f, _)| f.track).collect();
        keyed.fill_keys(&tracks);
        let keys = ArrayView2::from_shape((n, keyed.model.spec.key_bits), keyed.keys.as_slice())?;
        let sides: Vec<f32> = faces.iter().map(|(f, _)| f.crop().side).collect();
        let landmarks = mean.map(|_| landmark_rows.view());
        let out = keyed.model.run(batch.view(), keys, &keyed.attributes, landmarks, &sides, inside.as_ref().map(|i| i.view()))?;
        let t = lap(&mut times.model, t);
        for ((face, bands), patch) in faces.iter().zip(out.outer_iter()) {
            if face.turn == 0 {
                bands.composite(frame, patch);
            } else {
                let mut lying = Array3::zeros(patch.raw_dim());
                upright::lay_down(patch, face.turn, lying.view_mut());
                bands.composite(frame, lying.view());
            }
        }
        lap(&mut times.blend, t);
        Ok(())
    }
}

/// `faces`, in the order they are changed, as batches for the model to run one after another.
/// A face whose region an earlier face's blend reaches goes in a batch after that face's, so
/// that it is read, changed and written after it, as if the faces were changed one at a time:
/// a restore, undoing them in reverse order, then reads each face as its anonymize left it.
/// Reading every face before any was written, as one batch did, gave the model of the face
/// changed second the original over their overlap where its restore got the other's
/// surrogate, and that part came back wrong. Faces whose blends reach no other face's region
/// share a batch: each composite rewrites its region only where its own blend reaches.
fn waves<'a>(frame: &FrameMut, shape: &BlendShape, faces: &[&'a FaceRecord]) -> Vec<Vec<&'a FaceRecord>> {
    let regions: Vec<Option<BBox>> = faces
        .iter()
        .map(|f| {
            let r = CropContext::region(frame, f.crop())?;
            Some(BBox { x0: r.x as f32, y0: r.y as f32, x1: (r.x + r.width) as f32, y1: (r.y + r.height) as f32 })
        })
        .collect();
    let reaches: Vec<BBox> = faces.iter().map(|f| shape.turned(f.turn).reach(f.crop())).collect();
    let mut wave_of: Vec<usize> = Vec::with_capacity(faces.len());
    for (i, region) in regions.iter().enumerate() {
        let after = |j: &usize| region.is_some_and(|r| reaches[*j].overlaps(&r));
        wave_of.push((0..i).filter(after).map(|j| wave_of[j] + 1).max().unwrap_or(0));
    }
    let mut waves: Vec<Vec<&FaceRecord>> = vec![Vec::new(); wave_of.iter().max().map_or(0, |w| w + 1)];
    for (face, wave) in faces.iter().zip(wave_of) {
        waves[wave].push(face);
    }
    waves
}

/// A record's landmarks (x, y pairs in 0..1 of the square) where [`upright::stand_up`] puts them.
fn stood_up_landmarks(points: [f32; LANDMARK_VALUES], turn: u8) -> [f32; LANDMARK_VALUES] {
    let mut out = points;
    for (pair, turned) in points.chunks_exact(2).zip(out.chunks_exact_mut(2)) {
        let (x, y) = upright::stand_up_point((pair[0], pair[1]), turn);
        turned.copy_from_slice(&[x, y]);
    }
    out
}
