//! Cutting the model's square crops out of a frame and feathering results back in.

use std::sync::Arc;

use ndarray::{Array2, ArrayView3, ArrayViewMut3, Axis};
use serde::{Deserialize, Serialize};

use crate::faces::geometry::{BBox, CropSquare};
use crate::faces::resample::{CropMaps, MapCache};
use crate::frame::rgb::RgbImage;
use crate::frame::{FrameMut, PlaneColor, Region, RegionPlanes, to_u8};

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

    /// The ellipse of a face lying `turn` quarter turns from upright (`faces::upright`): its
    /// axes swap with each turn, so that it lies along the face as it lies.
    pub fn turned(&self, turn: u8) -> Self {
        if turn % 2 == 1 { Self { axis_x: self.axis_y, axis_y: self.axis_x, ..*self } } else { *self }
    }

    /// Every pixel a blend through this shape may change for a face cut at `crop`: the
    /// ellipse's bounding box, two pixels wider each side for the chroma samples of 4:2:0
    /// frames, which take the change of any pixel they cover.
    pub fn reach(&self, crop: CropSquare) -> BBox {
        let half = crop.side / 2.0;
        let (rx, ry) = (self.axis_x * half + 2.0, self.axis_y * half + 2.0);
        BBox { x0: crop.cx - rx, y0: crop.cy - ry, x1: crop.cx + rx, y1: crop.cy + ry }
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

    /// The weights over a region's pixels, [rows, columns]. Only the columns inside the ellipse
    /// are computed, and those inside its solid part need no root.
    fn mask(&self, crop: CropSquare, region: Region) -> Array2<f32> {
        let mut mask = Array2::zeros((region.height, region.width));
        let inv_half = 2.0 / crop.side;
        let u_at = |i: usize| (region.x as f32 + i as f32 + 0.5 - crop.cx) * inv_half;
        let column_of = |u: f32| u / inv_half + crop.cx - region.x as f32 - 0.5;
        for (j, mut row) in mask.rows_mut().into_iter().enumerate() {
            let v = (region.y as f32 + j as f32 + 0.5 - crop.cy) * inv_half;
            let reach = 1.0 - (v / self.axis_y).powi(2);
            if reach <= 0.0 {
                continue;
            }
            let du = self.axis_x * reach.sqrt();
            let solid = (1.0 - self.feather).powi(2) - (v / self.axis_y).powi(2);
            let du_solid = if solid > 0.0 { self.axis_x * solid.sqrt() } else { -1.0 };
            let lo = column_of(-du).floor().max(0.0) as usize;
            let hi = (column_of(du).ceil().max(0.0) as usize + 1).min(row.len());
            for i in lo..hi {
                let u = u_at(i);
                row[i] = if u.abs() <= du_solid { 1.0 } else { self.weight(u, v) };
            }
        }
        mask
    }
}

/// The frame pixels a crop touches, clipped to the frame, read once as RGB: what the one-way
/// effects (blur, pixelate, solid) draw from.
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
}

/// The mean of each 2 x 2 block of a mask (fewer at an odd edge): a 4:2:0 chroma sample's weight.
fn pair_means(plane: &Array2<f32>) -> Array2<f32> {
    let (h, w) = plane.dim();
    Array2::from_shape_fn((h.div_ceil(2), w.div_ceil(2)), |(cy, cx)| {
        let (rows, cols) = (2 * cy..(2 * cy + 2).min(h), 2 * cx..(2 * cx + 2).min(w));
        let n = (rows.len() * cols.len()) as f32;
        rows.flat_map(|y| cols.clone().map(move |x| (y, x))).map(|p| plane[p]).sum::<f32>() / n
    })
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

/// One face split for the SDN, per plane of the frame's own colour (R, G, B, or Y, U, V): the
/// grid the model reads and what its result is composited onto.
pub struct FaceBands {
    /// The frame pixels compositing rewrites (see [`CropContext::region`]).
    pub region: Region,
    color: PlaneColor,
    planes: [PlaneBands; 3],
    /// The share of the detail above the grid an anonymize takes out (0 for a restore).
    cut: f32,
}

/// One plane of [`FaceBands`].
struct PlaneBands {
    maps: CropMaps,
    /// The region's values (0..255) the result lands on.
    base: Array2<f32>,
    /// The model's grid of this plane.
    grid: Array2<f32>,
    /// The blend ellipse at the plane's values.
    mask: Arc<Array2<f32>>,
}

impl FaceBands {
    /// Splits the face in `crop` for a model with an S × S grid (`size`), with the detail finer
    /// than the grid scaled as `fine` says; `cache` keeps the maps of recent squares. `None`
    /// when the crop lies wholly outside the frame.
    pub fn read(
        frame: &FrameMut,
        crop: CropSquare,
        shape: &BlendShape,
        size: usize,
        fine: FineDetail,
        cache: &mut MapCache,
    ) -> Option<Self> {
        let region = CropContext::region(frame, crop)?;
        let RegionPlanes { color, planes } = frame.read_planes(region);
        let (cx, cy, side) = (crop.cx as f64, crop.cy as f64, crop.side as f64);
        let cut = match fine {
            FineDetail::Keep(share) => 1.0 - share.clamp(0.0, 1.0),
            FineDetail::Restore(_) => 0.0,
        };
        let full = Arc::new(shape.mask(crop, region));
        let half = (0..3).any(|i| color.halved(i)).then(|| Arc::new(pair_means(&full)));
        let mut i = 0;
        let planes = planes.map(|pixels| {
            let halved = color.halved(i);
            i += 1;
            let maps = CropMaps {
                x: cache.axis(cx - side / 2.0 - region.x as f64, side, region.width, size, halved),
                y: cache.axis(cy - side / 2.0 - region.y as f64, side, region.height, size, halved),
            };
            let mask = if halved { half.clone().expect("made for halved planes") } else { full.clone() };
            match fine {
                // The surrogate's fine detail is the original's at `share` of its amplitude where
                // the mask is whole, and less scaled along the feather: undo that. Without any
                // detail kept there is nothing to undo.
                FineDetail::Restore(share) if share >= MIN_DETAIL => {
                    let grid = maps.down(pixels.view());
                    let fine = &pixels - &maps.up(grid.view());
                    let c = 1.0 - share.min(1.0);
                    let base = pixels + fine * &mask.mapv(|m| c * m / (1.0 - c * m));
                    // A halved plane's `up` is not a right inverse of its `down`: the detail
                    // brought back would move its grid, which the pixels' grid is.
                    let grid = if halved { grid } else { maps.down(base.view()) };
                    PlaneBands { maps, base, grid, mask }
                }
                _ => PlaneBands { grid: maps.down(pixels.view()), maps, base: pixels, mask },
            }
        });
        Some(Self { region, color, planes, cut })
    }

    /// Which of the grid's samples ([S, S]: rows, columns) the frame holds, 1 or 0; `None`
    /// where it holds all of them. Every plane's grid lies over the same square, so the first
    /// plane's maps say it for all.
    pub fn inside(&self) -> Option<Array2<f32>> {
        let maps = &self.planes[0].maps;
        if maps.x.holds_all() && maps.y.holds_all() {
            return None;
        }
        let size = self.planes[0].grid.nrows();
        Some(Array2::from_shape_fn((size, size), |(i, j)| f32::from(u8::from(maps.y.holds(i) && maps.x.holds(j)))))
    }

    /// The model's input ([3, S, S], RGB in -1..1).
    pub fn to_tensor(&self, mut out: ArrayViewMut3<f32>) {
        let mut rgb = self.planes.each_ref().map(|p| p.grid.clone());
        self.color.to_rgb(&mut rgb);
        for (mut o, g) in out.outer_iter_mut().zip(&rgb) {
            o.zip_mut_with(g, |o, g| *o = g.clamp(0.0, 255.0) / 127.5 - 1.0);
        }
    }

    /// Puts the model's result ([3, S, S], RGB in -1..1) into the frame: the change it made
    /// to the grid, brought up to the region's pixels (so the grid a restore reads back is
    /// exactly the result, and a 4:2:0 chroma grid what the RGB path gave back), and, for an
    /// anonymize, the detail above the grid scaled down.
    /// Inside the mask that is `up(result) + (1 - cut) · detail`. The conversion is affine, so
    /// this is the same in the frame's own colour as in RGB.
    pub fn composite(&self, frame: &mut FrameMut, patch: ArrayView3<f32>) {
        let keep = 1.0 - self.cut;
        let mut target = [0, 1, 2].map(|c| patch.index_axis(Axis(0), c).mapv(|v| (v + 1.0) * 127.5));
        self.color.from_rgb(&mut target);
        let out = [0, 1, 2].map(|c| {
            let p = &self.planes[c];
            let mut change = p.maps.up((&target[c] - &p.grid * keep).view());
            ndarray::Zip::from(&mut change)
                .and(&p.base)
                .and(&*p.mask)
                .for_each(|v, &b, &m| *v = b * (1.0 - m * self.cut) + m * *v);
            change
        });
        // Regions come from align_region on this same frame, so they always fit.
        frame.write_planes(self.region, &out).expect("region from align_region fits its frame");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{PixelFormat, Plane, YuvMatrix};

    #[test]
    fn mask_is_solid_inside_and_empty_outside() {
        let s = BlendShape::default();
        assert_eq!(s.weight(0.0, 0.0), 1.0);
        assert_eq!(s.weight(0.99, 0.99), 0.0);
        let edge = s.weight(0.8, 0.0);
        assert!(edge > 0.0 && edge < 1.0);
    }

    #[test]
    fn the_mask_of_a_region_is_the_weight_at_each_pixel() {
        let shape = BlendShape::default();
        let crop = CropSquare { cx: 47.4, cy: 39.2, side: 61.3 };
        let region = Region { x: 16, y: 8, width: 64, height: 64 };
        let mask = shape.mask(crop, region);
        let inv_half = 2.0 / crop.side;
        let worst = mask
            .indexed_iter()
            .map(|((j, i), m)| {
                let u = (region.x as f32 + i as f32 + 0.5 - crop.cx) * inv_half;
                let v = (region.y as f32 + j as f32 + 0.5 - crop.cy) * inv_half;
                (m - shape.weight(u, v)).abs()
            })
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "off by {worst}");
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

    /// A frame's bytes in either layout a face is split from: packed RGB, or I420 planes.
    struct TestFrame {
        format: PixelFormat,
        size: (usize, usize),
        planes: Vec<Vec<u8>>,
    }

    impl TestFrame {
        fn new(format: PixelFormat, (w, h): (usize, usize), rgb: &[u8]) -> Self {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let planes = match format {
                PixelFormat::I420 => vec![vec![0; w * h], vec![0; cw * ch], vec![0; cw * ch]],
                _ => vec![vec![0; w * h * 3]],
            };
            let mut frame = Self { format, size: (w, h), planes };
            let mut view = frame.view();
            let whole = view.whole();
            view.write_region(whole, &RgbImage::from_raw(w, h, rgb.to_vec()).unwrap()).unwrap();
            frame
        }

        fn view(&mut self) -> FrameMut<'_> {
            let (w, h) = self.size;
            let strides = if self.format == PixelFormat::I420 { vec![w, w.div_ceil(2), w.div_ceil(2)] } else { vec![w * 3] };
            let planes = self.planes.iter_mut().zip(strides).map(|(data, stride)| Plane { data, stride }).collect();
            FrameMut::new(self.format, w, h, YuvMatrix::Bt601, planes).unwrap()
        }

        fn rgb(&mut self) -> Vec<u8> {
            let view = self.view();
            view.read_region(view.whole()).data
        }
    }

    const FORMATS: [PixelFormat; 2] = [PixelFormat::Rgb, PixelFormat::I420];

    #[test]
    fn a_model_that_changes_nothing_changes_nothing_when_all_detail_is_kept() {
        let (w, h) = (64usize, 48usize);
        for format in FORMATS {
            let mut frame = TestFrame::new(format, (w, h), &textured(w, h));
            let before = frame.planes.clone();
            let crop = CropSquare { cx: 30.3, cy: 24.6, side: 41.0 };
            let bands =
                FaceBands::read(&frame.view(), crop, &BlendShape::default(), 32, FineDetail::Keep(1.0), &mut MapCache::default())
                    .unwrap();
            let mut t = ndarray::Array3::zeros((3, 32, 32));
            bands.to_tensor(t.view_mut());
            bands.composite(&mut frame.view(), t.view());
            let worst = before.iter().flatten().zip(frame.planes.iter().flatten()).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(worst.unwrap() <= 1, "{format:?}: a sample moved by {worst:?}");
        }
    }

    #[test]
    fn a_restore_reads_back_the_grid_the_anonymize_wrote_and_the_detail_under_it() {
        let (w, h) = (96usize, 80usize);
        let crop = CropSquare { cx: 47.4, cy: 39.2, side: 61.3 };
        let shape = BlendShape::default();
        for format in FORMATS {
            let mut frame = TestFrame::new(format, (w, h), &textured(w, h));
            // What the frame holds: a 4:2:0 frame has already lost the checker's chroma.
            let original = frame.rgb();
            let original_planes = frame.planes.clone();
            // A stand-in model: brightens the red of the grid's centre by 40 (where the mask is
            // whole, as the SDN changes only the face) and restores by darkening it.
            let run = |frame: &mut TestFrame, fine: FineDetail, shift: f32| {
                let bands = FaceBands::read(&frame.view(), crop, &shape, 32, fine, &mut MapCache::default()).unwrap();
                let mut t = ndarray::Array3::zeros((3, 32, 32));
                bands.to_tensor(t.view_mut());
                t.slice_mut(ndarray::s![0, 10..22, 10..22]).mapv_inplace(|v| v + shift / 127.5);
                bands.composite(&mut frame.view(), t.view());
            };
            run(&mut frame, FineDetail::Keep(0.25), 40.0);
            let anonymized = frame.rgb();
            run(&mut frame, FineDetail::Restore(0.25), -40.0);
            let data = frame.rgb();
            // The checker is at a quarter in the surrogate's face, and back in full after the restore.
            let centre = |d: &[u8], x: usize, y: usize| d[(y * w + x) * 3 + 1] as i32;
            let swing = |d: &[u8]| (centre(d, 47, 39) - centre(d, 48, 39)).abs();
            assert!(swing(&anonymized) < 10 && swing(&original) >= 16, "{format:?}: {} {}", swing(&anonymized), swing(&original));
            // Exact where the mask is whole but for rounding (the surrogate's 8-bit rounding of
            // the fine detail comes back four times larger); along the feather, where the
            // surrogate mixes both, the detail is estimated pixel by pixel, which is close but not
            // exact. A 4:2:0 frame's luma is exact the same way; its chroma, one sample for four
            // pixels (and this test picture's wrapped ramps leave some of them outside the RGB
            // cube, where a read clamps them), is close on average only.
            let inv_half = 2.0 / crop.side;
            let solid = |i: usize| {
                let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
                shape.weight((x - crop.cx) * inv_half, (y - crop.cy) * inv_half) == 1.0
            };
            let off = |i: usize| match format {
                PixelFormat::I420 => original_planes[0][i].abs_diff(frame.planes[0][i]),
                _ => (0..3).map(|c| original[i * 3 + c].abs_diff(data[i * 3 + c])).max().unwrap(),
            };
            let solid_worst = (0..w * h).filter(|&i| solid(i)).map(off).max().unwrap();
            let mean = original.iter().zip(&data).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>() / data.len() as f64;
            assert!(
                solid_worst <= 3 && mean < if format == PixelFormat::I420 { 0.75 } else { 0.5 },
                "{format:?}: restore off by {solid_worst} inside the mask, {mean:.2} on average"
            );
        }
    }
}
