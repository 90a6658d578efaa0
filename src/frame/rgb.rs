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
}
