//! The picture a face video codes: a face region's native planes packed into an I420 canvas of
//! a fixed size, and unpacked back into the same planes.
//!
//! 4:2:0 frames (I420, NV12) map plane for plane: Y into the canvas's luma, U and V into its
//! chroma, so the codec sees the face as the camera's decoder gave it, and the sealed face needs
//! no colour conversion either way. Every other format (RGB in its byte orders, Gray8) is split
//! into its byte channels, each a greyscale tile stacked one under another in the luma, with flat
//! chroma: any input format codes, at the cost of coding colour as three greyscale pictures.
//! The canvas beyond the region repeats its edge pixels, which costs the codec next to nothing.
//!
//! The region sits in the canvas where it sat in the frame's grid of 16 x 16 blocks ([`Offset`]):
//! a decoded frame carries its own codec's block edges on that grid, which cost fewer bits coded
//! on the same grid than across it (docs/SECURITY.md, "On the frame's block grid": 13 to 20%
//! fewer bytes on the clips whose camera coded 4 x 4 transforms only, about as many elsewhere).

use crate::frame::{PixelFormat, PlaneRect};

/// Canvas sides are multiples of this (x264's macroblock), so that sizes the codec rounds up to
/// never differ from the canvas's own.
pub const CANVAS_ALIGN: usize = 16;

/// Where a region's top-left pixel sits in the canvas: where it sits in the frame's grid of
/// [`CANVAS_ALIGN`]-pixel blocks. Even for 4:2:0 frames, whose regions start on even pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offset {
    pub x: usize,
    pub y: usize,
}

impl Offset {
    /// The offset of a region whose top-left pixel is at `x`, `y` in its frame.
    pub fn on_grid(x: usize, y: usize) -> Self {
        Self { x: x % CANVAS_ALIGN, y: y % CANVAS_ALIGN }
    }

    /// The same place in a 4:2:0 chroma plane.
    fn chroma(self) -> Self {
        Self { x: self.x / 2, y: self.y / 2 }
    }
}

/// The largest slot (in pixels: 64 x 64) whose faces stay at the corner. The band the grid adds
/// above and left of a face is a large part of so small a canvas: on
/// 05_crowd_mot20-08_960x366.mp4, whose faces are mostly that small, coding them on the grid
/// took 7% more bytes and its worst face lost 0.6 dB (docs/SECURITY.md, "On the frame's block
/// grid").
pub const CORNER_CANVAS: usize = 64 * 64;

/// A picture in I420 (planar 4:2:0, 8 bits) of even width and height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Canvas {
    /// A canvas of one grey.
    pub fn flat(width: usize, height: usize) -> Self {
        let chroma = (width / 2) * (height / 2);
        Self { width, height, y: vec![128; width * height], u: vec![128; chroma], v: vec![128; chroma] }
    }
}

/// The box each face region of a segment is packed into: width and height in pixels of the
/// frame, multiples of [`CANVAS_ALIGN`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub width: usize,
    pub height: usize,
}

impl Slot {
    /// A slot for a region of `width` x `height` with room for the face to grow by an eighth
    /// before a new segment (and keyframe) must start; a face moved across the block grid uses
    /// the same room (see [`Slot::place`]).
    pub fn around(width: usize, height: usize) -> Self {
        let grow = |v: usize| (v + v / 8).div_ceil(CANVAS_ALIGN) * CANVAS_ALIGN;
        Self { width: grow(width), height: grow(height) }
    }

    /// Where a `width` x `height` region whose place in the frame's block grid is `on_grid` goes
    /// in this slot: there if it fits and the slot is larger than [`CORNER_CANVAS`], else at the
    /// corner.
    pub fn place(&self, width: usize, height: usize, on_grid: Offset) -> Offset {
        let large = self.width * self.height > CORNER_CANVAS;
        if large && self.holds(width, height, on_grid) { on_grid } else { Offset::default() }
    }

    /// Whether a `width` x `height` region at `at` fits.
    pub fn holds(&self, width: usize, height: usize, at: Offset) -> bool {
        at.x + width <= self.width && at.y + height <= self.height
    }

    /// The canvas size a region of `format` in this slot is coded at.
    pub fn canvas_size(&self, format: PixelFormat) -> (usize, usize) {
        match channels(format) {
            Channels::Yuv420 => (self.width, self.height),
            Channels::Stacked(n) => (self.width, self.height * n),
        }
    }
}

/// How a format's bytes are laid out on the canvas.
enum Channels {
    /// Y, U and V go to the canvas's own planes.
    Yuv420,
    /// This many byte channels, each a full-size tile in the luma.
    Stacked(usize),
}

/// Byte channels of a stacked format's single plane.
fn stacked_channels(format: PixelFormat) -> usize {
    match channels(format) {
        Channels::Stacked(n) => n,
        Channels::Yuv420 => 3,
    }
}

fn channels(format: PixelFormat) -> Channels {
    match format {
        PixelFormat::I420 | PixelFormat::Nv12 => Channels::Yuv420,
        PixelFormat::Gray8 => Channels::Stacked(1),
        PixelFormat::Rgb | PixelFormat::Bgr => Channels::Stacked(3),
        PixelFormat::Rgbx | PixelFormat::Bgrx | PixelFormat::Xrgb | PixelFormat::Xbgr => Channels::Stacked(4),
    }
}

/// One greyscale tile: a channel of the region, `width` x `height` bytes.
struct Tile {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

/// Every byte channel of the region's planes, in plane order: each plane's interleaved channels
/// (NV12's UV, RGB's R, G, B) split apart.
fn tiles(planes: &[PlaneRect], width: usize) -> Vec<Tile> {
    let mut out = Vec::new();
    for (i, plane) in planes.iter().enumerate() {
        // The luma and packed planes span the region's width; 4:2:0 chroma half of it, rounded up.
        let pixels = if i == 0 { width } else { width.div_ceil(2) };
        let n = (plane.row_bytes / pixels.max(1)).max(1);
        for c in 0..n {
            let data = plane.data.chunks_exact(plane.row_bytes).flat_map(|row| row.iter().skip(c).step_by(n).copied()).collect();
            out.push(Tile { width: plane.row_bytes / n, height: plane.rows, data });
        }
    }
    out
}

/// Copies `tile` into the `slot_w` x `slot_h` box at row `top` of `plane` (rows of `stride`), its
/// first byte at `at` in the box, repeating its edge columns and rows to the box's edges.
fn put(plane: &mut [u8], stride: usize, top: usize, (slot_w, slot_h): (usize, usize), tile: &Tile, at: Offset) {
    if tile.width == 0 || tile.height == 0 {
        return;
    }
    for r in 0..slot_h {
        let src = &tile.data[r.saturating_sub(at.y).min(tile.height - 1) * tile.width..][..tile.width];
        let dst = &mut plane[(top + r) * stride..][..slot_w];
        dst[..at.x].fill(src[0]);
        dst[at.x..at.x + tile.width].copy_from_slice(src);
        dst[at.x + tile.width..].fill(src[tile.width - 1]);
    }
}

/// The `width` x `height` bytes at `at` in the box at row `top` of `plane`.
fn take(plane: &[u8], stride: usize, top: usize, at: Offset, (width, height): (usize, usize)) -> Vec<u8> {
    (0..height).flat_map(|r| &plane[(top + at.y + r) * stride + at.x..][..width]).copied().collect()
}

/// Packs a region, `width` pixels wide,'s planes (as [`crate::frame::FrameMut::region_planes`]
/// reads them from a frame of `format`) into a canvas for `slot` at `at`; the slot must hold the
/// region there.
pub fn pack(format: PixelFormat, planes: &[PlaneRect], width: usize, slot: Slot, at: Offset) -> Canvas {
    let (cw, ch) = slot.canvas_size(format);
    let mut canvas = Canvas::flat(cw, ch);
    let tiles = tiles(planes, width);
    match channels(format) {
        Channels::Yuv420 => {
            // Y, then U and V (NV12's interleaved pair split apart).
            let half = at.chroma();
            let targets =
                [(&mut canvas.y, cw, ch, at), (&mut canvas.u, cw / 2, ch / 2, half), (&mut canvas.v, cw / 2, ch / 2, half)];
            for ((plane, w, h, at), tile) in targets.into_iter().zip(&tiles) {
                put(plane, w, 0, (w, h), tile, at);
            }
        }
        Channels::Stacked(_) => {
            for (i, tile) in tiles.iter().enumerate() {
                put(&mut canvas.y, cw, i * slot.height, (cw, slot.height), tile, at);
            }
        }
    }
    canvas
}

/// The planes of a `width` x `height` region of `format`, from a canvas [`pack`] made for `slot`
/// and `at` (after the codec's round trip): what [`crate::frame::FrameMut::write_region_planes`]
/// takes. `None` if the canvas is not that slot's size or the slot does not hold the region there.
pub fn unpack(
    canvas: &Canvas,
    format: PixelFormat,
    (width, height): (usize, usize),
    slot: Slot,
    at: Offset,
) -> Option<Vec<PlaneRect>> {
    let (cw, ch) = slot.canvas_size(format);
    if (canvas.width, canvas.height) != (cw, ch) || !slot.holds(width, height, at) {
        return None;
    }
    let (hw, hh) = (width.div_ceil(2), height.div_ceil(2));
    let half = at.chroma();
    let grey = |data: Vec<u8>, row_bytes: usize, rows: usize| PlaneRect { row_bytes, rows, data };
    Some(match format {
        PixelFormat::I420 => vec![
            grey(take(&canvas.y, cw, 0, at, (width, height)), width, height),
            grey(take(&canvas.u, cw / 2, 0, half, (hw, hh)), hw, hh),
            grey(take(&canvas.v, cw / 2, 0, half, (hw, hh)), hw, hh),
        ],
        PixelFormat::Nv12 => {
            let (u, v) = (take(&canvas.u, cw / 2, 0, half, (hw, hh)), take(&canvas.v, cw / 2, 0, half, (hw, hh)));
            let uv = u.iter().zip(&v).flat_map(|(a, b)| [*a, *b]).collect();
            vec![grey(take(&canvas.y, cw, 0, at, (width, height)), width, height), grey(uv, hw * 2, hh)]
        }
        _ => {
            let n = stacked_channels(format);
            let tiles: Vec<Vec<u8>> = (0..n).map(|i| take(&canvas.y, cw, i * slot.height, at, (width, height))).collect();
            let data = (0..width * height).flat_map(|p| tiles.iter().map(move |t| t[p])).collect();
            vec![grey(data, width * n, height)]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameMut, Plane, YuvMatrix};

    /// A frame of `format` with every byte different from its neighbours.
    fn frame_bytes(format: PixelFormat, w: usize, h: usize) -> Vec<(Vec<u8>, usize)> {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let sizes = match format {
            PixelFormat::I420 => vec![(w, h), (cw, ch), (cw, ch)],
            PixelFormat::Nv12 => vec![(w, h), (cw * 2, ch)],
            PixelFormat::Gray8 => vec![(w, h)],
            PixelFormat::Rgb => vec![(w * 3, h)],
            _ => vec![(w * 4, h)],
        };
        let bytes = |p: usize, len: usize| (0..len).map(|i| ((i * 7 + p * 31) % 251) as u8).collect();
        sizes.iter().enumerate().map(|(p, (rb, r))| (bytes(p, rb * r), *rb)).collect()
    }

    #[test]
    fn every_format_packs_and_unpacks_to_the_same_bytes() {
        let (w, h) = (37, 29);
        for format in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Gray8, PixelFormat::Rgb, PixelFormat::Xbgr] {
            let mut bytes = frame_bytes(format, w, h);
            let planes = bytes.iter_mut().map(|(data, stride)| Plane { data, stride: *stride }).collect();
            let frame = FrameMut::new(format, w, h, YuvMatrix::Bt601, planes).unwrap();
            let region = frame.align_region(19.0, 21.0, 33.0, 29.0).unwrap();
            let planes = frame.region_planes(region);
            let at = Offset::on_grid(region.x, region.y);
            assert!(at.x > 0 && at.y > 0, "the test's region lies across the grid: {at:?}");
            let slot = Slot::around(region.width + at.x, region.height + at.y);
            assert!(slot.holds(region.width, region.height, at) && slot.width.is_multiple_of(CANVAS_ALIGN));
            let canvas = pack(format, &planes, region.width, slot, at);
            assert_eq!((canvas.width, canvas.height), slot.canvas_size(format), "{format:?}");
            let size = (region.width, region.height);
            assert_eq!(unpack(&canvas, format, size, slot, at).unwrap(), planes, "{format:?}");
            assert_ne!(unpack(&canvas, format, size, slot, Offset::default()).unwrap(), planes, "{format:?} at the corner");
        }
    }
}
