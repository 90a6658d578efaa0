//! Face boxes and the square crops the model sees.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in continuous pixel coordinates (x0, y0 is the top-left corner).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f32 {
        self.y1 - self.y0
    }

    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    pub fn center(&self) -> (f32, f32) {
        ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }

    fn intersection_area(&self, other: &BBox) -> f32 {
        let inter =
            BBox { x0: self.x0.max(other.x0), y0: self.y0.max(other.y0), x1: self.x1.min(other.x1), y1: self.y1.min(other.y1) };
        if inter.width() > 0.0 && inter.height() > 0.0 { inter.area() } else { 0.0 }
    }

    pub fn iou(&self, other: &BBox) -> f32 {
        let i = self.intersection_area(other);
        let union = self.area() + other.area() - i;
        if union > 0.0 { i / union } else { 0.0 }
    }

    /// The share of `other`'s area that lies inside this box.
    pub fn coverage_of(&self, other: &BBox) -> f32 {
        let a = other.area();
        if a > 0.0 { self.intersection_area(other) / a } else { 0.0 }
    }

    pub fn scaled(&self, factor: f32) -> BBox {
        BBox { x0: self.x0 * factor, y0: self.y0 * factor, x1: self.x1 * factor, y1: self.y1 * factor }
    }

    pub fn shifted(&self, dx: f32, dy: f32) -> BBox {
        BBox { x0: self.x0 + dx, y0: self.y0 + dy, x1: self.x1 + dx, y1: self.y1 + dy }
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox { x0: self.x0.min(other.x0), y0: self.y0.min(other.y0), x1: self.x1.max(other.x1), y1: self.y1.max(other.y1) }
    }

    /// Whether the two share any area.
    pub fn overlaps(&self, other: &BBox) -> bool {
        self.intersection_area(other) > 0.0
    }

    /// This box grown by `margin` times its longer side on every side.
    pub fn grown(&self, margin: f32) -> BBox {
        let m = margin * self.width().max(self.height());
        BBox { x0: self.x0 - m, y0: self.y0 - m, x1: self.x1 + m, y1: self.y1 + m }
    }
}

/// How a square crop is framed around a detector box; the model was trained on exactly this.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropFraming {
    /// Side of the square relative to the longer side of the box.
    pub scale: f32,
    /// Centre of the square relative to the box (0 = left/top edge, 1 = right/bottom edge).
    pub center_x: f32,
    pub center_y: f32,
}

impl Default for CropFraming {
    fn default() -> Self {
        Self { scale: 1.5, center_x: 0.5, center_y: 0.5 }
    }
}

/// A square region of a frame: the crop one face is anonymized in. It is what the stream carries
/// so that a restore can cut exactly the same square.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropSquare {
    pub cx: f32,
    pub cy: f32,
    pub side: f32,
}

impl CropSquare {
    pub fn around(bbox: &BBox, framing: &CropFraming) -> Self {
        Self {
            cx: bbox.x0 + framing.center_x * bbox.width(),
            cy: bbox.y0 + framing.center_y * bbox.height(),
            side: framing.scale * bbox.width().max(bbox.height()),
        }
    }

    pub fn bounds(&self) -> BBox {
        let h = self.side / 2.0;
        BBox { x0: self.cx - h, y0: self.cy - h, x1: self.cx + h, y1: self.cy + h }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_shifted_boxes() {
        let a = BBox { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0 };
        let b = BBox { x0: 5.0, y0: 0.0, x1: 15.0, y1: 10.0 };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox { x0: 20.0, y0: 20.0, x1: 30.0, y1: 30.0 }), 0.0);
    }

    #[test]
    fn crop_square_follows_framing() {
        let b = BBox { x0: 10.0, y0: 20.0, x1: 50.0, y1: 80.0 };
        let c = CropSquare::around(&b, &CropFraming { scale: 1.5, center_x: 0.5, center_y: 0.4 });
        assert_eq!((c.cx, c.cy, c.side), (30.0, 44.0, 90.0));
    }
}
