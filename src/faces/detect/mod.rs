//! Face detection behind one trait, with the post-processing every detector shares.

mod centerface;
mod seeta;
mod worker;

use std::str::FromStr;

use anyhow::{Result, bail};
use serde::Deserialize;

pub use centerface::CenterFace;
pub use seeta::Seeta;
pub use worker::DetectionWorker;

use crate::faces::geometry::BBox;
use crate::frame::downscaled_size;
use crate::frame::rgb::RgbImage;
use crate::runtime::assets::CenterFaceModel;
use crate::runtime::{Provider, RuntimeOptions};

/// Five landmarks (eyes, nose tip, mouth corners), x and y each, as a flat row.
pub const LANDMARK_VALUES: usize = 10;

/// One detected face in the coordinates of the image it was found in.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    /// Eyes, nose tip and mouth corners, where the detector gives them.
    pub landmarks: Option<[(f32, f32); 5]>,
}

impl Face {
    pub fn scaled(&self, factor: f32) -> Face {
        Face {
            bbox: self.bbox.scaled(factor),
            score: self.score,
            landmarks: self.landmarks.map(|l| l.map(|(x, y)| (x * factor, y * factor))),
        }
    }

    pub fn shifted(&self, dx: f32, dy: f32) -> Face {
        Face {
            bbox: self.bbox.shifted(dx, dy),
            score: self.score,
            landmarks: self.landmarks.map(|l| l.map(|(x, y)| (x + dx, y + dy))),
        }
    }
}

/// Which detector to run (in a config file by its lowercase name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// CenterFace through ONNX Runtime: five landmarks, good on small and turned faces.
    #[default]
    CenterFace,
    /// SeetaFace frontal cascade (rustface): embedded, no model file, frontal faces only.
    Seeta,
}

impl FromStr for DetectorKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "centerface" => Ok(Self::CenterFace),
            "seeta" | "rustface" => Ok(Self::Seeta),
            other => bail!("unknown detector '{other}' (expected centerface or seeta)"),
        }
    }
}

impl DetectorKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::CenterFace => "centerface",
            Self::Seeta => "seeta",
        }
    }
}

/// The default minimum score (0..1).
pub const DEFAULT_THRESHOLD: f32 = 0.4;
/// The default smallest face kept, in pixels of the full frame.
pub const DEFAULT_MIN_FACE_SIZE: u32 = 12;
/// The default longest side frames are downscaled to for detection.
pub const DEFAULT_MAX_SIDE: u32 = 640;

/// Face widths (box side, in pixels of the image CenterFace is given) that one detection pass
/// finds: 97-100% of faces from 16 px up, 93% at 14-15 px, 44% at 8-9 px, none below 8
/// (`scripts/detect_recall.py`: the faces CenterFace finds in 249 in-the-wild photos at their own
/// size, sought again in the photos shrunk, at the default threshold; 2026-12-01).
pub const SURE_FACE_WIDTH: f32 = 16.0;
/// Narrower than this (same units), no face is found.
pub const SMALLEST_FACE_WIDTH: f32 = 8.0;

/// What detection at `max_side` misses in a larger frame, in the frame's own pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceSizeLimits {
    /// The image the detector is given.
    pub detected_width: usize,
    pub detected_height: usize,
    /// Narrower faces may be missed.
    pub sure: f32,
    /// Narrower faces are not found at all.
    pub smallest: f32,
}

/// Settings shared by all detectors.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectorSettings {
    pub kind: DetectorKind,
    /// Faces scoring below this are dropped (CenterFace 0..1; Seeta's scores are rescaled to 0..1).
    pub threshold: f32,
    /// Faces smaller than this many pixels (longer box side, in the full frame) are dropped.
    pub min_face_size: f32,
    /// Boxes overlapping a better one by more than this IoU are dropped.
    pub nms_iou: f32,
    /// Frames are downscaled to at most this many pixels on their longer side before detection.
    pub max_side: usize,
    /// Which of CenterFace's models runs.
    pub precision: Precision,
}

/// CenterFace's float model as published, or the int8 model set-up makes from it
/// (scripts/centerface_int8.py: every face the float model is sure of in 6 clips and 249 photos
/// found again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// int8 on an x86 CPU with VNNI (8-bit weights, 1.8x faster) or with AVX2 alone (7-bit
    /// weights, about 1.25x; [`crate::runtime::cpu_int8`]); float elsewhere, and on a GPU, whose
    /// providers run float convolutions faster than quantized ones.
    #[default]
    Auto,
    Int8,
    Float,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self {
            kind: DetectorKind::default(),
            threshold: DEFAULT_THRESHOLD,
            min_face_size: DEFAULT_MIN_FACE_SIZE as f32,
            nms_iou: 0.3,
            max_side: DEFAULT_MAX_SIDE as usize,
            precision: Precision::Auto,
        }
    }
}

impl DetectorSettings {
    /// The CenterFace model these settings run on `runtime`'s provider.
    pub fn centerface_model(&self, runtime: &RuntimeOptions) -> Result<CenterFaceModel> {
        use crate::runtime::assets::Int8;
        let int8 = match self.precision {
            Precision::Auto if runtime.provider == Provider::Cpu => crate::runtime::cpu_int8(),
            Precision::Auto | Precision::Float => None,
            // The int8 model this CPU runs best; the 8-bit one where neither runs faster.
            Precision::Int8 => Some(crate::runtime::cpu_int8().unwrap_or(Int8::Full)),
        };
        crate::runtime::assets::centerface_model(int8)
    }

    /// The face widths below which a `width` x `height` frame's faces are missed because the
    /// frame is downscaled to `max_side` first (measured for CenterFace; None for Seeta).
    pub fn face_size_limits(&self, width: usize, height: usize) -> Option<FaceSizeLimits> {
        (self.kind == DetectorKind::CenterFace).then(|| {
            let (detected_width, detected_height, scale) = downscaled_size(width, height, self.max_side);
            FaceSizeLimits {
                detected_width,
                detected_height,
                sure: SURE_FACE_WIDTH * scale,
                smallest: SMALLEST_FACE_WIDTH * scale,
            }
        })
    }
}

/// A face detector working on packed RGB.
pub trait Detector {
    /// Faces in `image`, best first, before the shared filtering.
    fn detect_raw(&mut self, image: &RgbImage, threshold: f32) -> Result<Vec<Face>>;
}

/// Opens the detector `settings` asks for.
pub fn open(settings: &DetectorSettings, runtime: &RuntimeOptions) -> Result<Box<dyn Detector>> {
    Ok(match settings.kind {
        DetectorKind::CenterFace => Box::new(CenterFace::open(&settings.centerface_model(runtime)?, runtime)?),
        DetectorKind::Seeta => Box::new(Seeta::new()?),
    })
}

/// Runs `detector` on `image` (already downscaled by `scale` from the frame) and returns faces in
/// frame coordinates, thresholded, size-filtered and de-duplicated.
pub fn detect(detector: &mut dyn Detector, settings: &DetectorSettings, image: &RgbImage, scale: f32) -> Result<Vec<Face>> {
    let faces = detector.detect_raw(image, settings.threshold)?;
    let faces = faces
        .into_iter()
        .filter(|f| f.score >= settings.threshold)
        .map(|f| f.scaled(scale))
        .filter(|f| f.bbox.width().max(f.bbox.height()) >= settings.min_face_size)
        .collect();
    Ok(voted_suppression(faces, settings.nms_iou))
}

/// Greedy NMS whose kept faces (the best-scoring of each overlapping group) take the
/// score-weighted mean box of their group. CenterFace marks a face in several neighbouring cells
/// of its heatmap, and which one scores best changes from frame to frame: its box alone moves by
/// parts of a cell (4 px at the detector's size), and the surrogate, drawn from the square around
/// it, moves with it. On 07_selfie_portrait the face's square (in `faceveil anonymize`'s sidecar)
/// moved by 0.128% of its side a frame with the best cell's box, 0.023% with the group's.
pub fn voted_suppression(faces: Vec<Face>, iou: f32) -> Vec<Face> {
    suppression_groups(faces, iou)
        .into_iter()
        .map(|group| {
            let weight: f32 = group.iter().map(|f| f.score).sum();
            let mean = |side: fn(&BBox) -> f32| group.iter().map(|f| side(&f.bbox) * f.score).sum::<f32>() / weight;
            let bbox = BBox { x0: mean(|b| b.x0), y0: mean(|b| b.y0), x1: mean(|b| b.x1), y1: mean(|b| b.y1) };
            Face { bbox, ..group[0].clone() }
        })
        .collect()
}

/// Greedy NMS: keeps the best-scoring face of each overlapping group.
pub fn non_max_suppression(faces: Vec<Face>, iou: f32) -> Vec<Face> {
    suppression_groups(faces, iou).into_iter().map(|mut group| group.swap_remove(0)).collect()
}

/// The faces in greedy NMS's groups, best score first: each face joins the group of the first
/// kept face (a group's first) it overlaps by more than `iou`, or starts a group of its own.
fn suppression_groups(mut faces: Vec<Face>, iou: f32) -> Vec<Vec<Face>> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut groups: Vec<Vec<Face>> = Vec::new();
    for f in faces {
        match groups.iter_mut().find(|g| g[0].bbox.iou(&f.bbox) > iou) {
            Some(group) => group.push(f),
            None => groups.push(vec![f]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, score: f32) -> Face {
        Face { bbox: BBox { x0: x, y0: 0.0, x1: x + 10.0, y1: 10.0 }, score, landmarks: None }
    }

    #[test]
    fn the_faces_a_downscaled_frame_misses_grow_with_the_downscale() {
        let settings = DetectorSettings::default();
        let hd = settings.face_size_limits(1920, 1080).unwrap();
        assert_eq!((hd.detected_width, hd.detected_height, hd.sure, hd.smallest), (640, 360, 48.0, 24.0));
        let portrait = settings.face_size_limits(2160, 3840).unwrap();
        assert_eq!((portrait.detected_width, portrait.detected_height, portrait.sure), (360, 640, 96.0));
        let small = settings.face_size_limits(320, 240).unwrap();
        assert_eq!((small.detected_width, small.sure, small.smallest), (320, SURE_FACE_WIDTH, SMALLEST_FACE_WIDTH));
        let seeta = DetectorSettings { kind: DetectorKind::Seeta, ..settings };
        assert_eq!(seeta.face_size_limits(1920, 1080), None, "measured for CenterFace only");
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_faces() {
        let kept = non_max_suppression(vec![face(0.0, 0.5), face(1.0, 0.9), face(50.0, 0.3)], 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].bbox.x0, 50.0);
    }

    #[test]
    fn a_kept_face_takes_the_score_weighted_box_of_those_it_suppresses() {
        let kept = voted_suppression(vec![face(0.0, 0.25), face(2.0, 0.75), face(50.0, 0.3)], 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!((kept[0].score, kept[0].bbox.x0, kept[0].bbox.x1), (0.75, 1.5, 11.5));
        assert_eq!((kept[1].score, kept[1].bbox.x0), (0.3, 50.0), "a face apart keeps its own box");
    }

    #[test]
    fn detector_names_parse() {
        assert_eq!("CenterFace".parse::<DetectorKind>().unwrap(), DetectorKind::CenterFace);
        assert_eq!("rustface".parse::<DetectorKind>().unwrap(), DetectorKind::Seeta);
        assert!("yolo".parse::<DetectorKind>().is_err());
    }
}
