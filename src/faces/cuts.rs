//! Scene cuts: between detections the tracker can only follow faces it has seen, so a face that
//! appears with a new shot would stay uncovered until the next scheduled detection. A cut is
//! cheap to see (the whole picture changes at once), and seeing it lets the finder detect at
//! once instead.

use crate::frame::FrameMut;

/// The grid the frame is reduced to: 16:9 cells, fine enough that a cut between two shots of
/// similar overall brightness still moves most cells.
const COLS: usize = 32;
const ROWS: usize = 18;

/// Mean absolute change of the grid's cells (0-255) from one frame to the next that counts as a
/// cut. Measured on the sample and shared clips (`luma_thumbnail` in numpy): ordinary motion
/// stays at 0.3-4.6 levels on average (95th percentile at most 8.6, a camera pan on the
/// Hamilton clip, whose largest non-cut change is 12.7), its three cuts at 26.1-29.7. A false
/// cut only costs one extra detection, so the threshold sits well below the cuts.
pub const DEFAULT_CUT_THRESHOLD: f32 = 12.0;

/// Remembers the last frame's grid and says when the next one belongs to another shot.
pub struct SceneCuts {
    threshold: f32,
    last: Option<Vec<u8>>,
}

impl Default for SceneCuts {
    fn default() -> Self {
        Self::new(DEFAULT_CUT_THRESHOLD)
    }
}

impl SceneCuts {
    pub fn new(threshold: f32) -> Self {
        Self { threshold, last: None }
    }

    /// Takes the frame in and says whether it starts a new shot. The first frame after a
    /// [`SceneCuts::reset`] has nothing to compare with and is not a cut (the finder detects on
    /// it anyway).
    pub fn is_cut(&mut self, frame: &FrameMut) -> bool {
        let grid = frame.luma_thumbnail(COLS, ROWS);
        let cut = self.last.as_ref().is_some_and(|last| {
            let change: u32 = last.iter().zip(&grid).map(|(a, b)| a.abs_diff(*b) as u32).sum();
            change as f32 / grid.len() as f32 > self.threshold
        });
        self.last = Some(grid);
        cut
    }

    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    fn gray(level: impl Fn(usize, usize) -> u8, w: usize, h: usize) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).map(|(x, y)| level(x, y)).collect()
    }

    fn frame(data: &mut [u8], w: usize, h: usize) -> FrameMut<'_> {
        FrameMut::packed(PixelFormat::Gray8, w, h, w, data).unwrap()
    }

    #[test]
    fn a_moving_picture_is_one_shot_and_another_picture_a_cut() {
        let (w, h) = (321, 181);
        // A bright square drifting 3 px a frame over a gradient, then another picture.
        let shot = |t: usize| gray(move |x, y| if (x + 300 - 3 * t) % 300 < 60 && y < 90 { 230 } else { (x / 3) as u8 }, w, h);
        let mut cuts = SceneCuts::default();
        for t in 0..10 {
            assert!(!cuts.is_cut(&frame(&mut shot(t), w, h)), "frame {t} of one moving shot taken for a cut");
        }
        let mut other = gray(|x, y| 255 - ((x + y) / 2) as u8, w, h);
        assert!(cuts.is_cut(&frame(&mut other, w, h)));
        assert!(!cuts.is_cut(&frame(&mut other, w, h)), "the new shot's second frame is not a cut");
        cuts.reset();
        assert!(!cuts.is_cut(&frame(&mut shot(0), w, h)), "nothing to compare with after a reset");
    }
}
