//! Packed 8-bit RGB images: the working format for face regions, detector inputs and image files.

/// Row-major packed RGB, three bytes a pixel, no padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize) -> Self {
        Self { width, height, data: vec![0; width * height * 3] }
    }

    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (data.len() == width * height * 3).then_some(Self { width, height, data })
    }

    pub fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.width * 3..(y + 1) * self.width * 3]
    }

    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        &mut self.data[y * self.width * 3..(y + 1) * self.width * 3]
    }

    /// A copy of the `width` x `height` part whose top-left pixel is (x, y).
    pub fn cropped(&self, x: usize, y: usize, width: usize, height: usize) -> RgbImage {
        let mut out = RgbImage::new(width, height);
        for row in 0..height {
            out.row_mut(row).copy_from_slice(&self.row(y + row)[3 * x..3 * (x + width)]);
        }
        out
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Bilinear sample at pixel-index coordinates, clamped to the image (edge replicate).
    pub fn sample(&self, x: f32, y: f32) -> [f32; 3] {
        let x = x.clamp(0.0, (self.width - 1) as f32);
        let y = y.clamp(0.0, (self.height - 1) as f32);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let (a, b, c, d) = (self.pixel(x0, y0), self.pixel(x1, y0), self.pixel(x0, y1), self.pixel(x1, y1));
        let mut out = [0f32; 3];
        for ch in 0..3 {
            let top = a[ch] as f32 * (1.0 - fx) + b[ch] as f32 * fx;
            let bottom = c[ch] as f32 * (1.0 - fx) + d[ch] as f32 * fx;
            out[ch] = top * (1.0 - fy) + bottom * fy;
        }
        out
    }
}
