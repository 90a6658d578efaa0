//! A region of a frame as float planes in the frame's own colour: what the SDN's crop and blend
//! work on, so that a face's pixels are not converted to RGB and back one by one.

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

/// A region's pixels, 0..255 (see [`FrameMut::read_planes`]), each plane [rows, columns].
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

    /// A region as float planes, one value a pixel: a 4:2:0 frame's own Y, and its U and V
    /// repeated over the pixels each covers (the region aligned as [`FrameMut::align_region`]
    /// gives it), any other frame's RGB. These are the values [`FrameMut::read_region`]
    /// converts to RGB, before rounding.
    pub fn read_planes(&self, region: Region) -> RegionPlanes {
        let (x, y, w, h) = (region.x, region.y, region.width, region.height);
        let planes = match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let luma = samples(&self.planes[0], x, y, w, h, 1, 1);
                let [u, v] = if self.format == PixelFormat::I420 {
                    [1, 2].map(|i| samples(&self.planes[i], x / 2, y / 2, w, h, 1, 2))
                } else {
                    [0, 1].map(|k| samples(&self.planes[1], x + k, y / 2, w, h, 2, 2))
                };
                [luma, u, v]
            }
            PixelFormat::Gray8 => {
                let grey = samples(&self.planes[0], x, y, w, h, 1, 1);
                [grey.clone(), grey.clone(), grey]
            }
            f => {
                let (bpp, offsets) = f.packed_layout().expect("packed format");
                offsets.map(|o| samples(&self.planes[0], x * bpp + o, y, w, h, bpp, 1))
            }
        };
        RegionPlanes { color: self.plane_color(), planes }
    }

    /// Writes planes shaped as [`FrameMut::read_planes`] gives them for this region, each value
    /// rounded and clamped to 0..255; a 4:2:0 chroma sample becomes the mean of its pixels, as
    /// in [`FrameMut::write_region`].
    pub fn write_planes(&mut self, region: Region, planes: &[Array2<f32>; 3]) -> Result<()> {
        ensure!(region.x + region.width <= self.width && region.y + region.height <= self.height, "region outside the frame");
        for (i, plane) in planes.iter().enumerate() {
            ensure!(
                plane.dim() == (region.height, region.width),
                "plane {i} is {:?} where the region is {region:?}",
                plane.dim()
            );
        }
        match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 => {
                ensure!(region.x.is_multiple_of(2) && region.y.is_multiple_of(2), "4:2:0 regions must start on even coordinates");
                put(&mut self.planes[0], region.x, region.y, 1, &planes[0]);
                let (u, v) = (pair_means(&planes[1]), pair_means(&planes[2]));
                let (cx, cy) = (region.x / 2, region.y / 2);
                if self.format == PixelFormat::I420 {
                    put(&mut self.planes[1], cx, cy, 1, &u);
                    put(&mut self.planes[2], cx, cy, 1, &v);
                } else {
                    put(&mut self.planes[1], cx * 2, cy, 2, &u);
                    put(&mut self.planes[1], cx * 2 + 1, cy, 2, &v);
                }
                Ok(())
            }
            PixelFormat::Gray8 => {
                // Grey is written as the luma of the RGB, as every other write to it is.
                let mut rgb = RgbImage::new(region.width, region.height);
                for (c, plane) in planes.iter().enumerate() {
                    for (px, v) in rgb.data.chunks_exact_mut(3).zip(plane.iter()) {
                        px[c] = to_u8(*v);
                    }
                }
                self.write_region(region, &rgb)
            }
            f => {
                let (bpp, offsets) = f.packed_layout().expect("packed format");
                for (o, plane) in offsets.into_iter().zip(planes) {
                    put(&mut self.planes[0], region.x * bpp + o, region.y, bpp, plane);
                }
                Ok(())
            }
        }
    }
}

/// The mean of each 2 x 2 block of a plane (fewer at an odd edge).
fn pair_means(plane: &Array2<f32>) -> Array2<f32> {
    let (h, w) = plane.dim();
    Array2::from_shape_fn((h.div_ceil(2), w.div_ceil(2)), |(cy, cx)| {
        let (rows, cols) = (2 * cy..(2 * cy + 2).min(h), 2 * cx..(2 * cx + 2).min(w));
        let n = (rows.len() * cols.len()) as f32;
        rows.flat_map(|y| cols.clone().map(move |x| (y, x))).map(|p| plane[p]).sum::<f32>() / n
    })
}

/// `width` x `height` pixels' values from a plane whose first is at byte `x0` of row `y0`,
/// samples `step` bytes apart, each sample covering `repeat` x `repeat` pixels.
fn samples(plane: &Plane, x0: usize, y0: usize, width: usize, height: usize, step: usize, repeat: usize) -> Array2<f32> {
    let mut out = Array2::zeros((height, width));
    for (r, mut row) in out.rows_mut().into_iter().enumerate() {
        let src = &plane.data[(y0 + r / repeat) * plane.stride + x0..];
        for (i, o) in row.iter_mut().enumerate() {
            *o = src[i / repeat * step] as f32;
        }
    }
    out
}

/// The inverse of [`samples`].
fn put(plane: &mut Plane, x0: usize, y0: usize, step: usize, values: &Array2<f32>) {
    for (r, row) in values.rows().into_iter().enumerate() {
        let dst = &mut plane.data[(y0 + r) * plane.stride + x0..];
        for (d, v) in dst.iter_mut().step_by(step).zip(row.iter()) {
            *d = to_u8(*v);
        }
    }
}
