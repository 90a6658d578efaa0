//! Where the faces of a stream are: the detector on its schedule (every few frames, on scene
//! cuts, and between looks at the whole frame only where the picture changed) and the tracker
//! between detections. Front ends run it on the frames they anonymize, or on another thread
//! ahead of them (the `faceveildetect` element).

use std::time::Instant;

use anyhow::Result;

use crate::config::Config;
use crate::faces::changes::{CellMeans, ChangeMap, Look, Rect};
use crate::faces::cuts::SceneCuts;
use crate::faces::detect::{DetectionWorker, DetectorSettings, Face, FaceSizeLimits, non_max_suppression};
use crate::faces::geometry::BBox;
use crate::faces::track::{Track, Tracker};
use crate::frame::rgb::RgbImage;
use crate::frame::{FrameMut, downscaled_size};
use crate::timing::{StageTimes, lap};

/// What the detection threshold is multiplied by when detection skips frames, for the faces
/// that then put the finder in doubt (`FaceFinder::in_doubt`). A face at the edge of detectability
/// scores around the threshold from frame to frame (a crowd behind a speaker: 0.31-0.48 on one
/// frame, 0.52-0.56 on the next), so detection on every frame covers it from its first frame
/// above the threshold, while a detection every few frames that saw it just below would leave
/// it uncovered until the next. At 0.3 (a factor of 0.75) one face of the crowd clip, scoring
/// 0.27-0.28 on the frames before, was left uncovered in one frame with detection every 2nd
/// frame; at 0.24 none is, on any of scripts/leaks.py's five clips.
///
/// Such a face is a candidate: it keeps a track alive but starts none, and while there is one
/// the whole frame is looked at on every frame, starting a track for each that clears the
/// threshold, as detection on every frame would. (Until 2026-12-06 the frames between looked
/// again around the candidates only; a look at a part scores a faint face lower than a look at
/// the whole frame, `FaceFinder::in_doubt`.) Until 2026-12-01 every box over 0.24 started a
/// track and was covered: most are heads too small or turned to clear 0.4, and things that are
/// not faces (CenterFace at 640 px, every 6th frame, boxes a frame at 0.4 / 0.3 / 0.24: the
/// Hamilton clip 2.7 / 3.2 / 3.5, the crowd clip 0.4 / 1.6 / 4.6, the sample, juggler and selfie
/// clips none more); on the crowd clip the covered faces grew from 417 to 3,023, and with them
/// the sealed data and the time in the model.
pub const SCHEDULED_THRESHOLD_FACTOR: f32 = 0.6;

/// With detection every few frames, the whole frame is looked at at least this often (frames),
/// whatever changed: the scheduled detections between look only where the picture changed
/// (`faces::changes`), and this catches what changes too slowly for that to see.
pub const WHOLE_FRAME_EVERY: u32 = 30;

/// A face at least this long (pixels of the detector's downscaled frame), found by the scheduled
/// look before and moving less than [`RESTING_SPEED`] of its side a frame, sits the next one
/// out (`ChangeMap::plan`): a video call's face changes in every frame, and taken in whole with
/// its margin it made nearly every look one of the whole frame (07_selfie_portrait: 169 of
/// 173). It is then looked at on every other scheduled detection and stays where it was found
/// in the meantime; the rest of the frame is looked at as before. Where something changed
/// around it, a changed part reaching into its box brings it into the look whole, so a face
/// coming in beside it is found on the frame detection on every frame finds it, and no look
/// cuts the resting face (a cut face's lower half was once taken for a second face); the face
/// itself is held where it was all the same, which keeps its square, and so its surrogate,
/// steadier. A face coming in wholly inside its box waits for the next scheduled look. While a
/// face may rest, looks are not put off for sure faces ([`SURE_SCORE_FACTOR`]): the two savings
/// do not add up, so that a face inside a resting face's box waits no longer than before.
pub const RESTING_FACE_SIDE: f32 = 96.0;

/// See [`RESTING_FACE_SIDE`]: a share of the face's longer side, per frame.
pub const RESTING_SPEED: f32 = 0.02;

/// With detection every few frames, a scheduled look waits one frame more while every face in
/// view is sure: the last look that looked at it found it, scoring at least this many times the
/// threshold (0.7 at the default 0.4), within [`SURE_SURPRISE`] of where the tracker expected
/// it, and no face below the threshold is being watched. The tracker follows such faces well
/// between looks; a face coming in is found one frame later at most. Not while a face may rest
/// ([`RESTING_FACE_SIDE`]): a video call's face that rests keeps its square, and so its
/// surrogate, steadier than one looked at every 3rd frame (the selfie's surrogate changed from
/// frame to frame 0.84 times as much as the original with the rests, 1.03 times with looks put
/// off instead; `scripts/roundtrip.py --detect-interval 2`).
///
/// The sample's large print and small head (scores 0.85-0.95) were looked at 90 times in 180
/// frames, now 73 (the print's face, large, may rest while it slows down); `faceveil anonymize`
/// of it took 2.65 s against 2.96 before (6 runs of each, alternated; 2-core AMD EPYC,
/// 2026-12-04). On scripts/leaks.py's six clips no face is left uncovered in a frame that
/// detection on every frame covered, as with looks every 2nd frame. The crowd and Hamilton
/// clips, whose faces at the edge of detectability score 0.3-0.6, are looked at whole on every
/// frame while such a face is in view (`FaceFinder::in_doubt`).
pub const SURE_SCORE_FACTOR: f32 = 1.75;

/// See [`SURE_SCORE_FACTOR`]: how far from its predicted place ([`Track::surprise`]) the last
/// look may have found a sure face. On the sample, the talking head and the selfie clip the
/// looks found faces within 0.05 of their side of the prediction (most within 0.02); the
/// juggler's face, which darts about, 0.16 on the median look and up to 0.46. Stretched to every
/// 4th frame regardless, `--detect-interval 3` left it uncovered in 3 of 247 frames.
pub const SURE_SURPRISE: f32 = 0.1;

/// A face the detector finds reliably is at least this many pixels (box side) in the image it
/// is given: at 640 px, 0 of 154 faces of 90 px in a 4032 x 3024 photo (14 px there) were
/// found, and at 2048 px all of them (46 px there).
const SURE_FACE_SIDE: f32 = 40.0;

/// The smallest side of the tiles a large photo is searched in.
const PHOTO_TILE: usize = 1024;

/// How much finer each level of a large photo's search is than the one before: as much as keeps
/// the tiles at [`PHOTO_TILE`] (an overlap of a quarter of it), 6.4. A photo up to 6.4 times
/// the detector's size is tiled at full resolution at once; larger ones get levels between,
/// which add at most 1 / 6.4² (2.5%) to the full-resolution level's pixels each.
const PHOTO_LEVEL_STEP: f32 = PHOTO_TILE as f32 / (4.0 * SURE_FACE_SIDE);

/// Detection every few frames plus tracking in between, and at once on a scene cut.
pub struct FaceFinder {
    worker: DetectionWorker,
    settings: DetectorSettings,
    tracker: Tracker,
    detect_every: u32,
    /// The score from which a face is sure ([`SURE_SCORE_FACTOR`]).
    sure_score: f32,
    cuts: SceneCuts,
    /// Where the picture changed since faces were last looked for there.
    changes: ChangeMap,
    /// Frames since the last detection; `None` until the first.
    since_detection: Option<u32>,
    /// Frames since the last detection of the whole frame; `None` until the first.
    since_whole: Option<u32>,
    /// The last scheduled look came while a face was in doubt (`in_doubt`), one frame after the
    /// look before: the surprise it measured ([`SURE_SURPRISE`]) is of one frame's prediction, not
    /// of the schedule's gap, so no look is put off on it. (Put off on it, the juggler's darting
    /// face was left uncovered in one frame at `--detect-interval 3`.)
    looked_in_doubt: bool,
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
            worker: DetectionWorker::spawn(settings.clone(), config.runtime.beside_another_model())?,
            settings,
            tracker: Tracker::new(config.tracker.clone()).starting_at(config.detector.threshold),
            detect_every: config.detect_every.max(1),
            sure_score: config.detector.threshold * SURE_SCORE_FACTOR,
            cuts: SceneCuts::default(),
            changes: ChangeMap::default(),
            since_detection: None,
            since_whole: None,
            looked_in_doubt: false,
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

    /// The faces of one photo, unrelated to the frames before it. The whole picture is looked at
    /// at the detector's size; a photo larger than that is also searched in overlapping tiles of
    /// ever finer copies (`PHOTO_LEVEL_STEP`), down to full resolution, so that faces too
    /// small to survive a downscale (a crowd in a 12 MP photo) are found too.
    /// Each level looks for the faces too small for the one before: a tile overlaps the next by
    /// the side that was sure there (`SURE_FACE_SIDE`), so such a face lies whole in a tile,
    /// and a face a tile cuts is larger, left to the coarser look. Tiles stay near
    /// `PHOTO_TILE`, so the detector's memory does not grow with the photo: one level of
    /// full-resolution tiles overlapping by 40 px at the whole look's scale took 7.75 GB for a
    /// 20000 x 14000 picture (tiles of 5000 px).
    pub fn find_in_photo(&mut self, frame: &FrameMut) -> Result<&[Track]> {
        self.reset();
        let mut faces = self.detect(frame)?;
        let (_, _, mut coarser) = downscaled_size(frame.width(), frame.height(), self.settings.max_side);
        while coarser > 1.0 {
            let scale = (coarser / PHOTO_LEVEL_STEP).max(1.0);
            let t = Instant::now();
            let max_side = (frame.width().max(frame.height()) as f32 / scale).round() as usize;
            let (level, scale) = frame.downscaled_rgb(max_side);
            let t = lap(&mut self.times.downscale, t);
            let overlap = (SURE_FACE_SIDE * coarser / scale).ceil() as usize;
            for tile in tiles(level.width, level.height, PHOTO_TILE.max(4 * overlap), overlap) {
                let found = self.worker.detect(level.cropped(tile.x, tile.y, tile.width, tile.height), scale)?;
                let whole = found.iter().filter(|f| !cut_by_tile(&f.bbox.scaled(1.0 / scale), &tile, level.width, level.height));
                faces.extend(whole.map(|f| f.shifted(tile.x as f32 * scale, tile.y as f32 * scale)));
            }
            lap(&mut self.times.detect, t);
            coarser = scale;
        }
        let faces = non_max_suppression(faces, self.settings.nms_iou);
        self.tracker.update(&faces);
        Ok(self.tracker.tracks())
    }

    pub fn times(&self) -> &StageTimes {
        &self.times
    }

    /// The faces [`Self::find`] misses in a `width` x `height` frame for looking at it
    /// downscaled (see [`DetectorSettings::face_size_limits`]).
    pub fn face_size_limits(&self, width: usize, height: usize) -> Option<FaceSizeLimits> {
        self.settings.face_size_limits(width, height)
    }

    /// The faces to cover in this frame: a fresh detection on every `detect_every`-th frame and
    /// on the first frame of a new shot (a face that comes with a cut has no track to follow it),
    /// the tracker's predictions in between. With `detect_every` above 1, a scheduled detection
    /// looks only at the part of the frame that changed since faces were last looked for there,
    /// and skips when nothing did; the whole frame on a cut and at least every
    /// [`WHOLE_FRAME_EVERY`] frames, and on every frame while a face in view is in doubt
    /// (`in_doubt`). A frame of another size starts afresh (tracks in the old geometry would
    /// cover the wrong places), with a detection.
    pub fn find(&mut self, frame: &FrameMut) -> Result<&[Track]> {
        let size = (frame.width(), frame.height());
        if self.frame_size.is_some_and(|s| s != size) {
            self.reset();
        }
        self.frame_size = Some(size);
        self.since_whole = self.since_whole.map(|n| n + 1);
        let (_, _, scale) = downscaled_size(size.0, size.1, self.settings.max_side);
        let doubt = self.in_doubt(scale);
        let interval = if doubt { 1 } else { self.interval(scale) };
        let due = self.since_detection.is_none_or(|n| n + 1 >= interval);
        // Detecting every frame leaves nothing for a cut to change; otherwise the grid is taken
        // on every frame, so that the comparison is always with the frame before.
        let t = Instant::now();
        let cut = self.detect_every > 1 && self.cuts.is_cut(frame);
        lap(&mut self.times.downscale, t);
        if due || cut {
            if cut && !due {
                self.times.cut_detections += 1;
            }
            let whole = cut || doubt || self.since_whole.is_none_or(|n| n >= WHOLE_FRAME_EVERY);
            self.look(frame, whole, interval)?;
            self.looked_in_doubt = doubt;
            self.since_detection = Some(0);
        } else {
            // A look that would have been due but for sure faces (a cut's look is not one).
            if self.since_detection.is_some_and(|n| n + 1 == self.detect_every) {
                self.times.sure_waits += 1;
            }
            let t = Instant::now();
            self.tracker.predict();
            lap(&mut self.times.track, t);
            self.since_detection = self.since_detection.map(|n| n + 1);
        }
        Ok(self.tracker.tracks())
    }

    /// Whether a face in view is in doubt: detection skips frames, and the last look found a face
    /// scoring under the sure score ([`SURE_SCORE_FACTOR`]) that is not large and still enough to
    /// rest, or one under the threshold (a candidate, [`SCHEDULED_THRESHOLD_FACTOR`]). Then the
    /// whole frame is looked at on every frame, as with detection on every frame.
    /// Faces at the edge of detection come and go from frame to frame, and looks every 2nd frame
    /// at what changed left some uncovered that detection on every frame covers (the CLI's
    /// cli/tests/integration/coverage.rs): on 05_crowd a head of 10 px that cleared the threshold on one skipped
    /// frame only, and one whose square the tracker moved too slowly; on 02_hamilton a face in a
    /// dark corner that did not change, which a look at a part scores lower than a look at the
    /// whole frame does (0.35 on the whole frame, nothing in a crop of 65 px). `faceveil
    /// anonymize` took 29% longer on the crowd and 20% on Hamilton (2026-12-06); clips whose faces
    /// are all sure (video calls, interviews) are looked at as before. With CenterFace's float
    /// model (a GPU, or a CPU with neither VNNI nor AVX2) the crowd's faint heads are fewer,
    /// found as candidates before any track is in doubt; two of them cleared the threshold on a
    /// skipped frame until candidates, too, put the finder in doubt.
    fn in_doubt(&self, scale: f32) -> bool {
        self.detect_every > 1
            && (self.tracker.has_candidates()
                || self.tracker.tracks().iter().any(|t| t.score < self.sure_score && !may_rest(t, scale)))
    }

    /// Frames from one scheduled look to the next: `detect_every`, one more while every face in
    /// view is sure ([`SURE_SCORE_FACTOR`]) and none may rest ([`RESTING_FACE_SIDE`]), in a frame
    /// whose detector's pixels are `scale` of its own. Between looks the tracks stay as the last
    /// look left them, so this holds until the next.
    fn interval(&self, scale: f32) -> u32 {
        let tracks = self.tracker.tracks();
        let sure = self.detect_every > 1
            && !self.looked_in_doubt
            && !tracks.is_empty()
            && tracks
                .iter()
                .all(|t| !t.coasting() && t.score >= self.sure_score && t.surprise() <= SURE_SURPRISE && !may_rest(t, scale));
        self.detect_every + u32::from(sure)
    }

    /// A scheduled detection, `interval` frames after the last: of the whole frame when `whole`
    /// or when detecting every frame, else of what changed.
    fn look(&mut self, frame: &FrameMut, whole: bool, interval: u32) -> Result<()> {
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
        let mut resting: Vec<u64> = Vec::new();
        // Resting faces a changed part reached into: looked at, but held where they were.
        let mut held: Vec<(u64, BBox)> = Vec::new();
        let look = if whole {
            Look::Whole
        } else {
            let (mut faces, mut large) = (Vec::new(), Vec::new());
            for t in self.tracker.tracks() {
                let b = t.bbox.scaled(1.0 / scale);
                if t.missed() + 1 == interval && may_rest(t, scale) {
                    resting.push(t.id);
                    large.push(b);
                } else {
                    faces.push(b);
                }
            }
            // A resting face that a changed part reaches into is looked at after all, so that a
            // face coming in beside it is found; it is held where it was all the same.
            loop {
                let look = self.changes.plan(&cells, &faces, &large, small.width, small.height);
                let Look::Regions(regions) = &look else { break look };
                let reached: Vec<usize> =
                    (0..large.len()).filter(|&i| regions.iter().any(|r| r.bbox().overlaps(&large[i]))).collect();
                if reached.is_empty() {
                    break look;
                }
                for &i in reached.iter().rev() {
                    let b = large.remove(i);
                    faces.push(b);
                    held.push((resting.remove(i), b.scaled(scale)));
                }
            }
        };
        let t = lap(&mut self.times.downscale, t);
        // A box overlapping a held face as much as the detector's own suppression merges is that
        // face, found again.
        let nms_iou = self.settings.nms_iou;
        let leave_held = |faces: &mut Vec<Face>| faces.retain(|f| held.iter().all(|(_, b)| b.iou(&f.bbox) < nms_iou));
        let held_ids: Vec<u64> = held.iter().map(|(id, _)| *id).collect();
        match look {
            Look::Nothing => {
                self.times.rested_faces += resting.len() as u64;
                self.tracker.hold(&resting);
                self.times.skipped_detections += 1;
                lap(&mut self.times.track, t);
            }
            Look::Whole => {
                let mut faces = self.worker.detect(small, scale)?;
                let t = lap(&mut self.times.detect, t);
                self.times.detections += 1;
                if held.is_empty() {
                    self.tracker.update(&faces);
                } else {
                    leave_held(&mut faces);
                    let all = BBox { x0: 0.0, y0: 0.0, x1: frame.width() as f32, y1: frame.height() as f32 };
                    self.tracker.update_within(&faces, &[all], &held_ids);
                }
                self.changes.looked_at(cells, None);
                self.since_whole = Some(0);
                lap(&mut self.times.track, t);
            }
            Look::Regions(regions) => {
                let mut faces = detect_in(&self.worker, &small, &regions, scale)?;
                let t = lap(&mut self.times.detect, t);
                self.times.detections += 1;
                self.times.region_detections += 1;
                let boxes: Vec<BBox> = regions.iter().map(|r| r.bbox().scaled(scale)).collect();
                self.times.rested_faces += resting.len() as u64;
                leave_held(&mut faces);
                resting.extend(held_ids);
                self.tracker.update_within(&faces, &boxes, &resting);
                self.changes.looked_at(cells, Some(&regions));
                lap(&mut self.times.track, t);
            }
        }
        Ok(())
    }

    /// Feeds faces found elsewhere (e.g. faceveildetect's region-of-interest metas) to the
    /// tracker. They are covered whatever their score: faceveildetect keeps a track alive below
    /// its threshold, and its threshold need not be this one's.
    pub fn observe(&mut self, faces: &[Face]) -> &[Track] {
        self.tracker.update_covering(faces);
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
        self.looked_in_doubt = false;
        self.frame_size = None;
    }
}

/// Whether `t` is large and nearly still enough to sit a look out ([`RESTING_FACE_SIDE`]), in a
/// frame whose detector's pixels are `scale` of its own.
fn may_rest(t: &Track, scale: f32) -> bool {
    let b = t.bbox.scaled(1.0 / scale);
    let side = b.width().max(b.height());
    side >= RESTING_FACE_SIDE && t.speed() / scale < RESTING_SPEED * side
}

/// The faces in `regions` of the downscaled frame `small`, in frame coordinates.
fn detect_in(worker: &DetectionWorker, small: &RgbImage, regions: &[Rect], scale: f32) -> Result<Vec<Face>> {
    let mut faces = Vec::new();
    for r in regions {
        let found = worker.detect(small.cropped(r.x, r.y, r.width, r.height), scale)?;
        faces.extend(found.iter().map(|f| f.shifted(r.x as f32 * scale, r.y as f32 * scale)));
    }
    Ok(faces)
}

/// Tiles of `side` pixels (fewer at the right and bottom edges) over a `width` x `height`
/// image, each overlapping the next by `overlap`: a face no larger than the overlap lies whole
/// in at least one of them.
fn tiles(width: usize, height: usize, side: usize, overlap: usize) -> Vec<Rect> {
    let starts = |len: usize| -> Vec<usize> {
        let step = side.saturating_sub(overlap).max(1);
        let mut at: Vec<usize> = (0..).map(|i| i * step).take_while(|&x| x + side < len).collect();
        at.push(len.saturating_sub(side));
        at.dedup();
        at
    };
    let (xs, ys) = (starts(width), starts(height));
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| Rect { x, y, width: side.min(width - x), height: side.min(height - y) }))
        .collect()
}

/// Whether `b` (in the tile's pixels) touches an edge of `tile` that is not the image's own: a
/// face may be cut there, and a tile beside holds it whole.
fn cut_by_tile(b: &BBox, tile: &Rect, width: usize, height: usize) -> bool {
    const TOUCH: f32 = 2.0;
    (tile.x > 0 && b.x0 <= TOUCH)
        || (tile.y > 0 && b.y0 <= TOUCH)
        || (tile.x + tile.width < width && b.x1 >= tile.width as f32 - TOUCH)
        || (tile.y + tile.height < height && b.y1 >= tile.height as f32 - TOUCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_and_overlap_by_as_much_as_asked() {
        let (width, height, side, overlap) = (4032, 3024, 1024, 252);
        let all = tiles(width, height, side, overlap);
        let mut covered = vec![false; width * height];
        for t in &all {
            assert!(t.x + t.width <= width && t.y + t.height <= height, "{t:?} inside the image");
            for y in t.y..t.y + t.height {
                covered[y * width + t.x..y * width + t.x + t.width].fill(true);
            }
        }
        assert!(covered.iter().all(|&c| c), "every pixel in a tile");
        // Any square of the overlap's side lies whole in some tile.
        for (x, y) in [(770, 0), (771, 770), (3779, 2771), (1500, 1500)] {
            assert!(
                all.iter().any(|t| t.x <= x && t.y <= y && x + overlap <= t.x + t.width && y + overlap <= t.y + t.height),
                "a {overlap} px square at ({x}, {y}) is cut by every tile"
            );
        }
        assert_eq!(tiles(800, 600, 1024, 100), vec![Rect { x: 0, y: 0, width: 800, height: 600 }], "a small image is one tile");
    }

    #[test]
    fn a_box_at_a_tile_edge_inside_the_image_is_cut_and_one_at_the_image_edge_is_not() {
        let tile = Rect { x: 1000, y: 0, width: 1024, height: 1024 };
        let b = |x0: f32, y0: f32| BBox { x0, y0, x1: x0 + 50.0, y1: y0 + 50.0 };
        assert!(cut_by_tile(&b(0.0, 500.0), &tile, 3000, 2000), "the left edge is inside the image");
        assert!(cut_by_tile(&b(974.0, 500.0), &tile, 3000, 2000), "so is the right");
        assert!(!cut_by_tile(&b(500.0, 0.0), &tile, 3000, 2000), "the top is the image's own");
        assert!(!cut_by_tile(&b(500.0, 500.0), &tile, 3000, 2000));
    }
}
