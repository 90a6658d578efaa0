//! Faces between elements: the ROI metas of type "face" that faceveildetect attaches and
//! faceveil and faceunveil read, and the scan meta that says how many it attached.

use faceveil::faces::detect::Face;
use faceveil::faces::geometry::BBox;
use faceveil::faces::track::Track;

pub const ROI_TYPE: &str = "face";
pub const ROI_PARAM: &str = "faceveil-face";

/// A custom meta faceveildetect puts on every frame it scanned, with the number of face ROI metas
/// it attached. It tells "no faces here" apart from "nobody looked", and shows when ROI metas
/// were lost on the way (an element that drops or filters them).
pub const SCAN_META: &str = "GstFaceveilScanMeta";
const SCAN_FACES: &str = "faces";

/// Registers [`SCAN_META`] (once per process; the plugin may be loaded more than once in tests).
pub fn register_scan_meta() {
    if !gst::meta::CustomMeta::is_registered(SCAN_META) {
        gst::meta::CustomMeta::register(SCAN_META, &[]);
    }
}

/// What upstream said about a frame's faces.
pub struct Upstream {
    /// The number of faces faceveildetect reported, where it scanned the frame.
    pub scanned: Option<u32>,
    /// The face ROI metas faceveildetect attached.
    pub ours: Vec<Face>,
    /// Face ROI metas from other elements: covered too, but never trusted to be all the faces.
    pub others: Vec<Face>,
}

impl Upstream {
    pub fn of(buf: &gst::BufferRef) -> Self {
        let scanned =
            gst::meta::CustomMeta::from_buffer(buf, SCAN_META).ok().and_then(|m| m.structure().get::<u32>(SCAN_FACES).ok());
        let (mut ours, mut others) = (Vec::new(), Vec::new());
        for m in buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>().filter(|m| m.roi_type() == ROI_TYPE) {
            let (x, y, w, h) = m.rect();
            let bbox = BBox { x0: x as f32, y0: y as f32, x1: (x + w) as f32, y1: (y + h) as f32 };
            match m.param(ROI_PARAM) {
                Some(p) => {
                    let score = p.get::<f64>("confidence").unwrap_or(1.0) as f32;
                    ours.push(Face { bbox, score, landmarks: landmarks_of(p) });
                }
                None => others.push(Face { bbox, score: 1.0, landmarks: None }),
            }
        }
        Self { scanned, ours, others }
    }

    /// Whether faceveildetect's faces are all there: it scanned the frame and every ROI it
    /// attached arrived.
    pub fn complete(&self) -> bool {
        self.scanned == Some(self.ours.len() as u32)
    }
}

/// The five landmarks [`attach_rois`] put in a face's parameters, where it put them: the
/// anonymizer stands a face lying on its side upright by them (`faceveil::faces::upright`).
fn landmarks_of(param: &gst::StructureRef) -> Option<[(f32, f32); 5]> {
    let flat = param.get::<gst::Array>("landmarks").ok()?;
    let values: Vec<f32> = flat.iter().map(|v| v.get::<f32>().ok()).collect::<Option<_>>()?;
    (values.len() == 10).then(|| std::array::from_fn(|i| (values[2 * i], values[2 * i + 1])))
}

/// Attaches tracked faces as ROI metas with their track id, score and landmarks, and the scan
/// meta that says how many there are.
pub fn attach_rois(buf: &mut gst::BufferRef, tracks: &[Track], width: u32, height: u32) {
    let mut attached = 0u32;
    for t in tracks {
        let x0 = t.bbox.x0.clamp(0.0, width as f32);
        let y0 = t.bbox.y0.clamp(0.0, height as f32);
        let x1 = t.bbox.x1.clamp(0.0, width as f32);
        let y1 = t.bbox.y1.clamp(0.0, height as f32);
        if x1 - x0 < 1.0 || y1 - y0 < 1.0 {
            continue;
        }
        let rect = (x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
        let mut meta = gst_video::VideoRegionOfInterestMeta::add(buf, ROI_TYPE, rect);
        meta.set_id(t.id as i32);
        let mut s = gst::Structure::builder(ROI_PARAM)
            .field("track-id", t.id)
            .field("confidence", t.score as f64)
            .field("missed-frames", t.missed());
        if let Some(l) = t.landmarks {
            let flat: Vec<f32> = l.iter().flat_map(|(x, y)| [*x, *y]).collect();
            s = s.field("landmarks", gst::Array::new(flat));
        }
        meta.add_param(s.build());
        attached += 1;
    }
    match gst::meta::CustomMeta::add(buf, SCAN_META) {
        Ok(mut meta) => meta.mut_structure().set(SCAN_FACES, attached),
        // Without the scan meta faceveil does not trust the ROIs and detects again itself.
        Err(e) => gst::warning!(gst::CAT_RUST, "cannot add {SCAN_META}: {e}"),
    }
}
