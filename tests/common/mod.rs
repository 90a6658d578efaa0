//! Helpers shared by the integration tests of every crate in the workspace (cli/tests/common
//! takes them in too).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use faceveil::frame::rgb::RgbImage;
use faceveil::frame::{FrameMut, PixelFormat};

/// The workspace root: the nearest folder at or above the testing crate that holds Cargo.lock.
pub fn repo() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.ancestors().find(|d| d.join("Cargo.lock").is_file()).unwrap_or(dir).to_path_buf()
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

/// A fresh, empty scratch folder for one test, named for the test and the test binary's process.
/// It is removed when the test passes; a failing test keeps it, and says where, for a look at
/// what was written. (Left behind, the suite's folders came to 11 GB in /tmp over a few days.)
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("faceveil-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for a look at what the failing test wrote", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The photo at `path`, decoded by the image crate's own compiled code: `image::open` is generic
/// over the path, and each test binary that calls it compiles every decoder again (about 10 s
/// of the suite's build each).
pub fn open_image(path: &Path) -> image::DynamicImage {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    image::load_from_memory(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn load_rgb(path: &Path) -> RgbImage {
    let img = open_image(path).to_rgb8();
    RgbImage::from_raw(img.width() as usize, img.height() as usize, img.into_raw()).unwrap()
}

pub fn as_frame(img: &mut RgbImage) -> FrameMut<'_> {
    let (w, h) = (img.width, img.height);
    FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut img.data).unwrap()
}
