//! Detectors on real photographs.

mod common;

use faceveil::faces::detect::{DetectionWorker, DetectorKind, DetectorSettings};
use faceveil::runtime::RuntimeOptions;

fn detect_file(worker: &DetectionWorker, path: &std::path::Path) -> Vec<faceveil::faces::detect::Face> {
    let mut img = common::load_rgb(path);
    let frame = common::as_frame(&mut img);
    let (small, scale) = frame.downscaled_rgb(640);
    worker.detect(small, scale).unwrap()
}

#[test]
fn centerface_finds_faces_in_real_scenes() {
    let Some(dir) = common::shared("data/faces/celeba_wild_scenes") else { return };
    let worker = DetectionWorker::spawn(DetectorSettings::default(), RuntimeOptions::default()).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let files = &files[..30];
    let found = files.iter().filter(|f| !detect_file(&worker, f).is_empty()).count();
    assert!(found >= 28, "CenterFace found faces in only {found} of {} scenes", files.len());
}

#[test]
fn detectors_agree_on_a_frontal_face() {
    let Some(dir) = common::shared("data/faces/celeba_wild_scenes") else { return };
    let path = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let cf = DetectionWorker::spawn(DetectorSettings::default(), RuntimeOptions::default()).unwrap();
    let seeta_settings = DetectorSettings { kind: DetectorKind::Seeta, ..Default::default() };
    let seeta = DetectionWorker::spawn(seeta_settings, RuntimeOptions::default()).unwrap();
    let a = detect_file(&cf, &path);
    let b = detect_file(&seeta, &path);
    assert!(!a.is_empty() && !b.is_empty(), "centerface {} faces, seeta {} faces", a.len(), b.len());
    let best = b.iter().map(|f| f.bbox.iou(&a[0].bbox)).fold(0.0, f32::max);
    assert!(best > 0.3, "the detectors' boxes for the same face overlap by IoU {best}");
    assert!(a[0].landmarks.is_some(), "CenterFace gives landmarks");
}
