//! What the elements share at run time: caps, frames mapped without unwinding into GStreamer,
//! errors, and the notes and warnings they post about a stream.

use faceveil::faces::detect::SURE_FACE_WIDTH;
use faceveil::finder::FaceFinder;
use gst::prelude::*;
use gst_video::VideoFormat;

/// Formats handled without conversion.
pub const FORMATS: &[VideoFormat] = &[
    VideoFormat::I420,
    VideoFormat::Nv12,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Xrgb,
    VideoFormat::Xbgr,
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Argb,
    VideoFormat::Abgr,
    VideoFormat::Gray8,
];

pub fn caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new().format_list(FORMATS.iter().copied()).build()
}

pub fn pad_templates() -> Vec<gst::PadTemplate> {
    let caps = caps();
    vec![
        gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).expect("src template"),
        gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).expect("sink template"),
    ]
}

pub fn settings_error(e: impl std::fmt::Display) -> gst::ErrorMessage {
    gst::error_msg!(gst::LibraryError::Settings, ("{}", e))
}

pub fn init_error(e: impl std::fmt::Display) -> gst::ErrorMessage {
    gst::error_msg!(gst::LibraryError::Init, ("{}", e))
}

/// Maps `buf` as a writable frame and runs `work` on it. Any failure is posted as an element
/// error (prefixed with `what`) and becomes a flow error, so nothing unwinds into GStreamer.
pub fn with_frame<T, R>(
    imp: &T,
    buf: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
    what: &str,
    work: impl FnOnce(&mut faceveil::frame::FrameMut) -> anyhow::Result<R>,
) -> Result<R, gst::FlowError>
where
    T: gst::subclass::prelude::ObjectSubclass,
    <T as gst::subclass::prelude::ObjectSubclass>::Type: IsA<gst::Element>,
{
    use gst::subclass::prelude::ObjectSubclassExt;
    let element = imp.obj();
    let fail = |domain: gst::StreamError, text: String| {
        gst::element_error!(element, domain, ("{}", text));
        gst::FlowError::Error
    };
    let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, info)
        .map_err(|_| fail(gst::StreamError::Failed, "cannot map the frame".into()))?;
    let mut view = crate::streamdata::frame_view(&mut frame).map_err(|e| fail(gst::StreamError::Format, e))?;
    work(&mut view).map_err(|e| fail(gst::StreamError::Failed, format!("{what}: {}", describe(&e))))
}

/// Formats an error with its causes on one line (anyhow's alternate form).
pub fn describe(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// Warns, from an element's `set_info`, of YUV or grey frames whose caps say full range
/// (0-255), as `jpegdec` gives an MJPEG webcam's and phones write `yuvj420p`: the elements read
/// them as limited range ([`crate::streamdata::is_full_range_yuv`]), so a face's darkest and
/// brightest levels clip and the model sees its contrast raised. GStreamer 1.22's videoconvert
/// does not convert between the two ranges of one YUV matrix, but it does to RGB, which the
/// elements read as it is.
pub fn warn_of_full_range<T>(imp: &T, info: &gst_video::VideoInfo)
where
    T: gst::subclass::prelude::ElementImpl,
    <T as gst::subclass::prelude::ObjectSubclass>::Type: IsA<gst::Element>,
{
    use gst::subclass::prelude::ObjectSubclassExt;
    if crate::streamdata::is_full_range_yuv(info) {
        gst::element_warning!(
            imp.obj(),
            gst::StreamError::Format,
            (
                "the stream is {} {}, which this element reads as limited range (16-235): faces' darkest and brightest levels clip; put `videoconvert ! video/x-raw,format=RGB` before it",
                info.format().to_str(),
                crate::streamdata::FULL_RANGE_WARNING_MARK
            )
        );
    }
}

/// What to say of a stream whose faces must be wider than twice the narrowest the detector
/// sees at its own size to be found: a 1920 x 1080 camera at the default detect-size misses
/// faces a 1280 x 720 one would find. Said once per resolution: `noted` keeps whether it was
/// (the element clears it when the resolution changes). None where the frame is not shrunk that
/// much, or it was said.
pub fn small_faces_note(noted: &mut bool, finder: &FaceFinder, info: &gst_video::VideoInfo) -> Option<String> {
    if std::mem::replace(noted, true) {
        return None;
    }
    let (width, height) = (info.width(), info.height());
    let limits = finder.face_size_limits(width as usize, height as usize)?;
    (limits.sure > 2.0 * SURE_FACE_WIDTH).then(|| {
        format!(
            "this {width}x{height} video is searched for faces at {}x{}: faces narrower than about {:.0} px may be missed, and none narrower than {:.0} px is found; a larger detect-size finds smaller faces, at more cost",
            limits.detected_width, limits.detected_height, limits.sure, limits.smallest
        )
    })
}

/// The `sink_event` of the elements that detect (faceveildetect, faceveil): forget the tracks
/// after a flush (a seek: the frames are unrelated to those before), warn once of a stream tagged
/// as stored turned ([`turned_stream_warning`]), posted once the state is unlocked, and pass the
/// event on. `parts` picks the state's finder and what was last said of the orientation.
pub fn detecting_sink_event<T, S>(
    imp: &T,
    state: &std::sync::Mutex<Option<S>>,
    event: gst::Event,
    parts: fn(&mut S) -> (&mut FaceFinder, &mut Option<String>),
) -> bool
where
    T: gst_base::subclass::prelude::BaseTransformImpl,
    <T as gst::subclass::prelude::ObjectSubclass>::Type: IsA<gst::Element>,
{
    use gst::subclass::prelude::ObjectSubclassExt;
    use gst_base::subclass::prelude::BaseTransformImplExt;
    let warning = state.lock().unwrap().as_mut().and_then(|state| {
        let (finder, said) = parts(state);
        if let gst::EventView::FlushStop(_) = event.view() {
            finder.reset();
        }
        turned_stream_warning(&event, said)
    });
    if let Some(warning) = warning {
        gst::element_warning!(imp.obj(), gst::StreamError::Format, ("{}", warning));
    }
    imp.parent_sink_event(event)
}

/// What to say of a stream tagged as stored turned (a phone's portrait video): the elements see
/// the stored pixels, where faces lie sideways, and neither find nor replace them as upright
/// faces. `faceveil anonymize` turns such video upright before its elements. Said once for each
/// orientation the stream is tagged with (`said` holds the last): the tag comes again with each
/// update of the stream's tags, 16 times on a phone clip.
pub fn turned_stream_warning(event: &gst::Event, said: &mut Option<String>) -> Option<String> {
    let gst::EventView::Tag(tag) = event.view() else { return None };
    let orientation = tag.tag().get::<gst::tags::ImageOrientation>()?.get().to_string();
    if said.as_deref() == Some(orientation.as_str()) {
        return None;
    }
    let warning = (orientation != "rotate-0").then(|| {
        format!(
            "the stream is tagged image-orientation={orientation}: its faces are stored turned; put `videoflip video-direction=auto` before this element, or faces are neither found nor replaced as upright faces"
        )
    });
    *said = Some(orientation);
    warning
}
