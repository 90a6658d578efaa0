//! SeetaFace's frontal cascade through rustface. Its model is a runtime file like the others
//! (rustface ships it in its package but does not embed it; set-up fetches it into deps/).

use anyhow::{Context, Result};
use rustface::{ImageData, Model};

use super::{Detector, Face};
use crate::faces::geometry::BBox;
use crate::frame::rgb::RgbImage;
use crate::runtime::assets;

/// rustface's detector is not Send: build it on the thread that uses it.
pub struct Seeta {
    detector: Box<dyn rustface::Detector>,
    gray: Vec<u8>,
}

impl Seeta {
    pub fn new() -> Result<Self> {
        let path = assets::seeta_model()?;
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let model: Model = rustface::read_model(std::io::BufReader::new(file))
            .with_context(|| format!("{} is not a SeetaFace model", path.display()))?;
        let mut detector = rustface::create_detector_with_model(model);
        detector.set_min_face_size(20);
        detector.set_score_thresh(2.0);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        Ok(Self { detector, gray: Vec::new() })
    }
}

/// Seeta's cascade scores run from about 2 (weak) to 20+; map them onto 0..1 like CenterFace's.
fn normalized_score(raw: f64) -> f32 {
    (raw as f32 / 10.0).clamp(0.0, 1.0)
}

impl Detector for Seeta {
    fn detect_raw(&mut self, image: &RgbImage, _threshold: f32) -> Result<Vec<Face>> {
        self.gray.clear();
        self.gray
            .extend(image.data.chunks_exact(3).map(|p| ((p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8) as u8));
        let data = ImageData::new(&self.gray, image.width as u32, image.height as u32);
        Ok(self
            .detector
            .detect(&data)
            .into_iter()
            .map(|f| {
                let b = f.bbox();
                Face {
                    bbox: BBox {
                        x0: b.x() as f32,
                        y0: b.y() as f32,
                        x1: (b.x() + b.width() as i32) as f32,
                        y1: (b.y() + b.height() as i32) as f32,
                    },
                    score: normalized_score(f.score()),
                    landmarks: None,
                }
            })
            .collect())
    }
}
