//! Where a picture changed since faces were last looked for there. A face cannot appear, move or
//! turn where no pixel changed, so between detections of the whole frame the finder runs the
//! detector on the part of the frame that changed only, and not at all when nothing did: on a
//! fixed camera most of the frame stays still most of the time.

use crate::faces::geometry::BBox;
use crate::frame::luma_u8;
use crate::frame::rgb::RgbImage;

/// Side of a cell, in pixels of the detector's downscaled frame (at most 640 px wide: 64 × 36
/// cells for 16:9), about the size of the smallest face the detector finds there.
pub const CELL: usize = 10;

/// Mean luma change of a cell (0-255) since it was last looked at that counts as a change: above
/// the flicker of a compressed still background, far below a face passing over it.
pub const CHANGE_THRESHOLD: f32 = 2.5;

/// A changed region larger than this share of the frame is looked at as the whole frame: the
/// saving would be small, and a whole look settles every cell.
const REGION_AT_MOST: f32 = 0.5;

/// A face the changed region touches is looked at whole, with this margin (times its longer
/// side), so that the detector sees all of it and some context.
const FACE_MARGIN: f32 = 0.25;

/// The smallest region worth the detector, each side, in pixels of the downscaled frame.
const MIN_REGION_SIDE: f32 = 64.0;

/// What a scheduled detection looks at.
#[derive(Debug, PartialEq)]
pub enum Look {
    /// Nothing changed since faces were last looked for anywhere: the faces are where they were.
    Nothing,
    Whole,
    /// These parts of the downscaled frame (apart from one another).
    Regions(Vec<Rect>),
}

/// A part of an image in whole pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Rect {
    pub fn bbox(&self) -> BBox {
        BBox { x0: self.x as f32, y0: self.y as f32, x1: (self.x + self.width) as f32, y1: (self.y + self.height) as f32 }
    }

    /// The whole pixels `b` reaches into, within a `width` x `height` image.
    fn around(b: &BBox, width: usize, height: usize) -> Rect {
        let (x0, y0) = (b.x0.max(0.0).floor() as usize, b.y0.max(0.0).floor() as usize);
        let (x1, y1) = (b.x1.min(width as f32).ceil() as usize, b.y1.min(height as f32).ceil() as usize);
        Rect { x: x0, y: y0, width: x1.saturating_sub(x0), height: y1.saturating_sub(y0) }
    }
}

/// The mean luma of every cell of one downscaled frame.
pub struct CellMeans {
    cols: usize,
    rows: usize,
    means: Vec<f32>,
}

impl CellMeans {
    pub fn of(image: &RgbImage) -> Self {
        let (cols, rows) = (image.width.div_ceil(CELL), image.height.div_ceil(CELL));
        let mut sums = vec![0u32; cols * rows];
        for y in 0..image.height {
            let row = &mut sums[(y / CELL) * cols..][..cols];
            for (x, p) in image.row(y).chunks_exact(3).enumerate() {
                row[x / CELL] += luma_u8(p) as u32;
            }
        }
        // Cells at the right and bottom edges hold fewer pixels.
        let side = |i: usize, len: usize| CELL.min(len - i * CELL) as f32;
        let means = sums
            .iter()
            .enumerate()
            .map(|(k, &s)| s as f32 / (side(k % cols, image.width) * side(k / cols, image.height)))
            .collect();
        Self { cols, rows, means }
    }
}

/// Each cell's mean when faces were last looked for over it.
#[derive(Default)]
pub struct ChangeMap {
    looked: Option<CellMeans>,
}

impl ChangeMap {
    /// Boxes (in pixels of the downscaled frame) around each group of touching cells that changed
    /// since they were last looked at, one cell wider on each side; empty when none did. Cells
    /// whose centres lie in a `resting` box are left for a later look (they stay changed). Where
    /// there is nothing to compare with (the first frame, another size), the whole frame.
    pub fn changed(&self, now: &CellMeans, resting: &[BBox]) -> Vec<BBox> {
        let (cols, rows) = (now.cols, now.rows);
        let Some(looked) = self.looked.as_ref().filter(|l| (l.cols, l.rows) == (cols, rows)) else {
            return vec![BBox { x0: 0.0, y0: 0.0, x1: (cols * CELL) as f32, y1: (rows * CELL) as f32 }];
        };
        let rests = |k: usize| {
            let (x, y) = (((k % cols) * CELL + CELL / 2) as f32, ((k / cols) * CELL + CELL / 2) as f32);
            resting.iter().any(|r| (r.x0..r.x1).contains(&x) && (r.y0..r.y1).contains(&y))
        };
        let mut changed: Vec<bool> = looked
            .means
            .iter()
            .zip(&now.means)
            .enumerate()
            .map(|(k, (a, b))| (a - b).abs() > CHANGE_THRESHOLD && !rests(k))
            .collect();
        let mut boxes = Vec::new();
        let mut stack = Vec::new();
        for start in 0..changed.len() {
            if !changed[start] {
                continue;
            }
            // One group: the changed cells reachable through neighbours, diagonals included.
            changed[start] = false;
            stack.push(start);
            let (mut x0, mut y0, mut x1, mut y1) = (cols, rows, 0, 0);
            while let Some(k) = stack.pop() {
                let (x, y) = (k % cols, k / cols);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                for ny in y.saturating_sub(1)..(y + 2).min(rows) {
                    for nx in x.saturating_sub(1)..(x + 2).min(cols) {
                        let n = ny * cols + nx;
                        if changed[n] {
                            changed[n] = false;
                            stack.push(n);
                        }
                    }
                }
            }
            boxes.push(BBox {
                x0: (x0.saturating_sub(1) * CELL) as f32,
                y0: (y0.saturating_sub(1) * CELL) as f32,
                x1: ((x1 + 2).min(cols) * CELL) as f32,
                y1: ((y1 + 2).min(rows) * CELL) as f32,
            });
        }
        boxes
    }

    /// Records that faces were looked for over `regions` of `now` (all of it when `None`). A cell
    /// counts as looked at when it lies wholly inside a region.
    pub fn looked_at(&mut self, now: CellMeans, regions: Option<&[Rect]>) {
        match (self.looked.as_mut(), regions) {
            (Some(looked), Some(regions)) if (looked.cols, looked.rows) == (now.cols, now.rows) => {
                for r in regions {
                    let (cx0, cy0) = (r.x.div_ceil(CELL), r.y.div_ceil(CELL));
                    let (cx1, cy1) = ((r.x + r.width) / CELL, (r.y + r.height) / CELL);
                    for y in cy0..cy1.min(now.rows) {
                        let row = y * now.cols;
                        let (a, b) = (row + cx0, row + cx1.min(now.cols));
                        if a < b {
                            looked.means[a..b].copy_from_slice(&now.means[a..b]);
                        }
                    }
                }
            }
            _ => self.looked = Some(now),
        }
    }

    /// Plans a scheduled detection over `now` (a `width` x `height` downscaled frame) whose known
    /// faces are `faces` (boxes in the same pixels): nothing, the parts that changed (each grown
    /// to take in whole every face it touches, those that then overlap merged), or the whole
    /// frame when they would cover much of it. The `resting` faces sit this look out: what
    /// changed inside their boxes waits for the next, and no part grows to take them in (the
    /// finder rests a face only where no part reaches into it).
    pub fn plan(&self, now: &CellMeans, faces: &[BBox], resting: &[BBox], width: usize, height: usize) -> Look {
        let mut regions = self.changed(now, resting);
        if regions.is_empty() {
            return Look::Nothing;
        }
        let half = MIN_REGION_SIDE / 2.0;
        for r in &mut regions {
            let (cx, cy) = r.center();
            *r = r.union(&BBox { x0: cx - half, y0: cy - half, x1: cx + half, y1: cy + half });
        }
        // Growing a region may reach a face or another region: until nothing more joins.
        loop {
            let mut joined = false;
            for r in &mut regions {
                for f in faces {
                    if f.overlaps(r) {
                        let grown = r.union(&f.grown(FACE_MARGIN));
                        joined |= grown != *r;
                        *r = grown;
                    }
                }
            }
            joined |= merge_overlapping(&mut regions);
            if !joined {
                break;
            }
        }
        within(&regions, width, height)
    }

    pub fn reset(&mut self) {
        self.looked = None;
    }
}

/// Merges the boxes that overlap, pairwise; whether any did.
fn merge_overlapping(regions: &mut Vec<BBox>) -> bool {
    let mut merged = false;
    let mut i = 0;
    while i < regions.len() {
        if let Some(j) = (i + 1..regions.len()).find(|&j| regions[i].overlaps(&regions[j])) {
            let other = regions.swap_remove(j);
            regions[i] = regions[i].union(&other);
            merged = true;
        } else {
            i += 1;
        }
    }
    merged
}

/// `regions` as whole pixels of a `width` x `height` frame, or the whole frame when they would
/// cover much of it ([`REGION_AT_MOST`]).
fn within(regions: &[BBox], width: usize, height: usize) -> Look {
    let rects: Vec<Rect> = regions.iter().map(|r| Rect::around(r, width, height)).collect();
    let area: usize = rects.iter().map(|r| r.width * r.height).sum();
    if area as f32 > REGION_AT_MOST * (width * height) as f32 {
        return Look::Whole;
    }
    Look::Regions(rects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: usize, h: usize, square_at: Option<(usize, usize)>) -> RgbImage {
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let inside = square_at.is_some_and(|(sx, sy)| (sx..sx + 30).contains(&x) && (sy..sy + 30).contains(&y));
                let v = if inside { 220 } else { ((x + 2 * y) % 90) as u8 + 40 };
                img.row_mut(y)[3 * x..3 * x + 3].copy_from_slice(&[v, v, v]);
            }
        }
        img
    }

    #[test]
    fn a_still_picture_has_not_changed_and_a_new_square_has() {
        let mut map = ChangeMap::default();
        let still = picture(640, 360, None);
        assert_eq!(map.changed(&CellMeans::of(&still), &[]).len(), 1, "nothing to compare with: the whole frame");
        map.looked_at(CellMeans::of(&still), None);
        assert!(map.changed(&CellMeans::of(&still), &[]).is_empty());
        let changed = map.changed(&CellMeans::of(&picture(640, 360, Some((300, 200)))), &[]);
        assert_eq!(changed.len(), 1, "{changed:?}");
        let r = changed[0];
        assert!(r.x0 <= 300.0 && r.y0 <= 200.0 && r.x1 >= 330.0 && r.y1 >= 230.0, "{r:?}");
        assert!(r.width() <= 60.0 && r.height() <= 60.0, "only around the square: {r:?}");
    }

    /// The picture with squares at (40, 40) and (500, 280).
    fn two_squares() -> RgbImage {
        let mut img = picture(640, 360, Some((40, 40)));
        let other = picture(640, 360, Some((500, 280)));
        for y in 280..310 {
            img.row_mut(y)[1500..1590].copy_from_slice(&other.row(y)[1500..1590]);
        }
        img
    }

    #[test]
    fn apart_changes_are_apart_regions_and_a_region_looked_at_is_settled() {
        let mut map = ChangeMap::default();
        map.looked_at(CellMeans::of(&picture(640, 360, None)), None);
        let Look::Regions(regions) = map.plan(&CellMeans::of(&two_squares()), &[], &[], 640, 360) else { panic!("two regions") };
        assert_eq!(regions.len(), 2, "{regions:?}");
        // Faces are looked for around the first square only.
        let first = *regions.iter().find(|r| r.x < 100).expect("one around the first square");
        map.looked_at(CellMeans::of(&two_squares()), Some(&[first]));
        let changed = map.changed(&CellMeans::of(&two_squares()), &[]);
        assert_eq!(changed.len(), 1, "the second square was never looked at: {changed:?}");
        assert!(changed[0].x0 >= 480.0 && changed[0].y0 >= 260.0, "{changed:?}");
    }

    #[test]
    fn a_plan_takes_in_whole_the_faces_a_change_touches() {
        let mut map = ChangeMap::default();
        let still = picture(640, 360, None);
        assert_eq!(map.plan(&CellMeans::of(&still), &[], &[], 640, 360), Look::Whole, "the first look is whole");
        map.looked_at(CellMeans::of(&still), None);
        assert_eq!(map.plan(&CellMeans::of(&still), &[], &[], 640, 360), Look::Nothing);
        // The square appears over the corner of a known face: the face is taken in whole.
        let face = BBox { x0: 320.0, y0: 220.0, x1: 400.0, y1: 300.0 };
        let far = BBox { x0: 20.0, y0: 20.0, x1: 60.0, y1: 60.0 };
        let Look::Regions(regions) = map.plan(&CellMeans::of(&picture(640, 360, Some((300, 200)))), &[face, far], &[], 640, 360)
        else {
            panic!("a region")
        };
        assert_eq!(regions.len(), 1, "{regions:?}");
        let r = regions[0].bbox();
        assert!(r.x0 <= 300.0 && r.y0 <= 200.0 && r.x1 >= 420.0 && r.y1 >= 320.0, "{r:?}");
        assert!(!r.overlaps(&far), "a face the change does not touch is left out: {r:?}");
    }

    #[test]
    fn cells_at_the_edge_average_the_pixels_they_hold() {
        let img = picture(645, 363, None);
        let means = CellMeans::of(&img);
        assert_eq!((means.cols, means.rows), (65, 37));
        assert!(means.means.iter().all(|m| (40.0..=130.0).contains(m)), "every cell within the picture's levels");
    }
}
