//! Fail closed when the detector fails: `faceveildetect ! faceveil` lets no frame through with
//! its faces visible. A test binary of its own, because the detector's model is chosen by the
//! process-wide FACEVEIL_CENTERFACE.
//!
//! tests/data/broken_detector.onnx has one input fixed at [1, 3, 32, 32] and four Identity
//! outputs: it opens as a CenterFace model and fails on any real frame.

use std::path::PathBuf;

use gst_check::Harness;

#[test]
fn a_failing_detector_blanks_the_frame_instead_of_letting_its_faces_through() {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    // SAFETY: the only test of this binary sets it before anything starts another thread.
    unsafe { std::env::set_var("FACEVEIL_CENTERFACE", tests.join("data/broken_detector.onnx")) };
    gst::init().unwrap();
    gstfaceveil::plugin_register_static().unwrap();
    let img = image::load_from_memory(&std::fs::read(tests.join("../../samples/astronaut.jpg")).unwrap()).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    assert_eq!(w % 4, 0, "RGB rows of this width need no padding");
    let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h).build().unwrap().to_caps().unwrap();
    let mut harness = Harness::new_parse("faceveildetect ! faceveil mode=blur");
    harness.set_src_caps(caps);
    harness.play();
    let mut buf = gst::Buffer::from_mut_slice(img.into_raw());
    buf.get_mut().unwrap().set_pts(gst::ClockTime::ZERO);
    let out = harness.push_and_pull(buf).expect("the stream goes on");
    let pixels = out.map_readable().unwrap();
    assert!(pixels.iter().all(|&v| v == 0), "a frame whose faces could not be found leaves blanked");
}
