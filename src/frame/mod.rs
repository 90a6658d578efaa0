//! Borrowed views of raw video frames in the pixel formats faceveil handles natively, and the
//! conversions between a frame region and packed RGB or float planes. The rest of the library
//! works on small regions, so a frame is converted only where a face is, never as a whole; the
//! SDN's crops stay in the frame's own colour (`planes`), and only its S x S grid is RGB.

mod planes;
pub mod rgb;

use anyhow::{Result, bail, ensure};

pub use planes::{PlaneColor, RegionPlanes};
use rgb::RgbImage;

/// Pixel layouts accepted from GStreamer, decoders and image files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    /// Four bytes a pixel; the fourth (alpha or padding) is left untouched.
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    I420,
    Nv12,
    Gray8,
}

/// YUV to RGB matrix. GStreamer's defaults are BT.601 for SD and BT.709 for HD; we follow the caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum YuvMatrix {
    #[default]
    Bt601,
    Bt709,
}

impl YuvMatrix {
    /// The matrix GStreamer assumes when caps carry no colorimetry.
    pub fn default_for_height(height: usize) -> Self {
        if height >= 720 { Self::Bt709 } else { Self::Bt601 }
    }

    fn kr_kb(self) -> (f32, f32) {
        match self {
            Self::Bt601 => (0.299, 0.114),
            Self::Bt709 => (0.2126, 0.0722),
        }
    }
}

/// One plane of a frame: its bytes and the distance between rows.
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

/// The bytes one plane of a frame holds over a region, row after row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaneRect {
    pub row_bytes: usize,
    pub rows: usize,
    pub data: Vec<u8>,
}

/// A mutable view of one frame.
pub struct FrameMut<'a> {
    format: PixelFormat,
    width: usize,
    height: usize,
    matrix: YuvMatrix,
    planes: Vec<Plane<'a>>,
}

/// Integer pixel rectangle, clipped to a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Region {
    /// Whether the two rectangles share a pixel.
    pub fn overlaps(&self, other: &Region) -> bool {
        self.x < other.x + other.width
            && other.x < self.x + self.width
            && self.y < other.y + other.height
            && other.y < self.y + self.height
    }
}

impl PixelFormat {
    fn packed_layout(self) -> Option<(usize, [usize; 3])> {
        // (bytes per pixel, offsets of R, G, B)
        match self {
            Self::Rgb => Some((3, [0, 1, 2])),
            Self::Bgr => Some((3, [2, 1, 0])),
            Self::Rgbx => Some((4, [0, 1, 2])),
            Self::Bgrx => Some((4, [2, 1, 0])),
            Self::Xrgb => Some((4, [1, 2, 3])),
            Self::Xbgr => Some((4, [3, 2, 1])),
            _ => None,
        }
    }

    fn plane_count(self) -> usize {
        match self {
            Self::I420 => 3,
            Self::Nv12 => 2,
            _ => 1,
        }
    }
}

impl<'a> FrameMut<'a> {
    /// Wraps planes that a caller (GStreamer, a decoder, an image) owns, checking that every row
    /// the format needs is inside its plane so that later accesses cannot go out of bounds.
    pub fn new(format: PixelFormat, width: usize, height: usize, matrix: YuvMatrix, planes: Vec<Plane<'a>>) -> Result<Self> {
        ensure!(width > 0 && height > 0, "empty frame ({width}x{height})");
        ensure!(planes.len() == format.plane_count(), "{format:?} needs {} planes, got {}", format.plane_count(), planes.len());
        let chroma_w = width.div_ceil(2);
        let chroma_h = height.div_ceil(2);
        let needs: Vec<(usize, usize)> = match format {
            PixelFormat::I420 => vec![(width, height), (chroma_w, chroma_h), (chroma_w, chroma_h)],
            PixelFormat::Nv12 => vec![(width, height), (chroma_w * 2, chroma_h)],
            PixelFormat::Gray8 => vec![(width, height)],
            f => {
                let (bpp, _) = f.packed_layout().expect("packed format");
                vec![(width * bpp, height)]
            }
        };
        for (i, (plane, (row_bytes, rows))) in planes.iter().zip(needs).enumerate() {
            ensure!(plane.stride >= row_bytes, "plane {i}: stride {} < row of {row_bytes} bytes", plane.stride);
            let needed = plane.stride * (rows - 1) + row_bytes;
            ensure!(plane.data.len() >= needed, "plane {i}: {} bytes, need {needed}", plane.data.len());
        }
        Ok(Self { format, width, height, matrix, planes })
    }

    /// A packed single-plane frame with rows of `stride` bytes.
    pub fn packed(format: PixelFormat, width: usize, height: usize, stride: usize, data: &'a mut [u8]) -> Result<Self> {
        Self::new(format, width, height, YuvMatrix::default(), vec![Plane { data, stride }])
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Converts one row segment `[x0, x0 + out.len() / 3)` of row `y` to RGB.
    fn read_row(&self, y: usize, x0: usize, out: &mut [u8]) {
        let n = out.len() / 3;
        match self.format {
            PixelFormat::Gray8 => {
                let row = &self.planes[0].data[y * self.planes[0].stride..];
                for i in 0..n {
                    let v = row[x0 + i];
                    out[i * 3..i * 3 + 3].copy_from_slice(&[v, v, v]);
                }
            }
            PixelFormat::I420 | PixelFormat::Nv12 => {
                let luma = &self.planes[0].data[y * self.planes[0].stride + x0..][..n];
                let (u, v, step) = self.chroma_row(y / 2);
                YuvConv::new(self.matrix).row_to_rgb(luma, x0, |cx| (u[cx * step], v[cx * step]), out);
            }
            f => {
                let (bpp, [r, g, b]) = f.packed_layout().expect("packed format");
                let row = &self.planes[0].data[y * self.planes[0].stride + x0 * bpp..];
                for i in 0..n {
                    let p = &row[i * bpp..];
                    out[i * 3..i * 3 + 3].copy_from_slice(&[p[r], p[g], p[b]]);
                }
            }
        }
    }

    /// Row `cy` of a 4:2:0 frame's chroma: its U and V samples, each at every `step`-th byte.
    fn chroma_row(&self, cy: usize) -> (&[u8], &[u8], usize) {
        let at = |i: usize| &self.planes[i].data[cy * self.planes[i].stride..];
        match self.format {
            PixelFormat::I420 => (at(1), at(2), 1),
            _ => (at(1), &at(1)[1..], 2),
        }
    }

    /// Copies a region out as packed RGB.
    pub fn read_region(&self, region: Region) -> RgbImage {
        let mut img = RgbImage::new(region.width, region.height);
        for row in 0..region.height {
            let out = img.row_mut(row);
            self.read_row(region.y + row, region.x, out);
        }
        img
    }

    /// Writes packed RGB back into a region. For 4:2:0 formats the region is widened to even
    /// coordinates by the caller (see [`FrameMut::align_region`]) and each chroma sample becomes
    /// the mean of its four pixels.
    pub fn write_region(&mut self, region: Region, img: &RgbImage) -> Result<()> {
        ensure!(
            img.width == region.width && img.height == region.height,
            "region {}x{} does not match image {}x{}",
            region.width,
            region.height,
            img.width,
            img.height
        );
        ensure!(region.x + region.width <= self.width && region.y + region.height <= self.height, "region outside the frame");
        match self.format {
            PixelFormat::Gray8 => {
                let stride = self.planes[0].stride;
                for row in 0..region.height {
                    let src = img.row(row);
                    let dst = &mut self.planes[0].data[(region.y + row) * stride + region.x..];
                    for i in 0..region.width {
                        let p = &src[i * 3..i * 3 + 3];
                        dst[i] = luma_u8(p);
                    }
                }
            }
            PixelFormat::I420 | PixelFormat::Nv12 => self.write_region_yuv420(region, img)?,
            f => {
                let (bpp, [r, g, b]) = f.packed_layout().expect("packed format");
                let stride = self.planes[0].stride;
                for row in 0..region.height {
                    let src = img.row(row);
                    let dst = &mut self.planes[0].data[(region.y + row) * stride + region.x * bpp..];
                    for i in 0..region.width {
                        let (s, d) = (&src[i * 3..i * 3 + 3], &mut dst[i * bpp..i * bpp + bpp]);
                        d[r] = s[0];
                        d[g] = s[1];
                        d[b] = s[2];
                    }
                }
            }
        }
        Ok(())
    }

    fn write_region_yuv420(&mut self, region: Region, img: &RgbImage) -> Result<()> {
        if !region.x.is_multiple_of(2) || !region.y.is_multiple_of(2) {
            bail!("4:2:0 regions must start on even coordinates");
        }
        let conv = YuvConv::new(self.matrix);
        let ystride = self.planes[0].stride;
        for row in 0..region.height {
            let src = img.row(row);
            let dst = &mut self.planes[0].data[(region.y + row) * ystride + region.x..];
            for i in 0..region.width {
                dst[i] = conv.luma(&src[i * 3..i * 3 + 3]);
            }
        }
        let (cx0, cy0) = (region.x / 2, region.y / 2);
        for cy in 0..region.height.div_ceil(2) {
            let row = cy0 + cy;
            if self.format == PixelFormat::I420 {
                let (s1, s2) = (self.planes[1].stride, self.planes[2].stride);
                let [_, u, v] = &mut self.planes[..] else { unreachable!("I420 has three planes") };
                let (u, v) = (&mut u.data[row * s1 + cx0..], &mut v.data[row * s2 + cx0..]);
                conv.chroma_row(img, cy, |cx, cu, cv| (u[cx], v[cx]) = (cu, cv));
            } else {
                let s = self.planes[1].stride;
                let uv = &mut self.planes[1].data[row * s + cx0 * 2..];
                conv.chroma_row(img, cy, |cx, cu, cv| (uv[cx * 2], uv[cx * 2 + 1]) = (cu, cv));
            }
        }
        Ok(())
    }

    /// Where a region lies in plane `i`: (first byte of its rows, bytes a row, first row, rows).
    /// 4:2:0 regions must be aligned as for [`FrameMut::write_region`].
    fn plane_rect(&self, i: usize, region: Region) -> (usize, usize, usize, usize) {
        let (cw, ch) = (region.width.div_ceil(2), region.height.div_ceil(2));
        match (self.format, i) {
            (PixelFormat::I420 | PixelFormat::Nv12, 0) | (PixelFormat::Gray8, _) => {
                (region.x, region.width, region.y, region.height)
            }
            (PixelFormat::I420, _) => (region.x / 2, cw, region.y / 2, ch),
            (PixelFormat::Nv12, _) => (region.x, cw * 2, region.y / 2, ch),
            (f, _) => {
                let (bpp, _) = f.packed_layout().expect("packed format");
                (region.x * bpp, region.width * bpp, region.y, region.height)
            }
        }
    }

    /// The bytes a region covers in each of the frame's planes, in the frame's own format: what
    /// is needed to put exactly these pixels back (see [`FrameMut::write_region_planes`]).
    pub fn region_planes(&self, region: Region) -> Vec<PlaneRect> {
        (0..self.planes.len())
            .map(|i| {
                let (x, row_bytes, y, rows) = self.plane_rect(i, region);
                let plane = &self.planes[i];
                let data = (y..y + rows).flat_map(|r| &plane.data[r * plane.stride + x..][..row_bytes]).copied().collect();
                PlaneRect { row_bytes, rows, data }
            })
            .collect()
    }

    /// Writes back what [`FrameMut::region_planes`] read from a region of a frame of this format.
    pub fn write_region_planes(&mut self, region: Region, planes: &[PlaneRect]) -> Result<()> {
        ensure!(region.x + region.width <= self.width && region.y + region.height <= self.height, "region outside the frame");
        ensure!(planes.len() == self.planes.len(), "{} planes for a {:?} frame", planes.len(), self.format);
        for (i, rect) in planes.iter().enumerate() {
            let (x, row_bytes, y, rows) = self.plane_rect(i, region);
            ensure!(
                (rect.row_bytes, rect.rows) == (row_bytes, rows) && rect.data.len() == row_bytes * rows,
                "plane {i} holds {}x{} bytes where the region needs {row_bytes}x{rows}",
                rect.row_bytes,
                rect.rows
            );
            let plane = &mut self.planes[i];
            for (r, src) in rect.data.chunks_exact(row_bytes).enumerate() {
                plane.data[(y + r) * plane.stride + x..][..row_bytes].copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// The whole frame as a region.
    pub fn whole(&self) -> Region {
        Region { x: 0, y: 0, width: self.width, height: self.height }
    }

    /// Paints a region black: what is left of a frame, or of a face, that cannot be made safe
    /// otherwise. 4:2:0 regions must be aligned as for [`FrameMut::write_region`].
    pub fn fill_black(&mut self, region: Region) -> Result<()> {
        self.write_region(region, &RgbImage::new(region.width, region.height))
    }

    /// Clips a rectangle in pixel coordinates to the frame and, for 4:2:0 formats, widens it to
    /// even coordinates so chroma samples are written whole. `None` when nothing is left.
    pub fn align_region(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> Option<Region> {
        let clamp = |v: f32, max: usize| (v.max(0.0) as usize).min(max);
        let (mut xa, mut ya) = (clamp(x0.floor(), self.width), clamp(y0.floor(), self.height));
        let (mut xb, mut yb) = (clamp(x1.ceil(), self.width), clamp(y1.ceil(), self.height));
        if matches!(self.format, PixelFormat::I420 | PixelFormat::Nv12) {
            xa &= !1;
            ya &= !1;
            xb = (xb + (xb & 1)).min(self.width);
            yb = (yb + (yb & 1)).min(self.height);
        }
        (xb > xa && yb > ya).then_some(Region { x: xa, y: ya, width: xb - xa, height: yb - ya })
    }

    /// A whole-frame RGB copy scaled by box averaging to at most `max_side` pixels on its longer
    /// side (detectors are run on this). Returns the image and the factor from it back to the frame.
    /// Blocks are averaged in the frame's own format and converted once per output pixel, in
    /// integers: this runs on every detected frame, in the stage that bounds the frame rate.
    pub fn downscaled_rgb(&self, max_side: usize) -> (RgbImage, f32) {
        let (w, h, scale) = downscaled_size(self.width, self.height, max_side);
        let blocks = BoxBlocks::new(w, h, self.width, self.height);
        let mut out = RgbImage::new(w, h);
        match self.format {
            PixelFormat::I420 | PixelFormat::Nv12 | PixelFormat::Gray8 => self.downscale_planar(&blocks, &mut out),
            _ => self.downscale_packed(&blocks, &mut out),
        }
        (out, scale)
    }

    /// Mean brightness of each cell of a `cols` x `rows` grid over the frame, from 4 x 4 samples
    /// a cell: a picture of the frame's layout cheap enough to take on every frame (scene-cut
    /// detection), not an image to look at. Planar formats read their luma plane; packed ones the
    /// luma of their RGB.
    pub fn luma_thumbnail(&self, cols: usize, rows: usize) -> Vec<u8> {
        const SAMPLES: usize = 4;
        let at = |i: usize, n: usize, size: usize| ((2 * i + 1) * size / (2 * n)).min(size - 1);
        let plane = &self.planes[0];
        let packed = self.format.packed_layout();
        let luma = |x: usize, y: usize| -> u32 {
            let row = &plane.data[y * plane.stride..];
            match packed {
                None => row[x] as u32,
                Some((bpp, [r, g, b])) => {
                    let p = &row[x * bpp..];
                    luma_u8(&[p[r], p[g], p[b]]) as u32
                }
            }
        };
        let mut out = Vec::with_capacity(cols * rows);
        for cy in 0..rows {
            for cx in 0..cols {
                let mut sum = 0;
                for sy in 0..SAMPLES {
                    let y = at(cy * SAMPLES + sy, rows * SAMPLES, self.height);
                    for sx in 0..SAMPLES {
                        sum += luma(at(cx * SAMPLES + sx, cols * SAMPLES, self.width), y);
                    }
                }
                out.push((sum / (SAMPLES * SAMPLES) as u32) as u8);
            }
        }
        out
    }

    fn downscale_planar(&self, blocks: &BoxBlocks, out: &mut RgbImage) {
        let plane = &self.planes[0];
        let conv = YuvFixed::new(self.matrix);
        let mut columns = vec![0u32; self.width];
        for (oy, &(ya, yb)) in blocks.ys.iter().enumerate() {
            column_sums(&mut columns, (ya..yb).map(|y| &plane.data[y * plane.stride..][..self.width]));
            let chroma = (self.format != PixelFormat::Gray8).then(|| self.chroma_row((ya + yb) / 4));
            for (&(xa, xb), dst) in blocks.xs.iter().zip(out.row_mut(oy).chunks_exact_mut(3)) {
                let luma = blocks.mean(columns[xa..xb].iter().sum(), (xb - xa) * (yb - ya));
                dst.copy_from_slice(&match chroma {
                    None => [luma; 3],
                    Some((u, v, step)) => {
                        let cx = (xa + xb) / 4 * step;
                        conv.to_rgb(luma, u[cx], v[cx])
                    }
                });
            }
        }
    }

    fn downscale_packed(&self, blocks: &BoxBlocks, out: &mut RgbImage) {
        let (bpp, [r, g, b]) = self.format.packed_layout().expect("packed format");
        let plane = &self.planes[0];
        let row_bytes = self.width * bpp;
        let mut columns = vec![0u32; row_bytes];
        for (oy, &(ya, yb)) in blocks.ys.iter().enumerate() {
            column_sums(&mut columns, (ya..yb).map(|y| &plane.data[y * plane.stride..][..row_bytes]));
            let dst = out.row_mut(oy);
            for (ox, &(xa, xb)) in blocks.xs.iter().enumerate() {
                let mut sum = [0u32; 3];
                for p in columns[xa * bpp..xb * bpp].chunks_exact(bpp) {
                    sum[0] += p[r];
                    sum[1] += p[g];
                    sum[2] += p[b];
                }
                let n = (xb - xa) * (yb - ya);
                dst[ox * 3..ox * 3 + 3].copy_from_slice(&sum.map(|v| blocks.mean(v, n)));
            }
        }
    }
}

/// Adds `rows` up byte by byte into `columns` (cleared first): a downscale sums each band of
/// rows once this way, in a loop the compiler vectorizes, and then each block's few columns,
/// instead of walking every block's rows pixel by pixel.
fn column_sums<'a>(columns: &mut [u32], rows: impl Iterator<Item = &'a [u8]>) {
    columns.fill(0);
    for row in rows {
        for (c, &v) in columns.iter_mut().zip(row) {
            *c += v as u32;
        }
    }
}

/// The source spans each output pixel of a box downscale averages, with reciprocals of the
/// block sizes (a division per pixel would cost as much as the rest).
struct BoxBlocks {
    xs: Vec<(usize, usize)>,
    ys: Vec<(usize, usize)>,
    /// 2^16 / n, rounded, for every block size n that occurs.
    reciprocal: Vec<u32>,
}

impl BoxBlocks {
    fn new(w: usize, h: usize, src_w: usize, src_h: usize) -> Self {
        let spans = |n: usize, src: usize| -> Vec<(usize, usize)> {
            (0..n)
                .map(|o| {
                    let a = o * src / n;
                    (a, ((o + 1) * src / n).max(a + 1).min(src))
                })
                .collect()
        };
        let (xs, ys) = (spans(w, src_w), spans(h, src_h));
        let widest = |s: &[(usize, usize)]| s.iter().map(|(a, b)| b - a).max().unwrap_or(1);
        let largest = widest(&xs) * widest(&ys);
        let reciprocal = (0..=largest).map(|n| ((1u32 << 16) + n as u32 / 2) / n.max(1) as u32).collect();
        Self { xs, ys, reciprocal }
    }

    /// The mean of `n` samples that add up to `sum`, rounded.
    fn mean(&self, sum: u32, n: usize) -> u8 {
        ((sum as u64 * self.reciprocal[n] as u64 + (1 << 15)) >> 16).min(255) as u8
    }
}

/// YUV (limited range) to RGB in 16-bit fixed point: `YuvConv::to_rgb` to within one level
/// (tested), for the detector's downscale. Face crops keep the float conversion, which gives
/// every pixel but a few hundred of the 16.8 million YUV triples the value the shipped model's
/// measured numbers were made with.
struct YuvFixed {
    y: i32,
    rv: i32,
    gu: i32,
    gv: i32,
    bu: i32,
}

impl YuvFixed {
    fn new(matrix: YuvMatrix) -> Self {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        let fixed = |v: f32| (v * 65536.0).round() as i32;
        let (rv, bu) = (255.0 * 2.0 * (1.0 - kr) / 224.0, 255.0 * 2.0 * (1.0 - kb) / 224.0);
        Self { y: fixed(255.0 / 219.0), rv: fixed(rv), gu: fixed(kb * bu / kg), gv: fixed(kr * rv / kg), bu: fixed(bu) }
    }

    fn to_rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let (y, u, v) = (self.y * (y as i32 - 16) + (1 << 15), u as i32 - 128, v as i32 - 128);
        let clip = |x: i32| (x >> 16).clamp(0, 255) as u8;
        [clip(y + self.rv * v), clip(y - self.gu * u - self.gv * v), clip(y + self.bu * u)]
    }
}

/// Rec. 601 luma of an RGB pixel, rounded as [`to_u8`] rounds (the change map takes it for
/// every pixel of every look, where `f32::round` was a library call).
pub(crate) fn luma_u8(p: &[u8]) -> u8 {
    (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32 + 0.5) as u8
}

/// Limited-range YUV <-> RGB, the range decoders and encoders use for video.
struct YuvConv {
    kr: f32,
    kb: f32,
    kg: f32,
    /// 1 / kg, 1 / (2 (1 - kb)), 1 / (2 (1 - kr)): see `chroma_f`.
    inv_kg: f32,
    inv_2kb: f32,
    inv_2kr: f32,
}

impl YuvConv {
    fn new(matrix: YuvMatrix) -> Self {
        let (kr, kb) = matrix.kr_kb();
        let kg = 1.0 - kr - kb;
        Self { kr, kb, kg, inv_kg: 1.0 / kg, inv_2kb: 1.0 / (2.0 * (1.0 - kb)), inv_2kr: 1.0 / (2.0 * (1.0 - kr)) }
    }

    #[cfg(test)]
    fn to_rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        self.to_rgb_from(y, self.chroma_f(u, v))
    }

    /// Pb and Pr (-0.5..0.5) of a chroma sample; two to four pixels share them. This
    /// conversion multiplies by reciprocals where the one the shipped model was measured with
    /// divided: that changes one level of one channel in a few hundred of the 16.8 million
    /// triples each way (tested), and the divisions were most of a face crop's conversion.
    fn chroma_f(&self, u: u8, v: u8) -> (f32, f32) {
        ((u as f32 - 128.0) * (1.0 / 224.0), (v as f32 - 128.0) * (1.0 / 224.0))
    }

    fn to_rgb_from(&self, y: u8, (pb, pr): (f32, f32)) -> [u8; 3] {
        self.rgb_scaled((y as f32 - 16.0) * (1.0 / 219.0), pb, pr).map(to_u8)
    }

    /// RGB 0..255 of luma 0..1 and Pb, Pr -0.5..0.5.
    fn rgb_scaled(&self, yf: f32, pb: f32, pr: f32) -> [f32; 3] {
        let r = yf + 2.0 * (1.0 - self.kr) * pr;
        let b = yf + 2.0 * (1.0 - self.kb) * pb;
        let g = (yf - self.kr * r - self.kb * b) * self.inv_kg;
        [r * 255.0, g * 255.0, b * 255.0]
    }

    /// One row of 4:2:0 pixels from `x0` on: `luma` holds them, `chroma(cx)` gives the U and V
    /// of chroma column `cx`.
    fn row_to_rgb(&self, luma: &[u8], x0: usize, chroma: impl Fn(usize) -> (u8, u8), out: &mut [u8]) {
        let mut sample = (usize::MAX, (0.0, 0.0));
        for (i, (&y, px)) in luma.iter().zip(out.chunks_exact_mut(3)).enumerate() {
            let cx = (x0 + i) / 2;
            if sample.0 != cx {
                let (u, v) = chroma(cx);
                sample = (cx, self.chroma_f(u, v));
            }
            px.copy_from_slice(&self.to_rgb_from(y, sample.1));
        }
    }

    fn luma_f(&self, rgb: [f32; 3]) -> f32 {
        (self.kr * rgb[0] + self.kg * rgb[1] + self.kb * rgb[2]) * (1.0 / 255.0)
    }

    fn luma(&self, p: &[u8]) -> u8 {
        to_u8(16.0 + 219.0 * self.luma_f([p[0] as f32, p[1] as f32, p[2] as f32]))
    }

    fn chroma(&self, rgb: [f32; 3]) -> (u8, u8) {
        let [_, u, v] = self.yuv_from_rgb(rgb);
        (to_u8(u), to_u8(v))
    }

    /// Y, U and V (limited range, 0..255 scale, not rounded) of RGB 0..255.
    fn yuv_from_rgb(&self, rgb: [f32; 3]) -> [f32; 3] {
        let y = self.luma_f(rgb);
        let pb = (rgb[2] * (1.0 / 255.0) - y) * self.inv_2kb;
        let pr = (rgb[0] * (1.0 / 255.0) - y) * self.inv_2kr;
        [16.0 + 219.0 * y, 128.0 + 224.0 * pb, 128.0 + 224.0 * pr]
    }

    /// The inverse of [`YuvConv::yuv_from_rgb`], neither rounded nor clamped.
    fn rgb_from_yuv(&self, [y, u, v]: [f32; 3]) -> [f32; 3] {
        self.rgb_scaled((y - 16.0) * (1.0 / 219.0), (u - 128.0) * (1.0 / 224.0), (v - 128.0) * (1.0 / 224.0))
    }

    /// U and V of chroma row `cy` of an RGB image: each the mean of the (up to) four pixels a
    /// chroma sample covers.
    fn chroma_row(&self, img: &RgbImage, cy: usize, mut put: impl FnMut(usize, u8, u8)) {
        let rows = [Some(img.row(cy * 2)), (cy * 2 + 1 < img.height).then(|| img.row(cy * 2 + 1))];
        for cx in 0..img.width.div_ceil(2) {
            let (mut sum, mut count) = ([0f32; 3], 0f32);
            for row in rows.iter().flatten() {
                for p in row[cx * 6..(cx * 6 + 6).min(row.len())].chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += p[c] as f32;
                    }
                    count += 1.0;
                }
            }
            let (u, v) = self.chroma([sum[0] / count, sum[1] / count, sum[2] / count]);
            put(cx, u, v);
        }
    }
}

/// Nearest 8-bit value, ties upward (as `round` for these non-negative values). Adding a half
/// and truncating is one instruction where `f32::round` is a library call, and this runs for
/// every channel of every pixel a face changes.
pub(crate) fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

/// The size a `width` x `height` frame is downscaled to so that its longer side is at most
/// `max_side` (never enlarged), and the factor it shrinks by.
pub fn downscaled_size(width: usize, height: usize, max_side: usize) -> (usize, usize, f32) {
    let scale = (width.max(height) as f32 / max_side.max(1) as f32).max(1.0);
    (((width as f32 / scale).round() as usize).max(1), ((height as f32 / scale).round() as usize).max(1), scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_round_trip_stays_close() {
        let conv = YuvConv::new(YuvMatrix::Bt709);
        for rgb in [[200u8, 150, 120], [20, 30, 40], [255, 255, 255], [90, 200, 60]] {
            let y = conv.luma(&rgb);
            let (u, v) = conv.chroma([rgb[0] as f32, rgb[1] as f32, rgb[2] as f32]);
            let back = conv.to_rgb(y, u, v);
            for c in 0..3 {
                assert!((back[c] as i32 - rgb[c] as i32).abs() <= 3, "{rgb:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn odd_sized_i420_region_round_trips() {
        let (w, h) = (641usize, 479usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y = vec![100u8; w * h];
        let mut u = vec![120u8; cw * ch];
        let mut v = vec![140u8; cw * ch];
        let planes =
            vec![Plane { data: &mut y, stride: w }, Plane { data: &mut u, stride: cw }, Plane { data: &mut v, stride: cw }];
        let mut frame = FrameMut::new(PixelFormat::I420, w, h, YuvMatrix::Bt601, planes).unwrap();
        let region = frame.align_region(600.3, 440.0, 700.0, 500.0).unwrap();
        assert_eq!((region.x + region.width, region.y + region.height), (w, h));
        let img = frame.read_region(region);
        frame.write_region(region, &img).unwrap();
        let again = frame.read_region(region);
        let max_diff = img.data.iter().zip(&again.data).map(|(a, b)| (*a as i32 - *b as i32).abs()).max();
        assert!(max_diff.unwrap() <= 3);
    }

    #[test]
    fn downscaling_averages_blocks() {
        let (w, h) = (8usize, 4usize);
        let mut data: Vec<u8> = (0..w * h).flat_map(|i| if i % 2 == 0 { [0u8, 0, 0] } else { [200, 100, 50] }).collect();
        let frame = FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut data).unwrap();
        let (small, scale) = frame.downscaled_rgb(4);
        assert_eq!((small.width, small.height, scale), (4, 2, 2.0));
        assert_eq!(small.pixel(1, 1), [100, 50, 25]);
    }

    #[test]
    fn the_reciprocal_conversions_are_the_divisions_but_for_a_few_ties() {
        // The conversion face crops were measured with, divisions and all.
        let divided = |c: &YuvConv, y: u8, u: u8, v: u8| {
            let yf = (y as f32 - 16.0) / 219.0;
            let (pb, pr) = ((u as f32 - 128.0) / 224.0, (v as f32 - 128.0) / 224.0);
            let (r, b) = (yf + 2.0 * (1.0 - c.kr) * pr, yf + 2.0 * (1.0 - c.kb) * pb);
            let g = (yf - c.kr * r - c.kb * b) / c.kg;
            [to_u8(r * 255.0), to_u8(g * 255.0), to_u8(b * 255.0)]
        };
        for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
            let conv = YuvConv::new(matrix);
            let mut differ = 0;
            for y in 0..=255u8 {
                for u in 0..=255u8 {
                    for v in 0..=255u8 {
                        let (a, b) = (conv.to_rgb(y, u, v), divided(&conv, y, u, v));
                        assert!(a.iter().zip(b).all(|(a, b)| a.abs_diff(b) <= 1), "{matrix:?} y {y} u {u} v {v}");
                        differ += usize::from(a != b);
                    }
                }
            }
            // 106 (BT.601) and 77 (BT.709) of the 16.8 million, each by one level in one channel.
            assert!(differ <= 200, "{matrix:?}: {differ} YUV triples differ");
            let luma_divided = |p: [f32; 3]| to_u8(16.0 + 219.0 * ((conv.kr * p[0] + conv.kg * p[1] + conv.kb * p[2]) / 255.0));
            let chroma_divided = |p: [f32; 3]| {
                let y = (conv.kr * p[0] + conv.kg * p[1] + conv.kb * p[2]) / 255.0;
                let pb = (p[2] / 255.0 - y) / (2.0 * (1.0 - conv.kb));
                let pr = (p[0] / 255.0 - y) / (2.0 * (1.0 - conv.kr));
                (to_u8(128.0 + 224.0 * pb), to_u8(128.0 + 224.0 * pr))
            };
            let mut differ = 0;
            for r in 0..=255u8 {
                for g in 0..=255u8 {
                    for b in 0..=255u8 {
                        let p = [r as f32, g as f32, b as f32];
                        let (l, (u, v)) = (conv.luma(&[r, g, b]), conv.chroma(p));
                        let (ld, (ud, vd)) = (luma_divided(p), chroma_divided(p));
                        assert!(l.abs_diff(ld) <= 1 && u.abs_diff(ud) <= 1 && v.abs_diff(vd) <= 1, "{matrix:?} rgb {p:?}");
                        differ += usize::from((l, u, v) != (ld, ud, vd));
                    }
                }
            }
            // 262 and 298.
            assert!(differ <= 600, "{matrix:?}: {differ} RGB triples differ");
        }
    }

    #[test]
    fn fixed_point_yuv_matches_the_float_conversion() {
        for matrix in [YuvMatrix::Bt601, YuvMatrix::Bt709] {
            let (float, fixed) = (YuvConv::new(matrix), YuvFixed::new(matrix));
            for y in (0..=255u8).step_by(5) {
                for u in (0..=255u8).step_by(15) {
                    for v in (0..=255u8).step_by(15) {
                        let (a, b) = (float.to_rgb(y, u, v), fixed.to_rgb(y, u, v));
                        assert!(a.iter().zip(b).all(|(a, b)| (*a as i32 - b as i32).abs() <= 1), "{y} {u} {v}: {a:?} vs {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_downscaled_pixel_is_the_rounded_mean_of_its_block() {
        // Odd sizes give blocks of two sizes along each axis; the padded stride and the channel
        // order are those of a frame a decoder hands over.
        let (w, h, stride) = (1283usize, 723usize, 1283 * 4 + 12);
        let mut state = 0x2545_f491u32;
        let mut data: Vec<u8> = (0..stride * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        let expected = |data: &[u8], bpp: usize, offsets: [usize; 3], small: &RgbImage| {
            let blocks = BoxBlocks::new(small.width, small.height, w, h);
            for (oy, &(ya, yb)) in blocks.ys.iter().enumerate() {
                for (ox, &(xa, xb)) in blocks.xs.iter().enumerate() {
                    let n = (xb - xa) * (yb - ya);
                    let mean = |c: usize| {
                        let sum =
                            (ya..yb).flat_map(|y| (xa..xb).map(move |x| data[y * stride + x * bpp + offsets[c]] as u32)).sum();
                        blocks.mean(sum, n)
                    };
                    assert_eq!(small.pixel(ox, oy), [mean(0), mean(1), mean(2)], "pixel ({ox}, {oy})");
                }
            }
        };
        let bgrx = FrameMut::packed(PixelFormat::Bgrx, w, h, stride, &mut data).unwrap();
        let (small, _) = bgrx.downscaled_rgb(640);
        assert_eq!((small.width, small.height), (640, 361));
        expected(&data, 4, [2, 1, 0], &small);
        let gray = FrameMut::packed(PixelFormat::Gray8, w, h, stride, &mut data).unwrap();
        let (small, _) = gray.downscaled_rgb(640);
        expected(&data, 1, [0, 0, 0], &small);
        // 4:2:0: the luma block's mean with the chroma sample at the block's centre.
        let (w, h) = (1282usize, 722usize);
        let (cw, ch) = (w / 2, h / 2);
        let (luma, u, v, uv) = (&data[..w * h], &data[1..=cw * ch], &data[2..cw * ch + 2], &data[3..2 * cw * ch + 3]);
        let conv = YuvFixed::new(YuvMatrix::Bt709);
        let check = |small: &RgbImage, chroma: &dyn Fn(usize, usize) -> (u8, u8)| {
            let blocks = BoxBlocks::new(small.width, small.height, w, h);
            for (oy, &(ya, yb)) in blocks.ys.iter().enumerate() {
                for (ox, &(xa, xb)) in blocks.xs.iter().enumerate() {
                    let sum = (ya..yb).flat_map(|y| (xa..xb).map(move |x| luma[y * w + x] as u32)).sum();
                    let (cu, cv) = chroma((xa + xb) / 4, (ya + yb) / 4);
                    let rgb = conv.to_rgb(blocks.mean(sum, (xb - xa) * (yb - ya)), cu, cv);
                    assert_eq!(small.pixel(ox, oy), rgb, "pixel ({ox}, {oy})");
                }
            }
        };
        // Frames take their planes mutably: each is made over copies.
        let (mut y_plane, mut u_plane, mut v_plane) = (luma.to_vec(), u.to_vec(), v.to_vec());
        let planes = vec![
            Plane { data: &mut y_plane, stride: w },
            Plane { data: &mut u_plane, stride: cw },
            Plane { data: &mut v_plane, stride: cw },
        ];
        let (small, _) = FrameMut::new(PixelFormat::I420, w, h, YuvMatrix::Bt709, planes).unwrap().downscaled_rgb(640);
        check(&small, &|x, y| (u[y * cw + x], v[y * cw + x]));
        let mut uv_plane = uv.to_vec();
        let planes = vec![Plane { data: &mut y_plane, stride: w }, Plane { data: &mut uv_plane, stride: w }];
        let (small, _) = FrameMut::new(PixelFormat::Nv12, w, h, YuvMatrix::Bt709, planes).unwrap().downscaled_rgb(640);
        check(&small, &|x, y| (uv[y * w + 2 * x], uv[y * w + 2 * x + 1]));
    }

    #[test]
    fn downscaling_i420_averages_luma_blocks() {
        // 8x4 luma in 2x2 blocks of 40 and 240 alternating by column pair, neutral chroma.
        let (w, h) = (8usize, 4usize);
        let mut y: Vec<u8> = (0..w * h).map(|i| if (i % w) / 2 % 2 == 0 { 40 } else { 240 }).collect();
        let (mut u, mut v) = (vec![128u8; w * h / 4], vec![128u8; w * h / 4]);
        let planes =
            vec![Plane { data: &mut y, stride: w }, Plane { data: &mut u, stride: w / 2 }, Plane { data: &mut v, stride: w / 2 }];
        let frame = FrameMut::new(PixelFormat::I420, w, h, YuvMatrix::Bt601, planes).unwrap();
        let (small, scale) = frame.downscaled_rgb(4);
        assert_eq!((small.width, small.height, scale), (4, 2, 2.0));
        let expect = |y: f32| ((y - 16.0) * 255.0 / 219.0).round().clamp(0.0, 255.0) as u8;
        assert_eq!(small.pixel(0, 1), [expect(40.0); 3]);
        assert_eq!(small.pixel(1, 0), [expect(240.0); 3]);
    }

    /// Each format's planes for a `w` x `h` frame: (bytes a row, rows); rows are padded by 5
    /// bytes as GStreamer pads them.
    fn layouts(w: usize, h: usize) -> [(PixelFormat, Vec<(usize, usize)>); 9] {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        [
            (PixelFormat::I420, vec![(w, h), (cw, ch), (cw, ch)]),
            (PixelFormat::Nv12, vec![(w, h), (cw * 2, ch)]),
            (PixelFormat::Gray8, vec![(w, h)]),
            (PixelFormat::Rgb, vec![(w * 3, h)]),
            (PixelFormat::Bgr, vec![(w * 3, h)]),
            (PixelFormat::Rgbx, vec![(w * 4, h)]),
            (PixelFormat::Bgrx, vec![(w * 4, h)]),
            (PixelFormat::Xrgb, vec![(w * 4, h)]),
            (PixelFormat::Xbgr, vec![(w * 4, h)]),
        ]
    }

    #[test]
    fn a_regions_plane_bytes_come_back_exactly_in_every_format() {
        let (w, h) = (37usize, 23usize);
        for (format, layout) in layouts(w, h) {
            let mut buffers: Vec<Vec<u8>> =
                layout.iter().map(|(row, rows)| (0..(row + 5) * rows).map(|i| (i * 31 % 251) as u8).collect()).collect();
            let original = buffers.clone();
            let planes = buffers.iter_mut().zip(&layout).map(|(data, (row, _))| Plane { data, stride: row + 5 }).collect();
            let mut frame = FrameMut::new(format, w, h, YuvMatrix::Bt601, planes).unwrap();
            // A region cut by the frame's right and bottom edges, at an odd width.
            let region = frame.align_region(20.6, 9.2, 40.0, 30.0).unwrap();
            let saved = frame.region_planes(region);
            frame.fill_black(region).unwrap();
            frame.write_region_planes(region, &saved).unwrap();
            drop(frame);
            assert_eq!(buffers, original, "{format:?}: the region's bytes come back exactly");
            let mut other = saved.clone();
            other[0].rows -= 1;
            let planes = buffers.iter_mut().zip(&layout).map(|(data, (row, _))| Plane { data, stride: row + 5 }).collect();
            let mut frame = FrameMut::new(format, w, h, YuvMatrix::Bt601, planes).unwrap();
            assert!(frame.write_region_planes(region, &other).is_err(), "{format:?}: planes of another size");
        }
    }

    #[test]
    fn a_region_read_as_planes_is_written_back_exactly_in_every_format() {
        let (w, h) = (37usize, 23usize);
        for (format, layout) in layouts(w, h) {
            // Greys and muted colours: no YUV pixel outside the RGB cube, which a read would move.
            let mut buffers: Vec<Vec<u8>> =
                layout.iter().map(|(row, rows)| (0..(row + 5) * rows).map(|i| (112 + i * 31 % 29) as u8).collect()).collect();
            let original = buffers.clone();
            let planes = buffers.iter_mut().zip(&layout).map(|(data, (row, _))| Plane { data, stride: row + 5 }).collect();
            let mut frame = FrameMut::new(format, w, h, YuvMatrix::Bt601, planes).unwrap();
            let region = frame.align_region(20.6, 9.2, 40.0, 30.0).unwrap();
            let RegionPlanes { planes, .. } = frame.read_planes(region);
            frame.fill_black(region).unwrap();
            frame.write_planes(region, &planes).unwrap();
            let mut short = planes.clone();
            short[2] = short[2].slice(ndarray::s![1.., ..]).to_owned();
            assert!(frame.write_planes(region, &short).is_err(), "{format:?}: planes of another size");
            drop(frame);
            assert_eq!(buffers, original, "{format:?}: the region's bytes come back exactly");
        }
    }

    #[test]
    fn short_planes_are_rejected() {
        let mut data = vec![0u8; 10];
        assert!(FrameMut::packed(PixelFormat::Rgb, 4, 4, 12, &mut data).is_err());
    }
}
