//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod media;

use std::path::{Path, PathBuf};

use faceveil::frame::rgb::RgbImage;
use faceveil::frame::{FrameMut, PixelFormat};

/// The workspace root (this crate is cli/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// ../shared (face data, clips) is beside the checkout on development and CI machines but is
/// never part of the project; tests that need it skip, saying why.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = repo().join("..").join("shared").join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIP: {} is not available (../shared holds third-party data that is never committed)", path.display());
        None
    }
}

pub fn load_rgb(path: &Path) -> RgbImage {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    RgbImage::from_raw(img.width() as usize, img.height() as usize, img.into_raw()).unwrap()
}

pub fn as_frame(img: &mut RgbImage) -> FrameMut<'_> {
    let (w, h) = (img.width, img.height);
    FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut img.data).unwrap()
}

/// Mean absolute difference over a rectangle of two same-sized images.
pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a.pixel(x, y), b.pixel(x, y));
            for c in 0..3 {
                sum += (p[c] as i32 - q[c] as i32).unsigned_abs() as u64;
            }
        }
    }
    sum as f64 / (3 * (x1 - x0) * (y1 - y0)).max(1) as f64
}

/// PSNR (RGB) over rectangles (x0, y0, x1, y1) of two same-sized images, clipped to them. A zero
/// error reads as about 138 dB rather than infinity, so that differences of two PSNRs stay finite.
pub fn psnr_over(a: &RgbImage, b: &RgbImage, rects: &[(usize, usize, usize, usize)]) -> f64 {
    let (mut se, mut n) = (0f64, 0f64);
    for &(x0, y0, x1, y1) in rects {
        for y in y0..y1.min(a.height) {
            for x in x0..x1.min(a.width) {
                let (p, q) = (a.pixel(x, y), b.pixel(x, y));
                for c in 0..3 {
                    se += (p[c] as f64 - q[c] as f64).powi(2);
                    n += 1.0;
                }
            }
        }
    }
    10.0 * (255f64.powi(2) / (se / n.max(1.0)).max(1e-9)).log10()
}
