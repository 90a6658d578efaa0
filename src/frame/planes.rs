//! A region of a frame as float planes in the frame's own colour: what the SDN's crop and blend
//! work on, so that a face's pixels are not converted to RGB and back one by one, and a 4:2:0
//! frame's chroma is worked on at its own resolution.

use anyhow::{Result, ensure};
use ndarray::Array2;

use super::rgb::RgbImage;
use super::{FrameMut, PixelFormat, Plane, Region, YuvConv, YuvMatrix, to_u8};

/// What a region's three planes hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaneColor {
    /// R, G and B (packed RGB and grey frames).
    Rgb,
    /// Limited-range Y, U and V of a 4:2:0 frame.
    Yuv(YuvMatrix),
}

impl PlaneColor {
    /// Whether plane `i` holds one value for every 2 x 2 pixels.
    pub fn halved(self, i: usize) -> bool {
        matches!(self, Self::Yuv(_)) && i > 0
    }

    /// Samples of the three planes (same shape) to RGB 0..255, in place. Not clamped: the
    /// conversion is affine, so converting averages equals averaging conversions.
    pub fn to_rgb(self, planes: &mut [Array2<f32>; 3]) {
        if let Self::Yuv(matrix) = self {
            let conv = YuvConv::new(matrix);
            convert(planes, |p| conv.rgb_from_yuv(p));
        }
    }

    /// The inverse of [`PlaneColor::to_rgb`].
    pub fn from_rgb(self, planes: &mut [Array2<f32>; 3]) {
        if let Self::Yuv(matrix) = self {
            let conv = YuvConv::new(matrix);
            convert(planes, |p| conv.yuv_from_rgb(p));
        }
    }
}

fn convert(planes: &mut [Array2<f32>; 3], f: impl Fn([f32; 3]) -> [f32; 3]) {
    let [a, b, c] = planes;
    ndarray::Zip::from(a).and(b).and(c).for_each(|a, b, c| [*a, *b, *c] = f([*a, *b, *c]));
}

/// A region's values, 0..255 (see [`FrameMut::read_planes`]), each plane [rows, columns].
pub struct RegionPlanes {
    pub color: PlaneColor,
    pub planes: [Array2<f32>; 3],
}

impl FrameMut<'_> {
    /// The colour [`FrameMut::read_planes`] gives.
    pub fn plane_color(&self) -> PlaneColor {
        match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => PlaneColor::Yuv(self.matrix),
            _ => PlaneColor::Rgb,
        }
    }

    /// A region as float planes: a 4:2:0 frame's own Y, U and V, chroma at its half resolution
    /// (the region aligned as [`FrameMut::align_region`] gives it), any other frame's RGB. A
    /// pixel outside the RGB cube is read as the conversion to RGB clamps it: a restore then
    /// starts from the colours the anonymize's model saw, not from a codec's overshoot (-0.4 dB
    /// of restore on the sample without it).
    pub fn read_planes(&self, region: Region) -> RegionPlanes {
        let mut planes = self.channels().map(|(i, offset, step)| {
            let (x, row_bytes, y, rows) = self.plane_rect(i, region);
            samples(&self.planes[i], x + offset, y, row_bytes / step, rows, step)
        });
        if let PlaneColor::Yuv(matrix) = self.plane_color() {
            let [luma, u, v] = &mut planes;
            within_gamut(&YuvConv::new(matrix), luma, u, v);
        }
        RegionPlanes { color: self.plane_color(), planes }
    }

    /// Writes planes shaped as [`FrameMut::read_planes`] gives them for this region, each value
    /// rounded and clamped to 0..255.
    pub fn write_planes(&mut self, region: Region, planes: &[Array2<f32>; 3]) -> Result<()> {
        ensure!(region.x + region.width <= self.width && region.y + region.height <= self.height, "region outside the frame");
        if matches!(self.format, PixelFormat::I420 | PixelFormat::Nv12) {
            ensure!(region.x.is_multiple_of(2) && region.y.is_multiple_of(2), "4:2:0 regions must start on even coordinates");
        }
        let places = self.channels().map(|(i, offset, step)| (i, offset, step, self.plane_rect(i, region)));
        for (c, (plane, &(_, _, step, (_, row_bytes, _, rows)))) in planes.iter().zip(&places).enumerate() {
            let want = (rows, row_bytes / step);
            ensure!(plane.dim() == want, "plane {c} is {:?} where the region needs {want:?}", plane.dim());
        }
        if self.format == PixelFormat::Gray8 {
            // Grey is written as the luma of the RGB, as every other write to it is.
            let mut rgb = RgbImage::new(region.width, region.height);
            for (c, plane) in planes.iter().enumerate() {
                for (px, v) in rgb.data.chunks_exact_mut(3).zip(plane.iter()) {
                    px[c] = to_u8(*v);
                }
            }
            return self.write_region(region, &rgb);
        }
        for (values, (i, offset, step, (x, _, y, _))) in planes.iter().zip(places) {
            put(&mut self.planes[i], x + offset, y, step, values);
        }
        Ok(())
    }

    /// Where each of [`FrameMut::read_planes`]' three planes lives: the frame's plane, the byte
    /// of its first value within the region's bytes there ([`FrameMut::plane_rect`]), and the
    /// bytes from one value to the next.
    fn channels(&self) -> [(usize, usize, usize); 3] {
        match self.format {
            PixelFormat::I420 => [(0, 0, 1), (1, 0, 1), (2, 0, 1)],
            PixelFormat::Nv12 => [(0, 0, 1), (1, 0, 2), (1, 1, 2)],
            PixelFormat::Gray8 => [(0, 0, 1); 3],
            f => {
                let (bpp, offsets) = f.packed_layout().expect("packed format");
                offsets.map(|o| (0, o, bpp))
            }
        }
    }
}

/// `width` x `height` samples of a plane from byte `x0` of row `y0` on, `step` bytes apart.
fn samples(plane: &Plane, x0: usize, y0: usize, width: usize, height: usize, step: usize) -> Array2<f32> {
    let mut out = Array2::zeros((height, width));
    for (r, mut row) in out.rows_mut().into_iter().enumerate() {
        let src = &plane.data[(y0 + r) * plane.stride + x0..];
        let row = row.as_slice_mut().expect("a row of a fresh standard-layout array");
        if step == 1 {
            // A plane of its own (I420's): a plain run the compiler vectorizes, where `step_by`
            // goes a byte at a time (the selfie's 700 px face: crop 7.8 against 6.4 ms a frame).
            for (o, s) in row.iter_mut().zip(&src[..width]) {
                *o = *s as f32;
            }
        } else {
            for (o, s) in row.iter_mut().zip(src.iter().step_by(step)) {
                *o = *s as f32;
            }
        }
    }
    out
}

/// The inverse of [`samples`].
fn put(plane: &mut Plane, x0: usize, y0: usize, step: usize, values: &Array2<f32>) {
    for (r, row) in values.rows().into_iter().enumerate() {
        let dst = &mut plane.data[(y0 + r) * plane.stride + x0..];
        match row.as_slice() {
            Some(row) if step == 1 => {
                for (d, v) in dst[..row.len()].iter_mut().zip(row) {
                    *d = to_u8(*v);
                }
            }
            _ => {
                for (d, v) in dst.iter_mut().step_by(step).zip(row.iter()) {
                    *d = to_u8(*v);
                }
            }
        }
    }
}

/// Brings the pixels whose Y, U and V lie outside the RGB cube onto it, as a conversion to
/// RGB clamps them; a chroma sample becomes the mean of its pixels' chroma after that. Most
/// pixels are inside: a chroma sample gives the range of luma that keeps its pixels inside, and
/// each pixel is two comparisons.
fn within_gamut(conv: &YuvConv, luma: &mut Array2<f32>, u: &mut Array2<f32>, v: &mut Array2<f32>) {
    let (h, w) = luma.dim();
    let luma = luma.as_slice_mut().expect("a fresh standard-layout array");
    let (u, v) = (u.as_slice_mut().expect("standard layout"), v.as_slice_mut().expect("standard layout"));
    let cw = w.div_ceil(2);
    for (i, (u, v)) in u.iter_mut().zip(v.iter_mut()).enumerate() {
        let (cy, cx) = (i / cw, i % cw);
        let pixels = || (2 * cy..(2 * cy + 2).min(h)).flat_map(move |y| (2 * cx..(2 * cx + 2).min(w)).map(move |x| y * w + x));
        // RGB is the luma's (Y - 16) * 255 / 219 in every channel plus what the chroma adds.
        let added = conv.rgb_from_yuv([16.0, *u, *v]);
        let (lo, hi) = (added.iter().fold(f32::MAX, |a, c| a.min(*c)), added.iter().fold(f32::MIN, |a, c| a.max(*c)));
        let (y_min, y_max) = (16.0 - lo * (219.0 / 255.0), 16.0 + (255.0 - hi) * (219.0 / 255.0));
        if pixels().all(|p| (y_min..=y_max).contains(&luma[p])) {
            continue;
        }
        let (mut sum, mut n) = ([0.0f32; 2], 0.0f32);
        for p in pixels() {
            let [ly, lu, lv] = conv.yuv_from_rgb(conv.rgb_from_yuv([luma[p], *u, *v]).map(|c| c.clamp(0.0, 255.0)));
            luma[p] = ly;
            sum[0] += lu;
            sum[1] += lv;
            n += 1.0;
        }
        (*u, *v) = (sum[0] / n, sum[1] / n);
    }
}
