//! Faces lying on their side, stood upright for the model by quarter turns.
//!
//! The face space was fitted on upright faces. A face rolled past 45 degrees (someone lying down,
//! a camera mounted on its side, a phone's video whose orientation tag was lost) falls outside
//! it: its surrogate was an upright face drawn across a sideways one, its eyes over the mouth
//! (a 720 x 1280 selfie clip turned by 90 degrees, 2026-12-07).
//! The model's square grid is turned by the quarter turns nearest the face's roll before the
//! model and back after it. A quarter turn of a square grid moves its samples without resampling
//! them, so a restore given the same turn undoes it exactly; a turn by the roll itself would
//! resample the grid, which no restore undoes exactly, so faces within 45 degrees of upright go
//! to the model as before. The turn travels in each face's record (`FaceRecord::turn`).

use std::collections::HashMap;

use ndarray::{ArrayView3, ArrayViewMut3, Axis};

/// How much further than halfway (degrees) a tracked face must roll before its turn changes, so
/// that a face rolled near 45 degrees does not switch between two turns, and its surrogate with
/// them, from frame to frame.
pub const TURN_HYSTERESIS_DEGREES: f32 = 10.0;

/// Frames in a row a tracked face must ask for another turn before it gets it. CenterFace, made
/// for upright faces, reads a face lying on its side now one way, now the other (a roll of 75
/// degrees on one look, -86 on the next, on the selfie clip turned by 90 degrees); each change
/// of turn changes the surrogate, and a face stood on its head for the model falls outside the
/// face space again.
pub const TURN_CHANGE_FRAMES: u32 = 5;

/// How far the two lines a roll is read from may disagree (degrees) for the roll to be taken.
/// CenterFace's landmarks of a face seen from the side put both eyes nearly on one point, and
/// the eyes' line then points anywhere: on the newsroom clip's profile, -63 and -127 degrees
/// against -17 and -18 for the mouth-to-eyes line, which read a head held upright as one lying
/// on its side (46 and 109 apart). Upright faces read 0 to 4 degrees apart; faces lying on their
/// side 1 to 32 (CenterFace puts their eyes off their line: 60 photos turned a quarter).
pub const ROLL_AGREEMENT_DEGREES: f32 = 35.0;

/// The least distance between the eyes, as a share of the distance from the mouth up to them,
/// for the roll to be taken: a face seen from the side has 0.11 to 0.14, a frontal one 0.7 to
/// 0.95, one lying on its side 0.35 to 0.56 (CenterFace draws it narrower than it is).
pub const MIN_EYES_SHARE: f32 = 0.3;

/// The least distance (pixels) from the mouth up to the eyes for the roll to be taken: the
/// landmarks of a smaller face are a few pixels off, and its surrogate too small for its turn
/// to show (a juggler's head bowed to 32 pixels at the detector's size read 66 to 72 degrees).
pub const MIN_EYES_TO_MOUTH: f32 = 32.0;

/// How far a face is rolled clockwise (degrees, -180..180; 0 upright), where its landmarks say
/// so clearly ([`ROLL_AGREEMENT_DEGREES`], [`MIN_EYES_SHARE`], [`MIN_EYES_TO_MOUTH`]); `None`
/// where they do not.
pub fn clear_roll_degrees(landmarks: &[(f32, f32); 5]) -> Option<f32> {
    let (eyes, up) = lines(landmarks);
    let (eyes_length, up_length) = (eyes.0.hypot(eyes.1), up.0.hypot(up.1));
    let apart = off_by(angle(eyes) - angle((-up.1, up.0)), 0);
    (apart <= ROLL_AGREEMENT_DEGREES && eyes_length >= MIN_EYES_SHARE * up_length && up_length >= MIN_EYES_TO_MOUTH)
        .then(|| roll_of(eyes, up))
}

/// The quarter turns nearest the roll of a face seen on its own (no track to hold a turn): 0
/// where its landmarks do not say its roll clearly, or it has none.
pub fn nearest_clear_turn(landmarks: Option<&[(f32, f32); 5]>) -> u8 {
    landmarks.and_then(clear_roll_degrees).map_or(0, nearest_turn)
}

/// The eyes' line (left eye to right) and the line from the mouth's middle up to the eyes'.
fn lines(landmarks: &[(f32, f32); 5]) -> ((f32, f32), (f32, f32)) {
    let [left_eye, right_eye, _, left_mouth, right_mouth] = *landmarks;
    let direction = |from: (f32, f32), to: (f32, f32)| (to.0 - from.0, to.1 - from.1);
    let midpoint = |a: (f32, f32), b: (f32, f32)| ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
    (direction(left_eye, right_eye), direction(midpoint(left_mouth, right_mouth), midpoint(left_eye, right_eye)))
}

fn angle((x, y): (f32, f32)) -> f32 {
    y.atan2(x).to_degrees()
}

/// How far a face is rolled clockwise (degrees, -180..180; 0 upright), from the eyes' line and
/// the line from the mouth up to the eyes ([`lines`]), averaged as directions.
fn roll_of(eyes: (f32, f32), up: (f32, f32)) -> f32 {
    // The eyes' line points right on an upright face and the mouth-to-eyes line up (-y, image
    // rows grow downwards); a face rolled clockwise by r turns both by r.
    let unit = |(x, y): (f32, f32)| {
        let n = x.hypot(y).max(f32::EPSILON);
        (x / n, y / n)
    };
    let (a, b) = (unit(eyes), unit((-up.1, up.0)));
    angle((a.0 + b.0, a.1 + b.1))
}

/// The quarter turns (0..=3, clockwise) nearest a roll of `roll` degrees.
pub fn nearest_turn(roll: f32) -> u8 {
    ((roll / 90.0).round() as i32).rem_euclid(4) as u8
}

/// How far `roll` lies from the roll of `turn` quarter turns, in degrees (0..=180).
fn off_by(roll: f32, turn: u8) -> f32 {
    let d = (roll - 90.0 * turn as f32).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// Each track's turn, changed only once its face has rolled [`TURN_HYSTERESIS_DEGREES`] past
/// halfway to another for [`TURN_CHANGE_FRAMES`] frames in a row.
#[derive(Default)]
pub struct UprightTurns {
    /// Each track's turn, and the other turn it has asked for and for how many frames.
    turns: HashMap<u64, (u8, Option<(u8, u32)>)>,
}

impl UprightTurns {
    /// The turn of track `id` this frame, from its landmarks; a face without landmarks that say
    /// its roll clearly ([`clear_roll_degrees`]) keeps the turn it had (upright for a new one),
    /// and one without a track (id 0) gets the nearest.
    pub fn turn(&mut self, id: u64, landmarks: Option<&[(f32, f32); 5]>) -> u8 {
        if id == 0 {
            return nearest_clear_turn(landmarks);
        }
        let held = self.turns.get(&id).copied();
        let Some(roll) = landmarks.and_then(clear_roll_degrees) else { return held.map_or(0, |(turn, _)| turn) };
        let Some((turn, pending)) = held else {
            let turn = nearest_turn(roll);
            self.turns.insert(id, (turn, None));
            return turn;
        };
        let asked = if off_by(roll, turn) <= 45.0 + TURN_HYSTERESIS_DEGREES { turn } else { nearest_turn(roll) };
        let state = match pending {
            _ if asked == turn => (turn, None),
            Some((other, frames)) if other == asked && frames + 1 >= TURN_CHANGE_FRAMES => (asked, None),
            Some((other, frames)) if other == asked => (turn, Some((other, frames + 1))),
            _ => (turn, Some((asked, 1))),
        };
        self.turns.insert(id, state);
        state.0
    }

    /// Forgets the tracks that are gone.
    pub fn keep_only(&mut self, ids: &[u64]) {
        self.turns.retain(|id, _| ids.contains(id));
    }
}

/// Copies the grid `from` ([C, S, S]) into `to`, turned counter-clockwise by `turn` quarter
/// turns: a face rolled clockwise by that many comes out upright.
pub fn stand_up(from: ArrayView3<f32>, turn: u8, mut to: ArrayViewMut3<f32>) {
    to.assign(&turned_ccw(from, turn));
}

/// Undoes [`stand_up`]: the grid turned clockwise by `turn` quarter turns.
pub fn lay_down(from: ArrayView3<f32>, turn: u8, mut to: ArrayViewMut3<f32>) {
    to.assign(&turned_ccw(from, (4 - turn % 4) % 4));
}

/// A view of `grid` turned counter-clockwise by `turn` quarter turns: one turn reads row y,
/// column x from row x, column S - 1 - y (the transpose, its rows reversed).
fn turned_ccw(grid: ArrayView3<f32>, turn: u8) -> ArrayView3<f32> {
    let mut v = grid;
    for _ in 0..turn % 4 {
        v = v.permuted_axes([0, 2, 1]);
        v.invert_axis(Axis(1));
    }
    v
}

/// Where a point of the square (x, y in 0..1 of its side) lands when the square is turned
/// counter-clockwise by `turn` quarter turns, as [`stand_up`] turns the grid.
pub fn stand_up_point((x, y): (f32, f32), turn: u8) -> (f32, f32) {
    (0..turn % 4).fold((x, y), |(x, y), _| (y, 1.0 - x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// The roll [`clear_roll_degrees`] reads, whether the landmarks say it clearly or not.
    fn roll_degrees(landmarks: &[(f32, f32); 5]) -> f32 {
        let (eyes, up) = lines(landmarks);
        roll_of(eyes, up)
    }

    /// An upright face of 200 pixels, rolled clockwise by `degrees` about its centre (image rows
    /// grow downwards, so clockwise is +angle in x, y).
    fn rolled(degrees: f32) -> [(f32, f32); 5] {
        let upright = [(70.0, 80.0), (130.0, 80.0), (100.0, 110.0), (76.0, 140.0), (124.0, 140.0)];
        let (s, c) = degrees.to_radians().sin_cos();
        upright.map(|(x, y)| {
            let (dx, dy) = (x - 100.0, y - 100.0);
            (100.0 + c * dx - s * dy, 100.0 + s * dx + c * dy)
        })
    }

    #[test]
    fn a_faces_roll_is_read_from_its_landmarks_and_stood_up_by_the_nearest_quarter_turns() {
        for degrees in [-170.0f32, -100.0, -60.0, -30.0, 0.0, 20.0, 44.0, 46.0, 90.0, 135.0, 179.0] {
            let roll = roll_degrees(&rolled(degrees));
            assert!(off_by(roll - degrees, 0) < 0.01, "{degrees}: read {roll}");
            let turn = nearest_turn(roll);
            assert!(off_by(roll, turn) <= 45.0, "{degrees}: turn {turn}");
            assert_eq!(clear_roll_degrees(&rolled(degrees)), Some(roll), "{degrees}");
            // Stood up by that turn (in the unit square), the face is within 45 degrees of upright.
            let upright = rolled(degrees).map(|(x, y)| stand_up_point((x / 200.0, y / 200.0), turn));
            assert!(roll_degrees(&upright).abs() <= 45.01, "{degrees}: {}", roll_degrees(&upright));
        }
        assert_eq!([0.0, 44.0, 46.0, 90.0, 180.0, -90.0, -46.0].map(nearest_turn), [0, 0, 1, 1, 2, 3, 3]);
    }

    #[test]
    fn a_roll_is_taken_only_where_the_landmarks_say_it_clearly() {
        // A face seen from the side, as CenterFace marks it: the eyes nearly on one point, their
        // line pointing well away from the mouth-to-eyes line.
        let profile = [(60.0, 80.0), (62.0, 84.0), (40.0, 110.0), (55.0, 140.0), (58.0, 141.0)];
        assert!((roll_degrees(&profile) - 0.0).abs() > 20.0, "read as rolled: {}", roll_degrees(&profile));
        assert_eq!(clear_roll_degrees(&profile), None);
        // The same lying face drawn small: its landmarks are too few pixels apart.
        let small = rolled(90.0).map(|(x, y)| (x / 8.0, y / 8.0));
        assert_eq!(clear_roll_degrees(&small), None);
        assert!(clear_roll_degrees(&rolled(90.0)).is_some());
        // Without a clear roll a track keeps its turn.
        let mut turns = UprightTurns::default();
        assert_eq!(turns.turn(4, Some(&profile)), 0);
        assert_eq!(turns.turn(4, Some(&small)), 0);
    }

    #[test]
    fn a_tracks_turn_holds_near_halfway_and_follows_a_face_that_rolls_further() {
        let mut turns = UprightTurns::default();
        let at = |turns: &mut UprightTurns, id, degrees| turns.turn(id, Some(&rolled(degrees)));
        assert_eq!(at(&mut turns, 1, 40.0), 0);
        // Past halfway but within the hysteresis: held.
        assert_eq!(at(&mut turns, 1, 50.0), 0);
        assert_eq!(at(&mut turns, 1, 54.0), 0);
        assert_eq!(turns.turn(1, None), 0, "no landmarks: held");
        // Further: the new turn once asked for in frames in a row, not before.
        for _ in 1..TURN_CHANGE_FRAMES {
            assert_eq!(at(&mut turns, 1, 60.0), 0);
        }
        assert_eq!(at(&mut turns, 1, 60.0), 1);
        assert_eq!(at(&mut turns, 1, 40.0), 1, "and held on the way back");
        // A face read the other way round now and then keeps its turn.
        for _ in 0..3 {
            for degrees in [-86.0, -80.0, 75.0] {
                assert_eq!(at(&mut turns, 1, degrees), 1, "{degrees}");
            }
        }
        let back: Vec<u8> = (0..TURN_CHANGE_FRAMES).map(|_| at(&mut turns, 1, 30.0)).collect();
        assert_eq!(back.last(), Some(&0), "{back:?}");
        // Untracked faces and new tracks get the nearest; a forgotten track starts afresh.
        assert_eq!(at(&mut turns, 0, 50.0), 1);
        assert_eq!(at(&mut turns, 2, 50.0), 1);
        turns.keep_only(&[1]);
        assert_eq!(at(&mut turns, 1, 50.0), 0);
        assert_eq!(turns.turn(2, None), 0);
    }

    #[test]
    fn a_grid_stood_up_and_laid_down_again_is_the_same_and_its_points_go_where_its_samples_do() {
        let s = 6;
        let grid = Array3::from_shape_fn((2, s, s), |(c, y, x)| (c * 100 + y * 10 + x) as f32);
        for turn in 0..4u8 {
            let mut up = Array3::zeros((2, s, s));
            stand_up(grid.view(), turn, up.view_mut());
            let mut back = Array3::zeros((2, s, s));
            lay_down(up.view(), turn, back.view_mut());
            assert_eq!(back, grid, "turn {turn}");
            // The sample at pixel (x, y) lands where its centre's point does.
            for (x, y) in [(0, 0), (5, 0), (2, 3)] {
                let centre = ((x as f32 + 0.5) / s as f32, (y as f32 + 0.5) / s as f32);
                let (px, py) = stand_up_point(centre, turn);
                let (tx, ty) = ((px * s as f32).floor() as usize, (py * s as f32).floor() as usize);
                assert_eq!(up[[1, ty, tx]], grid[[1, y, x]], "turn {turn}, ({x}, {y})");
            }
        }
        // One turn counter-clockwise: the top-right corner goes to the top left.
        let mut up = Array3::zeros((2, s, s));
        stand_up(grid.view(), 1, up.view_mut());
        assert_eq!(up[[0, 0, 0]], grid[[0, 0, s - 1]]);
    }
}
