//! Where the time of each frame goes, accumulated per stage for `faceveil bench`.

use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct StageTimes {
    /// Whole-frame downscale to the detector's size, and the scene-cut grid.
    pub downscale: Duration,
    pub detect: Duration,
    pub track: Duration,
    /// Sealing each face's original pixels for a sealed restore (`--recipient`,
    /// `--seal-password`), before the effect changes them.
    pub seal: Duration,
    /// Cutting and resampling the face crops into the model's batch.
    pub crop: Duration,
    pub model: Duration,
    /// Effect (classic modes) and feathered blending back into the frame.
    pub blend: Duration,
    pub frames: u64,
    pub detections: u64,
    /// Detections a scene cut called for between the scheduled ones (counted in `detections` too).
    pub cut_detections: u64,
    /// Detections of the part of the frame that changed only (counted in `detections` too).
    pub region_detections: u64,
    /// Scheduled detections left out because nothing had changed (not in `detections`).
    pub skipped_detections: u64,
    /// Large, nearly still faces that sat a scheduled detection out (`finder::RESTING_FACE_SIDE`).
    pub rested_faces: u64,
    /// Scheduled detections put off a frame because every face in view was sure
    /// (`finder::SURE_SCORE_FACTOR`; not in `detections`).
    pub sure_waits: u64,
    pub faces: u64,
}

impl StageTimes {
    pub fn add(&mut self, other: &StageTimes) {
        self.downscale += other.downscale;
        self.detect += other.detect;
        self.track += other.track;
        self.seal += other.seal;
        self.crop += other.crop;
        self.model += other.model;
        self.blend += other.blend;
        self.frames += other.frames;
        self.detections += other.detections;
        self.cut_detections += other.cut_detections;
        self.region_detections += other.region_detections;
        self.skipped_detections += other.skipped_detections;
        self.rested_faces += other.rested_faces;
        self.sure_waits += other.sure_waits;
        self.faces += other.faces;
    }

    /// (name, total) for each stage, in pipeline order.
    pub fn stages(&self) -> [(&'static str, Duration); 7] {
        [
            ("downscale", self.downscale),
            ("detect", self.detect),
            ("track", self.track),
            ("seal", self.seal),
            ("crop", self.crop),
            ("sdn/effect", self.model),
            ("blend", self.blend),
        ]
    }
}

/// Adds the time since `start` to `slot` and returns now.
pub fn lap(slot: &mut Duration, start: Instant) -> Instant {
    let now = Instant::now();
    *slot += now - start;
    now
}
