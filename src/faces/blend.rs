//! Cutting the model's square crops out of a frame and feathering results back in.

use ndarray::{Array2, Array3, ArrayView3, ArrayViewMut3};
use serde::{Deserialize, Serialize};

use crate::faces::geometry::CropSquare;
use crate::faces::resample::{CropMaps, MapCache};
use crate::frame::rgb::RgbImage;
use crate::frame::{FrameMut, Region, to_u8};

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
                    out.data[i + c] = to_u8(m * s + (1.0 - m) * orig);
                }
            }
        }
        // Regions come from align_region on this same frame, so they always fit.
        frame.write_region(self.region, &out).expect("region from align_region fits its frame");
    }

    /// Splits the face for a model with an S × S grid (`size`): the grid it reads and what the
    /// result is composited onto, with the detail finer than the grid scaled as `fine` says.
    /// `cache` keeps the maps of recent squares.
    pub fn bands(&self, shape: &BlendShape, size: usize, fine: FineDetail, cache: &mut MapCache) -> FaceBands {
        let (cx, cy, side) = (self.crop.cx as f64, self.crop.cy as f64, self.crop.side as f64);
        let maps = CropMaps {
            x: cache.axis(cx - side / 2.0 - self.region.x as f64, side, self.region.width, size),
            y: cache.axis(cy - side / 2.0 - self.region.y as f64, side, self.region.height, size),
        };
        let (w, h) = (self.region.width, self.region.height);
        let mut pixels = Array3::<f32>::zeros((3, h, w));
        {
            let planar = pixels.as_slice_mut().expect("a fresh standard-layout array");
            let (r, rest) = planar.split_at_mut(w * h);
            let (g, b) = rest.split_at_mut(w * h);
            for (i, p) in self.pixels.data.chunks_exact(3).enumerate() {
                (r[i], g[i], b[i]) = (p[0] as f32, p[1] as f32, p[2] as f32);
            }
        }
        let inv_half = 2.0 / self.crop.side;
        let mask = Array2::from_shape_fn((h, w), |(y, x)| {
            let u = ((self.region.x + x) as f32 + 0.5 - self.crop.cx) * inv_half;
            let v = ((self.region.y + y) as f32 + 0.5 - self.crop.cy) * inv_half;
            shape.weight(u, v)
        });
        let (base, cut) = match fine {
            FineDetail::Keep(share) => (pixels, 1.0 - share.clamp(0.0, 1.0)),
            // The surrogate's fine detail is the original's at `share` of its amplitude where
            // the mask is whole, and less scaled along the feather: undo that. Without any
            // detail kept there is nothing to undo.
            FineDetail::Restore(share) if share >= MIN_DETAIL => {
                let fine = &pixels - &maps.up(maps.down(pixels.view()).view());
                let cut = 1.0 - share.min(1.0);
                let scale = mask.mapv(|m| cut * m / (1.0 - cut * m));
                (pixels + fine * &scale, 0.0)
            }
            FineDetail::Restore(_) => (pixels, 0.0),
        };
        let grid = maps.down(base.view());
        FaceBands { maps, base, grid, mask, cut }
    }
}

/// What compositing does to the detail finer than the model's grid, where the mask is whole.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FineDetail {
    /// An anonymize keeps this share of it (the model's own `detail_alpha`).
    Keep(f32),
    /// A restore brings it back from a surrogate that kept this share, so that the grid it
    /// reads is the one the anonymize wrote.
    Restore(f32),
}

/// Below this share of detail kept, a restore does not try to bring detail back: its noise
/// would be multiplied past any use.
const MIN_DETAIL: f32 = 0.05;

/// One face split for the SDN (`CropContext::bands`).
pub struct FaceBands {
    maps: CropMaps,
    /// The region's pixels (0..255, planar) the grid is cut from and the result lands on.
    base: Array3<f32>,
    /// `maps.down(base)`: the model's input.
    grid: Array3<f32>,
    /// The blend ellipse over the region.
    mask: Array2<f32>,
    /// The share of the detail above the grid an anonymize takes out (0 for a restore).
    cut: f32,
}

impl FaceBands {
    /// The model's input ([3, S, S], RGB in -1..1).
    pub fn to_tensor(&self, mut out: ArrayViewMut3<f32>) {
        out.zip_mut_with(&self.grid, |o, g| *o = g / 127.5 - 1.0);
    }

    /// Puts the model's result ([3, S, S], RGB in -1..1) into the frame: the change it made
    /// to the grid, brought up to the region's pixels (so the grid a restore reads back is
    /// exactly the result), and, for an anonymize, the detail above the grid scaled down.
    /// Inside the mask that is `up(result) + (1 - cut) · detail`.
    pub fn composite(&self, frame: &mut FrameMut, region: Region, patch: ArrayView3<f32>) {
        let keep = 1.0 - self.cut;
        let change = self.maps.up((patch.mapv(|v| (v + 1.0) * 127.5) - &self.grid * keep).view());
        let (h, w) = self.mask.dim();
        let mut out = RgbImage::new(w, h);
        let (base, change, mask) = (planes(&self.base), planes(&change), self.mask.as_slice().expect("standard layout"));
        for (i, (&m, px)) in mask.iter().zip(out.data.chunks_exact_mut(3)).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                *v = to_u8(base[c][i] * (1.0 - m * self.cut) + m * change[c][i]);
            }
        }
        // Regions come from align_region on this same frame, so they always fit.
        frame.write_region(region, &out).expect("region from align_region fits its frame");
    }
}

/// The channels of a standard-layout [C, H, W] array, each as one slice.
fn planes(a: &Array3<f32>) -> Vec<&[f32]> {
    let (_, h, w) = a.dim();
    a.as_slice().expect("standard layout").chunks_exact(h * w).collect()
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

    /// A textured frame: a gradient with a fine checker over it (detail above any 32 px grid).
    fn textured(w: usize, h: usize) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let fine = if (x + y) % 2 == 0 { 20 } else { 0 };
                [(x * 3 + fine) as u8, (y * 4 + fine) as u8, (77 + fine) as u8]
            })
            .collect()
    }

    fn max_diff(a: &[u8], b: &[u8]) -> u8 {
        a.iter().zip(b).map(|(a, b)| a.abs_diff(*b)).max().unwrap()
    }

    #[test]
    fn a_model_that_changes_nothing_changes_nothing_when_all_detail_is_kept() {
        let (w, h) = (64usize, 48usize);
        let mut data = textured(w, h);
        let before = data.clone();
        let mut frame = FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut data).unwrap();
        let ctx = CropContext::read(&frame, CropSquare { cx: 30.3, cy: 24.6, side: 41.0 }).unwrap();
        let bands = ctx.bands(&BlendShape::default(), 32, FineDetail::Keep(1.0), &mut MapCache::default());
        let mut t = ndarray::Array3::zeros((3, 32, 32));
        bands.to_tensor(t.view_mut());
        bands.composite(&mut frame, ctx.region, t.view());
        drop(frame);
        assert!(max_diff(&before, &data) <= 1);
    }

    #[test]
    fn a_restore_reads_back_the_grid_the_anonymize_wrote_and_the_detail_under_it() {
        let (w, h) = (96usize, 80usize);
        let mut data = textured(w, h);
        let original = data.clone();
        let crop = CropSquare { cx: 47.4, cy: 39.2, side: 61.3 };
        let shape = BlendShape::default();
        // A stand-in model: brightens the red of the grid's centre by 40 (where the mask is
        // whole, as the SDN changes only the face) and restores by darkening it.
        let run = |data: &mut Vec<u8>, fine: FineDetail, shift: f32| {
            let mut frame = FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, data).unwrap();
            let ctx = CropContext::read(&frame, crop).unwrap();
            let bands = ctx.bands(&shape, 32, fine, &mut MapCache::default());
            let mut t = ndarray::Array3::zeros((3, 32, 32));
            bands.to_tensor(t.view_mut());
            t.slice_mut(ndarray::s![0, 10..22, 10..22]).mapv_inplace(|v| v + shift / 127.5);
            bands.composite(&mut frame, ctx.region, t.view());
        };
        run(&mut data, FineDetail::Keep(0.25), 40.0);
        let anonymized = data.clone();
        run(&mut data, FineDetail::Restore(0.25), -40.0);
        // The checker is at a quarter in the surrogate's face, and back in full after the restore.
        let centre = |d: &[u8], x: usize, y: usize| d[(y * w + x) * 3 + 1] as i32;
        let swing = |d: &[u8]| (centre(d, 47, 39) - centre(d, 48, 39)).abs();
        assert!(swing(&anonymized) < 10 && swing(&original) >= 16, "{} {}", swing(&anonymized), swing(&original));
        // Exact where the mask is whole but for rounding (the surrogate's 8-bit rounding of the
        // fine detail comes back four times larger); along the feather, where the surrogate
        // mixes both, the detail is estimated pixel by pixel, which is close but not exact.
        let inv_half = 2.0 / crop.side;
        let solid = |i: usize| {
            let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
            shape.weight((x - crop.cx) * inv_half, (y - crop.cy) * inv_half) == 1.0
        };
        let off = |i: usize| (0..3).map(|c| original[i * 3 + c].abs_diff(data[i * 3 + c])).max().unwrap();
        let solid_worst = (0..w * h).filter(|&i| solid(i)).map(off).max().unwrap();
        let mean = original.iter().zip(&data).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>() / data.len() as f64;
        assert!(solid_worst <= 3 && mean < 0.5, "restore off by {solid_worst} inside the mask, {mean:.2} on average");
    }
}
