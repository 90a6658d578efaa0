//! Cutting the model's square crops out of a frame and feathering results back in.

use ndarray::{ArrayView3, ArrayViewMut3};
use serde::{Deserialize, Serialize};

use crate::faces::geometry::CropSquare;
use crate::frame::rgb::RgbImage;
use crate::frame::{FrameMut, Region};

/// The feathered ellipse a result is blended back with, in units of the crop's half side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlendShape {
    pub axis_x: f32,
    pub axis_y: f32,
    /// Width of the soft edge, as a fraction of the ellipse radius.
    pub feather: f32,
}

impl Default for BlendShape {
    fn default() -> Self {
        Self { axis_x: 0.85, axis_y: 0.95, feather: 0.2 }
    }
}

impl BlendShape {
    /// Grows or shrinks the ellipse (the elements' `mask-scale`).
    pub fn scaled(&self, factor: f32) -> Self {
        Self { axis_x: self.axis_x * factor, axis_y: self.axis_y * factor, ..*self }
    }

    /// Mask weight at crop coordinates `u`, `v` in -1..1 (0 is the crop centre).
    pub fn weight(&self, u: f32, v: f32) -> f32 {
        let r = ((u / self.axis_x).powi(2) + (v / self.axis_y).powi(2)).sqrt();
        if r <= 1.0 - self.feather {
            1.0
        } else if r >= 1.0 {
            0.0
        } else {
            let t = (1.0 - r) / self.feather;
            t * t * (3.0 - 2.0 * t)
        }
    }
}

/// The frame pixels a crop touches, clipped to the frame, read once as RGB.
pub struct CropContext {
    pub crop: CropSquare,
    pub region: Region,
    pub pixels: RgbImage,
}

impl CropContext {
    /// `None` when the crop lies wholly outside the frame.
    pub fn read(frame: &FrameMut, crop: CropSquare) -> Option<Self> {
        let region = Self::region(frame, crop)?;
        Some(Self { crop, region, pixels: frame.read_region(region) })
    }

    /// Every pixel compositing a crop may rewrite: its square, a pixel of margin for the
    /// resampling, widened to whole chroma samples (the rewrite converts the whole region).
    pub fn region(frame: &FrameMut, crop: CropSquare) -> Option<Region> {
        let b = crop.bounds();
        frame.align_region(b.x0 - 1.0, b.y0 - 1.0, b.x1 + 1.0, b.y1 + 1.0)
    }

    /// Bilinear sample at frame pixel-index coordinates, clamped to the frame edge.
    fn sample_frame(&self, x: f32, y: f32) -> [f32; 3] {
        self.pixels.sample(x - self.region.x as f32, y - self.region.y as f32)
    }

    /// Resamples the crop into `out` ([3, S, S], RGB in -1..1: the model's input layout).
    pub fn to_tensor(&self, mut out: ArrayViewMut3<f32>) {
        let size = out.shape()[1];
        debug_assert_eq!(out.shape(), [3, size, size]);
        let step = self.crop.side / size as f32;
        let left = self.crop.cx - self.crop.side / 2.0;
        let top = self.crop.cy - self.crop.side / 2.0;
        for i in 0..size {
            let sy = top + (i as f32 + 0.5) * step - 0.5;
            for j in 0..size {
                let sx = left + (j as f32 + 0.5) * step - 0.5;
                let p = self.sample_frame(sx, sy);
                for (c, v) in p.iter().enumerate() {
                    out[[c, i, j]] = v / 127.5 - 1.0;
                }
            }
        }
    }

    /// Blends `source(x, y)` (RGB 0..255 for frame pixel x, y) into the frame through `shape`.
    pub fn composite(&self, frame: &mut FrameMut, shape: &BlendShape, source: impl Fn(usize, usize) -> [f32; 3]) {
        let mut out = self.pixels.clone();
        let inv_half = 2.0 / self.crop.side;
        let half = self.crop.side / 2.0;
        for ry in 0..self.region.height {
            let y = self.region.y + ry;
            let v = (y as f32 + 0.5 - self.crop.cy) * inv_half;
            // Only the columns inside the ellipse at this row can have a weight.
            let reach = 1.0 - (v / shape.axis_y).powi(2);
            if reach <= 0.0 {
                continue;
            }
            let dx = shape.axis_x * reach.sqrt() * half + 1.0;
            let x_lo = ((self.crop.cx - dx).floor().max(self.region.x as f32) as usize).max(self.region.x);
            let x_hi = ((self.crop.cx + dx).ceil() as usize).min(self.region.x + self.region.width);
            for x in x_lo..x_hi {
                let rx = x - self.region.x;
                let u = (x as f32 + 0.5 - self.crop.cx) * inv_half;
                let m = shape.weight(u, v);
                if m <= 0.0 {
                    continue;
                }
                let src = source(x, y);
                let i = (ry * self.region.width + rx) * 3;
                for (c, s) in src.iter().enumerate() {
                    let orig = self.pixels.data[i + c] as f32;
                    out.data[i + c] = (m * s + (1.0 - m) * orig).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        // Regions come from align_region on this same frame, so they always fit.
        frame.write_region(self.region, &out).expect("region from align_region fits its frame");
    }

    /// Blends a model output ([3, S, S], RGB in -1..1) back over the crop.
    pub fn composite_tensor(&self, frame: &mut FrameMut, shape: &BlendShape, patch: ArrayView3<f32>) {
        let size = patch.shape()[1];
        let scale = size as f32 / self.crop.side;
        let left = self.crop.cx - self.crop.side / 2.0;
        let top = self.crop.cy - self.crop.side / 2.0;
        let last = (size - 1) as f32;
        self.composite(frame, shape, |x, y| {
            let j = ((x as f32 + 0.5 - left) * scale - 0.5).clamp(0.0, last);
            let i = ((y as f32 + 0.5 - top) * scale - 0.5).clamp(0.0, last);
            let (j0, i0) = (j.floor() as usize, i.floor() as usize);
            let (j1, i1) = ((j0 + 1).min(size - 1), (i0 + 1).min(size - 1));
            let (fj, fi) = (j - j0 as f32, i - i0 as f32);
            std::array::from_fn(|c| {
                let top = patch[[c, i0, j0]] * (1.0 - fj) + patch[[c, i0, j1]] * fj;
                let bottom = patch[[c, i1, j0]] * (1.0 - fj) + patch[[c, i1, j1]] * fj;
                ((top * (1.0 - fi) + bottom * fi) + 1.0) * 127.5
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;

    #[test]
    fn mask_is_solid_inside_and_empty_outside() {
        let s = BlendShape::default();
        assert_eq!(s.weight(0.0, 0.0), 1.0);
        assert_eq!(s.weight(0.99, 0.99), 0.0);
        let edge = s.weight(0.8, 0.0);
        assert!(edge > 0.0 && edge < 1.0);
    }

    #[test]
    fn crop_of_a_gradient_matches_the_frame_and_composites_back_unchanged() {
        let (w, h) = (64usize, 48usize);
        let mut data: Vec<u8> = (0..w * h).flat_map(|i| [(i % w * 4) as u8, (i / w * 5) as u8, 77]).collect();
        let before = data.clone();
        let mut frame = FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut data).unwrap();
        let crop = CropSquare { cx: 32.0, cy: 24.0, side: 32.0 };
        let ctx = CropContext::read(&frame, crop).unwrap();
        let mut t = ndarray::Array3::zeros((3, 32, 32));
        ctx.to_tensor(t.view_mut());
        // At one sample per pixel the crop is the frame itself: pixel (16 + j, 8 + i).
        let r = (t[[0, 5, 7]] + 1.0) * 127.5;
        assert!((r - ((16 + 7) * 4) as f32).abs() < 0.5);
        ctx.composite_tensor(&mut frame, &BlendShape::default(), t.view());
        drop(frame);
        let diff = before.iter().zip(&data).map(|(a, b)| (*a as i32 - *b as i32).abs()).max().unwrap();
        assert!(diff <= 1, "round trip changed pixels by {diff}");
    }
}
