//! Keeps faces covered between detections: boxes follow each face smoothly, a face the detector
//! misses for a while stays covered where it was heading, and ids never jump between faces.

use crate::faces::detect::Face;
use crate::faces::geometry::BBox;

#[derive(Clone, Debug)]
pub struct TrackerSettings {
    /// A detection joins a track when their IoU is at least this, or their centres are closer than
    /// `center_match` box sizes (fast motion between detections leaves no overlap).
    pub iou_match: f32,
    pub center_match: f32,
    /// Frames a track stays alive (and covered) without a detection.
    pub max_missed_frames: u32,
    /// Weight of a new detection against the prediction (1 = no smoothing).
    pub position_gain: f32,
    pub size_gain: f32,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self { iou_match: 0.2, center_match: 0.7, max_missed_frames: 15, position_gain: 0.75, size_gain: 0.5 }
    }
}

/// The share of a detected face a track's smoothed box must cover; below it the track jumps to
/// the detection.
const MIN_COVERAGE: f32 = 0.9;

/// One face followed over time.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub id: u64,
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: Option<[(f32, f32); 5]>,
    /// Per-frame motion of the box centre.
    velocity: (f32, f32),
    frames_since_detection: u32,
    /// How far the last detection that joined it lay from where it was expected: see
    /// [`Track::surprise`].
    surprise: f32,
    /// The last detection that looked where this track is did not find it: it is coasting and
    /// ages even where the picture stays still.
    coasting: bool,
}

impl Track {
    /// A face known for this frame only (e.g. a region another element reported): covered like
    /// a track, followed by none (id 0).
    pub fn untracked(face: &Face) -> Self {
        Self {
            id: 0,
            bbox: face.bbox,
            score: face.score,
            landmarks: face.landmarks,
            velocity: (0.0, 0.0),
            frames_since_detection: 0,
            surprise: f32::INFINITY,
            coasting: false,
        }
    }

    pub fn missed(&self) -> u32 {
        self.frames_since_detection
    }

    /// The last detection that looked where it is did not find it.
    pub fn coasting(&self) -> bool {
        self.coasting
    }

    /// How far the last detection that joined it lay from where it was predicted to be: the
    /// distance of the centres or the change of width, the larger, as a share of the face's
    /// longer side. Infinite until a second detection joins it (its motion is not known yet).
    pub fn surprise(&self) -> f32 {
        self.surprise
    }

    /// How far the box centre moves a frame, in pixels.
    pub fn speed(&self) -> f32 {
        self.velocity.0.hypot(self.velocity.1)
    }

    /// One frame on at its velocity, one frame older.
    fn advance(&mut self) {
        let (dx, dy) = self.velocity;
        self.bbox = self.bbox.shifted(dx, dy);
        // Landmarks move with the box, so that they stay where they are on the face.
        self.landmarks = self.landmarks.map(|points| points.map(|(x, y)| (x + dx, y + dy)));
        self.frames_since_detection += 1;
    }

    /// It sat a look out (a large, nearly still face, `finder::RESTING_FACE_SIDE`): it stays
    /// where it is, one frame older. Followed at its velocity instead, a video call's face drifted
    /// between looks and its crop square, held while the face keeps still (`faces::steady`),
    /// moved more: on 07_selfie_portrait the surrogate changed from frame to frame 1.05 times as
    /// much as the original, held 0.86 times, and 0.94 times when the face never rested
    /// (`scripts/roundtrip.py --detect-interval 2`).
    fn rest(&mut self) {
        self.frames_since_detection += 1;
    }

    /// The picture did not change around it since the last detection that looked here: a face
    /// that detection found is still there (back where it was found, the predictions since
    /// undone, and still); one it missed goes on coasting.
    fn hold(&mut self) {
        if self.coasting {
            self.advance();
            return;
        }
        let n = self.frames_since_detection as f32;
        let (dx, dy) = (-self.velocity.0 * n, -self.velocity.1 * n);
        self.bbox = self.bbox.shifted(dx, dy);
        self.landmarks = self.landmarks.map(|points| points.map(|(x, y)| (x + dx, y + dy)));
        self.velocity = (0.0, 0.0);
        self.frames_since_detection = 0;
    }
}

#[derive(Default)]
pub struct Tracker {
    settings: TrackerSettings,
    tracks: Vec<Track>,
    next_id: u64,
    /// The score a detection needs to start a track; below it, one that joins no track is a
    /// candidate.
    start_at: f32,
    /// The last look's detections that joined no track and scored below `start_at`.
    candidates: Vec<Face>,
}

impl Tracker {
    /// A tracker that starts a track for every detection that joins none.
    pub fn new(settings: TrackerSettings) -> Self {
        Self { settings, tracks: Vec::new(), next_id: 1, start_at: 0.0, candidates: Vec::new() }
    }

    /// Starts tracks only for detections that score at least `score`: the others keep tracks
    /// alive, and those that join none are [`Tracker::candidates`].
    pub fn starting_at(self, score: f32) -> Self {
        Self { start_at: score, ..self }
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Faces the last look found that scored too low to start a track and joined none.
    pub fn candidates(&self) -> &[Face] {
        &self.candidates
    }

    pub fn has_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    pub fn reset(&mut self) {
        self.tracks.clear();
        self.candidates.clear();
    }

    /// Advances every track one frame without a detection.
    pub fn predict(&mut self) {
        for t in &mut self.tracks {
            t.advance();
        }
        self.expire();
    }

    /// Drops the tracks that went without a detection for too long.
    fn expire(&mut self) {
        let max = self.settings.max_missed_frames;
        self.tracks.retain(|t| t.frames_since_detection <= max);
    }

    /// Nothing changed around any track since a detection last looked there
    /// (`faces::changes`): each face that detection found stays where it was found, as if
    /// found there again; the `resting` ones (ids, see [`Tracker::update_within`]) stay where
    /// they are.
    pub fn hold(&mut self, resting: &[u64]) {
        for t in &mut self.tracks {
            if resting.contains(&t.id) {
                t.rest();
            } else {
                t.hold();
            }
        }
        self.expire();
    }

    /// Folds in detections made over `regions` only: tracks wholly outside them are held (the
    /// picture did not change around them), the others are matched as in [`Tracker::update`].
    /// The `resting` tracks (ids) sat the look out or are held (`finder::RESTING_FACE_SIDE`):
    /// they stay where they are, and no detection joins them (the finder leaves out the boxes
    /// that are them).
    pub fn update_within(&mut self, detections: &[Face], regions: &[BBox], resting: &[u64]) {
        let (mut rested, others): (Vec<Track>, Vec<Track>) =
            std::mem::take(&mut self.tracks).into_iter().partition(|t| resting.contains(&t.id));
        let (mut outside, inside): (Vec<Track>, Vec<Track>) =
            others.into_iter().partition(|t| !regions.iter().any(|r| t.bbox.overlaps(r)));
        self.tracks = inside;
        self.update(detections);
        for t in &mut outside {
            t.hold();
        }
        for t in &mut rested {
            t.rest();
        }
        self.tracks.extend(outside);
        self.tracks.extend(rested);
        self.expire();
    }

    /// Folds one frame's detections in: first [`Tracker::predict`], then greedy matching by
    /// closeness, then new tracks for unmatched detections that score enough (covered from
    /// their first frame); the rest become the candidates.
    pub fn update(&mut self, detections: &[Face]) {
        self.fold_in(detections, self.start_at);
    }

    /// Folds in faces found elsewhere that are to be covered, whatever their score (another
    /// element's tracks, which it keeps alive below its threshold): each that joins no track
    /// starts one.
    pub fn update_covering(&mut self, faces: &[Face]) {
        self.fold_in(faces, f32::NEG_INFINITY);
    }

    fn fold_in(&mut self, detections: &[Face], start_at: f32) {
        self.predict();
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in detections.iter().enumerate() {
                if let Some(cost) = self.match_cost(&t.bbox, &d.bbox) {
                    pairs.push((cost, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut track_used = vec![false; self.tracks.len()];
        let mut det_used = vec![false; detections.len()];
        for (_, ti, di) in pairs {
            if track_used[ti] || det_used[di] {
                continue;
            }
            track_used[ti] = true;
            det_used[di] = true;
            self.correct(ti, &detections[di]);
        }
        for (t, used) in self.tracks.iter_mut().zip(&track_used) {
            t.coasting = !used;
        }
        self.candidates.clear();
        for (d, _) in detections.iter().zip(det_used).filter(|(_, used)| !used) {
            self.start_or_keep(d, start_at);
        }
    }

    /// A track for a detection that joins none, or a candidate when it scores below `start_at`.
    fn start_or_keep(&mut self, d: &Face, start_at: f32) {
        if d.score < start_at {
            self.candidates.push(d.clone());
            return;
        }
        self.tracks.push(Track {
            id: self.next_id,
            bbox: d.bbox,
            score: d.score,
            landmarks: d.landmarks,
            velocity: (0.0, 0.0),
            frames_since_detection: 0,
            surprise: f32::INFINITY,
            coasting: false,
        });
        self.next_id += 1;
    }

    fn match_cost(&self, a: &BBox, b: &BBox) -> Option<f32> {
        let iou = a.iou(b);
        if iou >= self.settings.iou_match {
            return Some(1.0 - iou);
        }
        let (ac, bc) = (a.center(), b.center());
        let size = a.width().max(a.height()).max(b.width().max(b.height())).max(1.0);
        let dist = ((ac.0 - bc.0).powi(2) + (ac.1 - bc.1).powi(2)).sqrt() / size;
        (dist < self.settings.center_match).then_some(1.0 + dist)
    }

    fn correct(&mut self, ti: usize, d: &Face) {
        let (pg, sg) = (self.settings.position_gain, self.settings.size_gain);
        let t = &mut self.tracks[ti];
        // predict() already moved the box one frame; measure motion since the last detection.
        let frames = t.frames_since_detection.max(1) as f32;
        let (pc, dc) = (t.bbox.center(), d.bbox.center());
        let side = d.bbox.width().max(d.bbox.height()).max(1.0);
        t.surprise = (dc.0 - pc.0).hypot(dc.1 - pc.1).max((d.bbox.width() - t.bbox.width()).abs()) / side;
        let c = (pc.0 + pg * (dc.0 - pc.0), pc.1 + pg * (dc.1 - pc.1));
        let w = t.bbox.width() + sg * (d.bbox.width() - t.bbox.width());
        let h = t.bbox.height() + sg * (d.bbox.height() - t.bbox.height());
        let smoothed = BBox { x0: c.0 - w / 2.0, y0: c.1 - h / 2.0, x1: c.0 + w / 2.0, y1: c.1 + h / 2.0 };
        if smoothed.coverage_of(&d.bbox) < MIN_COVERAGE {
            // Smoothing is for a face that moves. When the smoothed box would leave part of the
            // detected face uncovered (a scene cut, a face stepping up to the camera), the
            // detection is taken as it is: coverage comes before a steady box.
            t.bbox = d.bbox;
            t.velocity = (0.0, 0.0);
        } else {
            let moved = (c.0 - pc.0, c.1 - pc.1);
            t.velocity = (t.velocity.0 + moved.0 / frames, t.velocity.1 + moved.1 / frames);
            t.bbox = smoothed;
        }
        t.score = d.score;
        t.landmarks = d.landmarks;
        t.frames_since_detection = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, size: f32) -> Face {
        Face { bbox: BBox { x0: x, y0: y, x1: x + size, y1: y + size }, score: 0.9, landmarks: None }
    }

    #[test]
    fn ids_stay_with_their_faces() {
        let mut tr = Tracker::new(TrackerSettings::default());
        tr.update(&[det(0.0, 0.0, 40.0), det(200.0, 0.0, 40.0)]);
        let ids: Vec<u64> = tr.tracks().iter().map(|t| t.id).collect();
        // Both move right by 10 px a frame; the detections come in swapped order.
        for step in 1..10 {
            let s = step as f32 * 10.0;
            tr.update(&[det(200.0 + s, 0.0, 40.0), det(s, 0.0, 40.0)]);
        }
        assert_eq!(tr.tracks().len(), 2);
        let left = tr.tracks().iter().find(|t| t.bbox.x0 < 150.0).unwrap();
        assert_eq!(left.id, ids[0]);
    }

    #[test]
    fn a_missed_face_stays_covered_then_expires() {
        let mut tr = Tracker::new(TrackerSettings { max_missed_frames: 3, ..Default::default() });
        for step in 0..5 {
            tr.update(&[det(step as f32 * 8.0, 0.0, 40.0)]);
        }
        let before = tr.tracks()[0].bbox;
        tr.update(&[]);
        assert_eq!(tr.tracks().len(), 1);
        assert!(tr.tracks()[0].bbox.x0 > before.x0, "the track keeps moving with the face");
        for _ in 0..3 {
            tr.update(&[]);
        }
        assert!(tr.tracks().is_empty());
    }

    #[test]
    fn a_face_that_jumps_in_size_is_covered_at_once() {
        // A scene cut puts a close-up where a small face was: the centres are near enough to
        // match, but the smoothed box would cover only part of the new face.
        let mut tr = Tracker::new(TrackerSettings::default());
        for _ in 0..5 {
            tr.update(&[det(100.0, 100.0, 80.0)]);
        }
        let close_up = det(60.0, 60.0, 160.0);
        tr.update(std::slice::from_ref(&close_up));
        assert_eq!(tr.tracks().len(), 1);
        assert_eq!(tr.tracks()[0].bbox, close_up.bbox);
        // Ordinary motion is still smoothed.
        tr.update(&[det(64.0, 60.0, 160.0)]);
        let b = tr.tracks()[0].bbox;
        assert!(b.x0 > 60.0 && b.x0 < 64.0, "{b:?}");
    }

    #[test]
    fn faces_outside_a_changed_region_stay_where_they_were_seen() {
        let mut tr = Tracker::new(TrackerSettings { max_missed_frames: 3, ..Default::default() });
        for step in 0..4 {
            tr.update(&[det(step as f32 * 8.0, 0.0, 40.0), det(300.0, 300.0, 40.0)]);
        }
        let seen = tr.tracks()[0].bbox;
        // Two frames of prediction move the first face on, then a detection over the second
        // face's region only: the first face's surroundings did not change, so it is held where
        // it was detected and does not expire however long that lasts.
        tr.predict();
        tr.predict();
        for _ in 0..5 {
            tr.update_within(&[det(301.0, 300.0, 40.0)], &[BBox { x0: 250.0, y0: 250.0, x1: 400.0, y1: 400.0 }], &[]);
        }
        assert_eq!(tr.tracks().len(), 2);
        let first = tr.tracks().iter().find(|t| t.bbox.x0 < 200.0).unwrap();
        assert!((first.bbox.x0 - seen.x0).abs() < 1e-3, "{:?} against {seen:?}", first.bbox);
        tr.predict();
        assert!((tr.tracks().iter().find(|t| t.bbox.x0 < 200.0).unwrap().bbox.x0 - seen.x0).abs() < 1e-3, "and still");
        // A face inside the region that the detector no longer sees expires as usual, and so it
        // does when, once missed, its surroundings stay still.
        tr.update_within(&[], &[BBox { x0: 250.0, y0: 250.0, x1: 400.0, y1: 400.0 }], &[]);
        assert_eq!(tr.tracks().len(), 2);
        for _ in 0..3 {
            tr.hold(&[]);
        }
        assert_eq!(tr.tracks().len(), 1, "the missed face expired; the found one is held");
    }

    #[test]
    fn a_resting_face_stays_where_it_is_while_a_newcomer_starts_a_track() {
        let mut tr = Tracker::new(TrackerSettings::default());
        for step in 0..4 {
            tr.update(&[det(step as f32 * 2.0, 0.0, 200.0)]);
        }
        let (id, before) = (tr.tracks()[0].id, tr.tracks()[0].bbox);
        let regions = [BBox { x0: 0.0, y0: 100.0, x1: 600.0, y1: 400.0 }];
        tr.update_within(&[det(400.0, 300.0, 40.0)], &regions, &[id]);
        assert_eq!(tr.tracks().len(), 2, "the resting face and the newcomer: {:?}", tr.tracks());
        let rested = tr.tracks().iter().find(|t| t.id == id).unwrap();
        assert_eq!(rested.bbox, before, "where it was, though the region reached into it");
        assert_eq!(rested.missed(), 1, "not found again");
    }

    #[test]
    fn a_low_score_keeps_a_track_alive_but_starts_none_until_it_scores_enough() {
        let mut tr = Tracker::new(TrackerSettings { max_missed_frames: 2, ..Default::default() }).starting_at(0.4);
        let low = |x: f32, score: f32| Face { score, ..det(x, 0.0, 40.0) };
        tr.update(&[low(0.0, 0.9), low(300.0, 0.3)]);
        assert_eq!(tr.tracks().len(), 1, "the face at 0.3 is not covered");
        assert_eq!(tr.candidates().len(), 1);
        assert_eq!(tr.candidates()[0].bbox, det(300.0, 0.0, 40.0).bbox);
        for _ in 0..4 {
            tr.update(&[low(0.0, 0.3)]);
        }
        assert_eq!(tr.tracks().len(), 1, "a face found at 0.9 stays covered at 0.3");
        assert!(tr.candidates().is_empty(), "what joins a track is no candidate");
        tr.update(&[low(1.0, 0.9), low(300.0, 0.35), low(600.0, 0.5)]);
        assert_eq!(tr.tracks().len(), 2, "the face at 0.5 starts a track; the one at 0.9 had one");
        assert_eq!(tr.candidates().len(), 1, "the one at 0.35 is a candidate");
        tr.update_covering(&[low(900.0, 0.3)]);
        assert_eq!(tr.tracks().len(), 3, "a face found elsewhere to be covered is, at any score");
        assert!(tr.candidates().is_empty());
    }

    #[test]
    fn a_new_face_is_tracked_from_its_first_detection() {
        let mut tr = Tracker::new(TrackerSettings::default());
        tr.update(&[]);
        tr.update(&[det(10.0, 10.0, 30.0)]);
        assert_eq!(tr.tracks().len(), 1);
        assert_eq!(tr.tracks()[0].bbox, det(10.0, 10.0, 30.0).bbox);
    }
}
