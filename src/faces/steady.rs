//! Steady crops: a face that holds still keeps exactly the same crop square from frame to frame.
//! The surrogate is a function of its crop, so a square that jitters with the detector's few
//! pixels of noise makes the surrogate change more from frame to frame than the face itself
//! does. Once the squares a track's box asks for have stayed within a small dead band for a few
//! frames, the face is still and keeps one square until they leave it; a moving face is followed
//! frame by frame as before (holding its square in steps would shift the face inside it).

use std::collections::HashMap;

use crate::faces::geometry::CropSquare;

/// How far (as a share of the square's side) the wanted square may drift in position or size
/// before the held one follows. The face's box lies well inside its square (the square is 1.3
/// times the box), so a few percent never uncovers it.
pub const DEAD_BAND: f32 = 0.03;

/// Frames the wanted squares must stay within the dead band before the square is held.
pub const STILL_FRAMES: u32 = 4;

/// Each track's anchor square and how many frames the wanted ones have stayed near it.
#[derive(Default)]
pub struct SteadyCrops {
    anchors: HashMap<u64, (CropSquare, u32)>,
}

impl SteadyCrops {
    /// The square for track `id` this frame, given the one its box asks for. Faces without a
    /// track (id 0) get theirs as asked.
    pub fn square(&mut self, id: u64, wanted: CropSquare) -> CropSquare {
        if id == 0 {
            return wanted;
        }
        let tolerance = DEAD_BAND * wanted.side;
        let near = |a: &CropSquare| {
            (a.cx - wanted.cx).abs() <= tolerance
                && (a.cy - wanted.cy).abs() <= tolerance
                && (a.side - wanted.side).abs() <= tolerance
        };
        match self.anchors.get_mut(&id) {
            Some((anchor, still)) if near(anchor) => {
                *still += 1;
                if *still >= STILL_FRAMES { *anchor } else { wanted }
            }
            _ => {
                self.anchors.insert(id, (wanted, 0));
                wanted
            }
        }
    }

    /// Forgets the tracks that are gone.
    pub fn keep_only(&mut self, ids: &[u64]) {
        self.anchors.retain(|id, _| ids.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_still_face_gets_one_square_and_a_moving_one_is_followed_frame_by_frame() {
        let mut steady = SteadyCrops::default();
        let first = CropSquare { cx: 100.0, cy: 100.0, side: 100.0 };
        // The detector's jitter around a still face: a pixel or two, both ways.
        let jitter = |i: usize| {
            let d = [1.5, -2.0, 0.5, 2.5, -1.0, 2.0, -2.5, 1.0][i % 8];
            CropSquare { cx: 100.0 + d, cy: 100.0 - d, side: 100.0 + d / 2.0 }
        };
        assert_eq!(steady.square(3, first), first);
        let held: Vec<CropSquare> = (0..8).map(|i| steady.square(3, jitter(i))).collect();
        assert!(held[..STILL_FRAMES as usize - 1].iter().enumerate().all(|(i, s)| *s == jitter(i)), "followed until still");
        assert!(held[STILL_FRAMES as usize - 1..].iter().all(|s| *s == first), "then held: {held:?}");
        // Moving 2 px a frame (2% of the side) never settles: followed exactly.
        for step in 1..10 {
            let moving = CropSquare { cx: 120.0 + 2.0 * step as f32, cy: 100.0, side: 100.0 };
            assert_eq!(steady.square(3, moving), moving, "step {step}");
        }
        // Another track and an untracked face are their own; a forgotten track starts afresh.
        let other = CropSquare { cx: 101.0, cy: 100.0, side: 100.0 };
        assert_eq!(steady.square(0, other), other);
        steady.keep_only(&[]);
        assert_eq!(steady.square(3, other), other);
    }
}
