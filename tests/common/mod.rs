//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use faceveil::frame::rgb::RgbImage;
use faceveil::frame::{FrameMut, PixelFormat};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
