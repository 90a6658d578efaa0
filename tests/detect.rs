//! Detectors on real photographs.

mod common;

use faceveil::faces::detect::{DetectionWorker, DetectorKind, DetectorSettings, Precision};
use faceveil::runtime::RuntimeOptions;
use faceveil::runtime::assets::Int8;

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

/// Faces the float model is sure of (score above 0.5) that `int8` finds nowhere near (IoU 0.5),
/// and the int8 model's sure faces that the float one does not have at all (IoU 0.3).
fn int8_disagreements(float: &DetectionWorker, int8: &DetectionWorker, path: &std::path::Path) -> (usize, usize) {
    let (a, b) = (detect_file(float, path), detect_file(int8, path));
    let missed = a.iter().filter(|f| f.score > 0.5 && !b.iter().any(|g| g.bbox.iou(&f.bbox) > 0.5)).count();
    let extra = b.iter().filter(|g| g.score > 0.5 && !a.iter().any(|f| f.bbox.iou(&g.bbox) > 0.3)).count();
    (missed, extra)
}

#[test]
fn the_int8_centerface_finds_the_faces_the_float_one_finds() {
    let runtime = RuntimeOptions::default();
    let int8_settings = DetectorSettings { precision: Precision::Int8, ..Default::default() };
    // The int8 model this CPU runs: 7-bit weights on AVX2 without VNNI, 8-bit ones elsewhere.
    let model = int8_settings.centerface_model(&runtime).unwrap();
    let expected = match faceveil::runtime::cpu_int8() {
        Some(Int8::ReducedRange) => "centerface_int8_reduced.onnx",
        Some(Int8::Full) | None => "centerface_int8.onnx",
    };
    assert_eq!(model.path.file_name().unwrap(), expected, "set-up makes the int8 models");
    let float_settings = DetectorSettings { precision: Precision::Float, ..Default::default() };
    assert_eq!(float_settings.centerface_model(&runtime).unwrap().path.file_name().unwrap(), "centerface.onnx");
    let int8 = DetectionWorker::spawn(int8_settings, runtime.clone()).unwrap();
    let float = DetectionWorker::spawn(float_settings, runtime).unwrap();

    let astronaut = common::repo().join("samples/astronaut.jpg");
    assert!(!detect_file(&float, &astronaut).is_empty());
    assert_eq!(int8_disagreements(&float, &int8, &astronaut), (0, 0), "the bundled photo");

    // Photos of many people, light and sizes (the quantizer never saw them: it is calibrated on
    // frames of the two bundled clips).
    let Some(dir) = common::shared("data/faces/celeba_wild_scenes") else { return };
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let (mut missed, mut extra) = (0, 0);
    for file in &files[..100] {
        let (m, e) = int8_disagreements(&float, &int8, file);
        (missed, extra) = (missed + m, extra + e);
    }
    assert_eq!((missed, extra), (0, 0), "faces the int8 model missed, and faces it alone found, in 100 scenes");
}

#[test]
fn a_face_that_comes_with_a_scene_cut_is_covered_before_the_next_scheduled_detection() {
    use faceveil::config::Config;
    use faceveil::finder::FaceFinder;

    let photo = common::load_rgb(&common::repo().join("samples/astronaut.jpg"));
    let config = Config { detect_every: 8, ..Config::new(common::repo().join("models/sdn")) };
    let mut finder = FaceFinder::new(&config).unwrap();
    // A faceless shot (the photo's mean grey) that the finder detects on first, then a cut to the photo.
    let mean = (photo.data.iter().map(|&v| v as u64).sum::<u64>() / photo.data.len() as u64) as u8;
    let mut empty = photo.clone();
    empty.data.fill(mean);
    for _ in 0..2 {
        assert!(finder.find(&common::as_frame(&mut empty.clone())).unwrap().is_empty());
    }
    let mut cut = photo.clone();
    let tracks = finder.find(&common::as_frame(&mut cut)).unwrap();
    assert_eq!(tracks.len(), 1, "the astronaut's face on the first frame after the cut (frame 2 of an 8-frame schedule)");
    assert_eq!(finder.times().cut_detections, 1);
    // The same shot moving on is no cut: the face is followed, not looked for again.
    for step in 1..6 {
        let mut moved = photo.clone();
        let row = moved.width * 3;
        moved.data.rotate_right(step * 3 + row);
        assert_eq!(finder.find(&common::as_frame(&mut moved)).unwrap().len(), 1);
    }
    assert_eq!(finder.times().detections, 2, "one scheduled detection and the one the cut called for");
}

#[test]
fn between_whole_frame_detections_only_what_changed_is_looked_at() {
    use faceveil::config::Config;
    use faceveil::faces::detect::Face;
    use faceveil::finder::FaceFinder;

    // A still grey scene, then the astronaut (200 px) stepping into it: too small a change for a
    // scene cut, so it is the change map that must send the detector there.
    let photo = common::open_image(&common::repo().join("samples/astronaut.jpg")).to_rgb8();
    let small = image::imageops::resize(&photo, 200, 200, image::imageops::FilterType::Triangle);
    let scene = |with_face: bool| {
        let mut canvas = image::RgbImage::from_pixel(1280, 720, image::Rgb([118, 120, 122]));
        if with_face {
            image::imageops::overlay(&mut canvas, &small, 900, 300);
        }
        faceveil::frame::rgb::RgbImage::from_raw(1280, 720, canvas.into_raw()).unwrap()
    };
    let config = Config { detect_every: 2, ..Config::new(common::repo().join("models/sdn")) };
    let mut finder = FaceFinder::new(&config).unwrap();
    for _ in 0..4 {
        assert!(finder.find(&common::as_frame(&mut scene(false))).unwrap().is_empty());
    }
    assert_eq!(finder.times().detections, 1, "the first frame, whole; the next scheduled one saw no change");
    assert_eq!(finder.times().skipped_detections, 1);
    let tracks = finder.find(&common::as_frame(&mut scene(true))).unwrap().to_vec();
    assert_eq!(tracks.len(), 1, "the face, on the scheduled detection of the frame it came in");
    let times = finder.times().clone();
    assert_eq!((times.cut_detections, times.region_detections), (0, 1), "found by a detection of the changed part");
    // The whole frame finds it at the same place.
    let whole: Vec<Face> = finder.detect(&common::as_frame(&mut scene(true))).unwrap();
    assert_eq!(whole.len(), 1);
    assert!(whole[0].bbox.iou(&tracks[0].bbox) > 0.8, "{:?} against {:?}", whole[0].bbox, tracks[0].bbox);
    // It stays still: no more detections, and the face stays covered where it is, past the
    // frames a track lives without one (15), until the whole frame is looked at again.
    for _ in 0..20 {
        let now = finder.find(&common::as_frame(&mut scene(true))).unwrap();
        assert_eq!(now.len(), 1);
        assert!(now[0].bbox.iou(&tracks[0].bbox) > 0.95, "{:?} against {:?}", now[0], tracks[0].bbox);
    }
    assert_eq!(finder.times().detections, times.detections + 1, "only the plain detect() above");
    assert_eq!(finder.times().skipped_detections, times.skipped_detections + 10);
}

/// The astronaut's photo (`side` px) in a grey 1280 x 720 scene, faded towards the grey by
/// `contrast`.
struct FadedAstronaut(image::RgbImage);

impl FadedAstronaut {
    fn new(side: u32) -> Self {
        let photo = common::open_image(&common::repo().join("samples/astronaut.jpg")).to_rgb8();
        Self(image::imageops::resize(&photo, side, side, image::imageops::FilterType::Triangle))
    }

    fn scene(&self, contrast: f32) -> faceveil::frame::rgb::RgbImage {
        self.scene_at(contrast, 900)
    }

    /// The same, the photo's left edge at `x`.
    fn scene_at(&self, contrast: f32, x: i64) -> faceveil::frame::rgb::RgbImage {
        let grey = 120.0;
        let mut canvas = image::RgbImage::from_pixel(1280, 720, image::Rgb([120, 120, 120]));
        let faded = image::RgbImage::from_fn(self.0.width(), self.0.height(), |x, y| {
            image::Rgb(self.0.get_pixel(x, y).0.map(|v| (grey + contrast * (v as f32 - grey)).round() as u8))
        });
        image::imageops::overlay(&mut canvas, &faded, x, 300);
        faceveil::frame::rgb::RgbImage::from_raw(1280, 720, canvas.into_raw()).unwrap()
    }
}

#[test]
fn a_face_found_below_the_threshold_is_looked_at_on_every_frame_and_covered_from_the_first_that_it_clears_it() {
    use faceveil::config::Config;
    use faceveil::finder::FaceFinder;

    // The astronaut faded towards the grey until CenterFace scores it between the scheduled
    // detections' share of the threshold and the threshold itself.
    let astronaut = FadedAstronaut::new(200);
    let scene = |contrast: f32| astronaut.scene(contrast);
    let mut config = Config { detect_every: 2, ..Config::new(common::repo().join("models/sdn")) };
    // The float model: its score rises smoothly with the contrast, as this construction needs. The
    // int8 model's scores of so faint a face move by up to 0.1 from one step of contrast, or one
    // crop of the frame, to the next.
    config.detector.precision = Precision::Float;
    let threshold = config.detector.threshold;
    let mut finder = FaceFinder::new(&config).unwrap();
    let score = |finder: &mut FaceFinder, contrast: f32| {
        finder.detect(&common::as_frame(&mut scene(contrast))).unwrap().iter().map(|f| f.score).fold(0.0, f32::max)
    };
    // A face a few percent of its contrast (CenterFace at 640 px scores it 0.29 at 4%, 0.41 at
    // 4.75%, 0.73 at 11%).
    let low = (1..=100)
        .map(|i| i as f32 / 400.0)
        .find(|&c| (0.0..threshold).contains(&score(&mut finder, c)) && score(&mut finder, c) > 0.0)
        .expect("a contrast at which the face scores under the threshold and is still found");
    assert!(score(&mut finder, 1.0) >= threshold, "the face at full contrast clears the threshold");
    let found = |finder: &mut FaceFinder, contrast: f32| finder.find(&common::as_frame(&mut scene(contrast))).unwrap().len();
    assert_eq!(
        found(&mut finder, low),
        0,
        "scheduled detection: found at {:.2}, below {threshold}: not covered",
        score(&mut finder, low)
    );
    let looks = finder.times().detections;
    assert_eq!(found(&mut finder, low), 0, "the next frame, looked at again and still below");
    assert_eq!(found(&mut finder, low), 0, "and the next");
    assert_eq!(found(&mut finder, 1.0), 1, "the next, at full contrast: covered from this frame");
    let times = finder.times();
    assert_eq!((times.detections - looks, times.region_detections), (3, 0), "the whole frame looked at on each of the three");
    // Faces another element reports (faceveildetect's tracks, kept alive below its threshold) are
    // covered at any score.
    let elsewhere = faceveil::faces::detect::Face {
        bbox: faceveil::faces::geometry::BBox { x0: 100.0, y0: 100.0, x1: 180.0, y1: 180.0 },
        score: threshold / 2.0,
        landmarks: None,
    };
    assert!(
        finder.observe(std::slice::from_ref(&elsewhere)).iter().any(|t| t.bbox.iou(&elsewhere.bbox) > 0.9),
        "an observed face is covered"
    );
}

/// The frame the newcomer of a [`VideoCall`] comes in on, one of the scheduled looks of a finder
/// detecting every 2nd frame: the head, large and still, may rest, so no look is put off for it
/// (`finder::SURE_SCORE_FACTOR`).
const NEWCOMER_FRAME: usize = 6;

/// A video call: the astronaut's head three times its size (its face about 120 px at the
/// detector's 640) with a mouth that changes on every frame, in a still grey room; from frame 6
/// a second, smaller face, its photo's corner at `newcomer`.
struct VideoCall {
    head: image::RgbImage,
    newcomer: image::RgbImage,
    at: (i64, i64),
}

impl VideoCall {
    fn new(at: (i64, i64)) -> Self {
        let photo = common::open_image(&common::repo().join("samples/astronaut.jpg")).to_rgb8();
        let head = image::imageops::crop_imm(&photo, 130, 40, 200, 200).to_image();
        let head = image::imageops::resize(&head, 600, 600, image::imageops::FilterType::Triangle);
        let newcomer = image::imageops::resize(&photo, 200, 200, image::imageops::FilterType::Triangle);
        Self { head, newcomer, at }
    }

    fn frame(&self, frame: usize) -> faceveil::frame::rgb::RgbImage {
        let mut canvas = image::RgbImage::from_pixel(1280, 720, image::Rgb([118, 120, 122]));
        let mut face = self.head.clone();
        let lift = 10 * frame as u8;
        for y in 330..390 {
            for x in 230..370 {
                face.get_pixel_mut(x, y).0.iter_mut().for_each(|v| *v = v.saturating_add(lift));
            }
        }
        image::imageops::overlay(&mut canvas, &face, 150, 60);
        if frame >= NEWCOMER_FRAME {
            image::imageops::overlay(&mut canvas, &self.newcomer, self.at.0, self.at.1);
        }
        faceveil::frame::rgb::RgbImage::from_raw(1280, 720, canvas.into_raw()).unwrap()
    }
}

fn finder_every(frames: u32) -> faceveil::finder::FaceFinder {
    use faceveil::config::Config;
    faceveil::finder::FaceFinder::new(&Config { detect_every: frames, ..Config::new(common::repo().join("models/sdn")) }).unwrap()
}

#[test]
fn a_large_face_that_keeps_changing_sits_every_other_look_out_and_a_newcomer_is_still_found_at_once() {
    let call = VideoCall::new((1000, 400));
    let scene = |frame| call.frame(frame);
    let mut finder = finder_every(2);
    let first = finder.find(&common::as_frame(&mut scene(0))).unwrap().to_vec();
    assert_eq!(first.len(), 1, "the large face, on the first (whole) look");
    for frame in 1..NEWCOMER_FRAME {
        let now = finder.find(&common::as_frame(&mut scene(frame))).unwrap();
        assert_eq!(now.len(), 1, "frame {frame}");
        assert!(now[0].bbox.iou(&first[0].bbox) > 0.8, "frame {frame}: the face stays covered where it is");
    }
    let times = finder.times().clone();
    // Scheduled looks on frames 2 and 4: on 2 the face sat out and nothing else had changed; on
    // 4 what changed in it was looked at.
    assert_eq!((times.rested_faces, times.skipped_detections, times.detections), (1, 1, 2), "{times:?}");
    let now = finder.find(&common::as_frame(&mut scene(NEWCOMER_FRAME))).unwrap().to_vec();
    assert_eq!(finder.times().rested_faces, 2, "the large face sits frame 6's look out");
    assert_eq!(finder.times().sure_waits, 0, "sure, but resting: no look put off {:?}", finder.times());
    assert_eq!(now.len(), 2, "the newcomer is found by that look all the same: {now:?}");
    assert!(now.iter().any(|t| t.bbox.iou(&first[0].bbox) > 0.8), "and the large face is still covered");
}

#[test]
fn a_face_that_comes_in_front_of_a_resting_face_is_covered_on_the_frame_detection_on_every_frame_covers_it() {
    // Someone leaning into a video call: the newcomer's box lies 60% inside the large face's.
    const NEWCOMER: (i64, i64) = (470, 300);
    let call = VideoCall::new(NEWCOMER);
    let scene = |frame| call.frame(frame);
    let faces_on_newcomers_frame = |every: u32| {
        let mut finder = finder_every(every);
        for frame in 0..NEWCOMER_FRAME {
            finder.find(&common::as_frame(&mut scene(frame))).unwrap();
        }
        let now = finder.find(&common::as_frame(&mut scene(NEWCOMER_FRAME))).unwrap().to_vec();
        (now, finder.times().clone())
    };
    let (every_frame, _) = faces_on_newcomers_frame(1);
    assert_eq!(every_frame.len(), 2, "detection on every frame covers both: {every_frame:?}");
    let (scheduled, times) = faces_on_newcomers_frame(2);
    assert_eq!(times.rested_faces, 1, "the large face sat out frame 2's look, not frame 6's: {times:?}");
    assert_eq!(scheduled.len(), 2, "both faces are covered on the newcomer's first frame: {scheduled:?}");
    for face in &every_frame {
        assert!(
            scheduled.iter().any(|t| t.bbox.iou(&face.bbox) > 0.7),
            "{:?}, covered with detection on every frame, is covered where it is: {scheduled:?}",
            face.bbox
        );
    }
}

#[test]
fn a_look_waits_a_frame_more_while_every_face_in_view_is_sure_and_comes_on_every_frame_while_one_is_in_doubt() {
    use faceveil::finder::{FaceFinder, SURE_SCORE_FACTOR};

    // The photo at 400 px: a face of about 100 px.
    let astronaut = FadedAstronaut::new(400);
    let mut finder = finder_every(2);
    let threshold = faceveil::faces::detect::DEFAULT_THRESHOLD;
    let score = |finder: &mut FaceFinder, contrast: f32| {
        finder.detect(&common::as_frame(&mut astronaut.scene(contrast))).unwrap().iter().map(|f| f.score).fold(0.0, f32::max)
    };
    let sure = threshold * SURE_SCORE_FACTOR;
    assert!(score(&mut finder, 1.0) >= sure, "the astronaut at full contrast is sure");
    let in_doubt = (1..=100)
        .map(|i| i as f32 / 400.0)
        .find(|&c| (threshold + 0.05..sure - 0.05).contains(&score(&mut finder, c)))
        .expect("a contrast at which the face clears the threshold and is not sure");
    // Twelve frames in which the face moves steadily (8 px a frame), so that every look has
    // something to look at and the tracker a motion to follow; the scheduled looks and those put
    // off, and the face covered on every frame.
    let looks = |contrast: f32| {
        let mut finder = finder_every(2);
        for frame in 0..12 {
            let mut scene = astronaut.scene_at(contrast, 900 - 8 * frame);
            let tracks = finder.find(&common::as_frame(&mut scene)).unwrap();
            assert_eq!(tracks.len(), 1, "contrast {contrast}, frame {frame}: the face is covered");
        }
        let times = finder.times();
        (times.detections + times.skipped_detections, times.sure_waits, times.region_detections)
    };
    // Frame 2's look finds the face where the tracker, which knew no motion yet, did not expect
    // it (a fifth of its side away); frame 4's look where it did: sure from then on.
    let (sure_looks, waits, _) = looks(1.0);
    assert_eq!((sure_looks, waits), (5, 2), "sure: looks on frames 0, 2, 4, 7 and 10, the last two put off a frame");
    assert_eq!(looks(in_doubt), (12, 0, 0), "in doubt: looks at the whole frame on every frame");
}
