//! Where the faces of a stream are: the detector on its schedule (every few frames, on scene
//! cuts, and between looks at the whole frame only where the picture changed) and the tracker
//! between detections. Front ends run it on the frames they anonymize, or on another thread
//! ahead of them (the `faceveildetect` element).

use std::time::Instant;

use anyhow::Result;

use crate::config::Config;
use crate::faces::changes::{CellMeans, ChangeMap, Look};
use crate::faces::cuts::SceneCuts;
use crate::faces::detect::{DetectionWorker, DetectorSettings, Face};
use crate::faces::geometry::BBox;
use crate::faces::track::{Track, Tracker};
use crate::frame::FrameMut;
use crate::timing::{StageTimes, lap};

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

/// With detection every few frames, the whole frame is looked at at least this often (frames),
/// whatever changed: the scheduled detections between look only where the picture changed
/// (`faces::changes`), and this catches what changes too slowly for that to see.
pub const WHOLE_FRAME_EVERY: u32 = 30;

/// Detection every few frames plus tracking in between, and at once on a scene cut.
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
