//! What an anonymized frame looks like, in a few bytes: its size and a grid of its brightness. The
//! sidecar keeps one per record, so that a restore can tell whether a record belongs to the frame
//! it is about to restore. A sidecar is matched to frames by timestamp, and a video cut and
//! re-encoded since (its first seconds trimmed, say) starts again at 0 with none of its SEI:
//! every record would land on the wrong frame, and the squares and keys of another moment would
//! be "restored" onto it. A video scaled since has its faces elsewhere than the squares say.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::frame::FrameMut;

/// The grid of mean brightness cells a look holds (16:9, 144 bytes).
const COLS: usize = 16;
const ROWS: usize = 9;

/// Looks this close (see [`distance`]) are the same picture. Measured on
/// samples/faces_720p.mp4 anonymized, its last 4 s re-encoded by libx264 (2026-12-03; the cells
/// computed as here, rounded to 1/40, from the luma ffmpeg decoded; scratch numpy): a frame
/// against its own look at most 0.011 at CRF 18, 0.041 at CRF 35, 0.067 at CRF 45; against the
/// frame before it 0.008 and up (0.07 on average: a still moment barely changes, and its
/// records then fit it as well), 10 frames before 0.029 and up (0.23 on average), 60 frames
/// before 0.50 and up. A restore takes the closest record, so this bounds only how far a record
/// may be from its frame and still be used.
pub const SAME_PICTURE: f32 = 0.1;

/// Grey levels below which a picture's spread counts as flat: a dark or blank frame's cells are
/// compared in grey levels over this, not magnified to unit spread.
const FLAT_SPREAD: f32 = 8.0;

/// A frame's size and the mean brightness of each cell of a 16 x 9 grid over it. In JSON, base64
/// of the width and the height (16 bits each, little-endian) and the cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Look {
    size: (u16, u16),
    cells: Vec<u8>,
}

impl Look {
    /// The look of a frame as it leaves the anonymizer (or reaches a restore).
    pub fn of(frame: &FrameMut) -> Self {
        let side = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        Self { size: (side(frame.width()), side(frame.height())), cells: frame.luma_thumbnail(COLS, ROWS) }
    }

    /// A look of the given cells (16 x 9 of them for a frame's) on a frame of `size`.
    #[cfg(test)]
    pub(crate) fn of_cells(size: (u16, u16), cells: Vec<u8>) -> Self {
        Self { size, cells }
    }

    /// The size of the frame, in pixels.
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// The cells brought to zero mean and unit spread, in steps of 1/`CELL_STEPS` (a restore
    /// keeps them for every record of a sidecar, and compares many with [`distance`]): so that a
    /// range or gain change on the way (a restore fed RGB where the anonymizer saw YUV) does not
    /// count.
    pub fn cells(&self) -> Vec<i8> {
        let n = self.cells.len().max(1) as f32;
        let mean = self.cells.iter().map(|&v| v as f32).sum::<f32>() / n;
        let spread = (self.cells.iter().map(|&v| (v as f32 - mean).powi(2)).sum::<f32>() / n).sqrt().max(FLAT_SPREAD);
        self.cells.iter().map(|&v| ((v as f32 - mean) / spread * CELL_STEPS).round().clamp(-127.0, 127.0) as i8).collect()
    }
}

/// Steps of a normalized cell per unit of spread: cells beyond 3.2 spreads from the mean (rare
/// in a picture) are clipped there.
const CELL_STEPS: f32 = 40.0;

/// How different two looks are, from their [`Look::cells`]: the mean absolute difference of the
/// normalized cells; 0 for the same picture.
pub fn distance(a: &[i8], b: &[i8]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return f32::INFINITY;
    }
    let sum: u32 = a.iter().zip(b).map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs()).sum();
    sum as f32 / (a.len() as f32 * CELL_STEPS)
}

impl Serialize for Look {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = [&self.size.0.to_le_bytes()[..], &self.size.1.to_le_bytes(), &self.cells].concat();
        s.serialize_str(&STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for Look {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(|_| serde::de::Error::custom("a frame's look is not base64"))?;
        let [w0, w1, h0, h1, ref cells @ ..] = bytes[..] else {
            return Err(serde::de::Error::custom("a frame's look is too short"));
        };
        Ok(Self { size: (u16::from_le_bytes([w0, w1]), u16::from_le_bytes([h0, h1])), cells: cells.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{PixelFormat, Plane, YuvMatrix};

    fn frame_look(fill: impl Fn(usize, usize) -> u8) -> Look {
        let (w, h) = (64, 36);
        let mut y: Vec<u8> = (0..w * h).map(|i| fill(i % w, i / w)).collect();
        let (mut u, mut v) = (vec![128u8; w * h / 4], vec![128u8; w * h / 4]);
        let planes =
            vec![Plane { data: &mut y, stride: w }, Plane { data: &mut u, stride: w / 2 }, Plane { data: &mut v, stride: w / 2 }];
        Look::of(&FrameMut::new(PixelFormat::I420, w, h, YuvMatrix::Bt601, planes).unwrap())
    }

    #[test]
    fn a_picture_is_told_from_another_but_not_from_itself_with_its_levels_changed() {
        let scene = |x: usize, y: usize| (40 + (x * 3 + y * 2) % 150) as u8;
        let moved = |x: usize, y: usize| scene(x + 9, y);
        let apart = |a: &Look, b: &Look| distance(&a.cells(), &b.cells());
        let look = frame_look(scene);
        assert_eq!(apart(&look, &look), 0.0);
        // The same picture squeezed into limited range, as a YUV to RGB conversion gives it.
        let squeezed = frame_look(|x, y| (16.0 + scene(x, y) as f32 * 219.0 / 255.0).round() as u8);
        assert!(apart(&look, &squeezed) < SAME_PICTURE / 4.0, "{}", apart(&look, &squeezed));
        assert!(apart(&look, &frame_look(moved)) > SAME_PICTURE, "{}", apart(&look, &frame_look(moved)));
        // Two flat frames a few levels apart are not magnified into different pictures.
        assert!(apart(&frame_look(|_, _| 20), &frame_look(|x, _| 20 + (x % 2) as u8)) < SAME_PICTURE);
    }

    #[test]
    fn a_look_travels_as_base64() {
        let look = frame_look(|x, y| (x + y) as u8);
        let text = serde_json::to_string(&look).unwrap();
        assert_eq!(serde_json::from_str::<Look>(&text).unwrap(), look);
        assert_eq!(look.size(), (64, 36));
        assert!(serde_json::from_str::<Look>("\"not base64!\"").is_err());
    }
}
