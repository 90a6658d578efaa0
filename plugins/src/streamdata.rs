//! GStreamer-side plumbing shared by the elements and every front end (the `faceveil` command,
//! applications): mapping GStreamer frames onto faceveil frames, faceveil's stream data in SEI
//! metas, and carrying those metas through an encoder and back out of a decoder (the tags,
//! messages and queries beside the frames are [`crate::outofband`]'s).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faceveil::frame::{FrameMut, PixelFormat, Plane, YuvMatrix};
use faceveil::secrets::{Signer, SigningKey};
use faceveil::stream::header::StreamHeader;
use faceveil::stream::pictures::{self, PictureCheck, PictureWatch, Watched};
use faceveil::stream::sei::{self, Codec, Framing};
use faceveil::stream::{SEI_UUID, SeiPayload};
use faceveil::timing::StageTimes;
use gst::glib;
use gst_video::VideoFormat;
use gst_video::prelude::*;
use gst_video::video_meta::VideoSeiUserDataUnregisteredMeta;

use crate::outofband::{ContainerTags, TAGGED_CONTAINERS, answer_pictures_checked, end_from_tag};

pub fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    Some(match format {
        VideoFormat::I420 => PixelFormat::I420,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::Rgbx | VideoFormat::Rgba => PixelFormat::Rgbx,
        VideoFormat::Bgrx | VideoFormat::Bgra => PixelFormat::Bgrx,
        VideoFormat::Xrgb | VideoFormat::Argb => PixelFormat::Xrgb,
        VideoFormat::Xbgr | VideoFormat::Abgr => PixelFormat::Xbgr,
        VideoFormat::Gray8 => PixelFormat::Gray8,
        _ => return None,
    })
}

/// Whether frames of `info` are YUV or grey in full range (0-255), which the elements read as
/// limited range (16-235), as video codecs write it.
pub fn is_full_range_yuv(info: &gst_video::VideoInfo) -> bool {
    let format = info.format_info();
    (format.is_yuv() || format.is_gray()) && info.colorimetry().range() == gst_video::VideoColorRange::Range0_255
}

/// Part of the words of the elements' warning of full-range YUV input (which they read as
/// limited range), by which an application that gives them such frames on purpose (faces sealed
/// in YUV open only in YUV) can tell that warning apart.
pub const FULL_RANGE_WARNING_MARK: &str = "in full range (0-255)";

/// How the warning ends that a restore checking signed pictures gives for a stream whose last
/// picture was not as signed: by which an application can tell it from other elements' warnings.
pub const LAST_PICTURE_LEFT_OUT: &str = "it is the last picture of the recording, where a writer killed or cut off within a picture (a crash, a power cut, a full disk) stops: left out of the restore";

/// Views a mapped GStreamer frame as a faceveil frame.
pub fn frame_view<'a>(frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>) -> Result<FrameMut<'a>, String> {
    let info = frame.info().clone();
    let format = pixel_format(info.format()).ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
    let matrix = match info.colorimetry().matrix() {
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
        gst_video::VideoColorMatrix::Unknown => YuvMatrix::default_for_height(info.height() as usize),
        _ => YuvMatrix::Bt601,
    };
    let strides: Vec<usize> = info.stride().iter().map(|s| *s as usize).collect();
    let n = info.n_planes() as usize;
    let planes: Vec<Plane<'a>> =
        frame.planes_data_mut().into_iter().take(n).zip(strides).map(|(data, stride)| Plane { data, stride }).collect();
    FrameMut::new(format, info.width() as usize, info.height() as usize, matrix, planes).map_err(|e| e.to_string())
}

/// The faceveil SEI payload of a buffer, if it carries one (an unreadable or altered one is an
/// error, not an absence).
pub fn read_sei(buf: &gst::BufferRef) -> Option<Result<SeiPayload, faceveil::Error>> {
    buf.iter_meta::<VideoSeiUserDataUnregisteredMeta>().find(|m| m.uuid() == SEI_UUID).map(|m| SeiPayload::decode(m.data()))
}

/// Attaches a frame's payload as a SEI meta, for an encoder downstream to write into the stream,
/// in place of any faceveil payload the frame brought along (from an anonymized input).
pub fn attach_sei(buf: &mut gst::BufferRef, payload: &SeiPayload) {
    buf.foreach_meta_mut(|mut meta| {
        let ours = meta.downcast_ref::<VideoSeiUserDataUnregisteredMeta>().is_some_and(|m| m.uuid() == SEI_UUID);
        std::ops::ControlFlow::Continue(if ours {
            gst::buffer::BufferMetaForeachAction::Remove
        } else {
            gst::buffer::BufferMetaForeachAction::Keep
        })
    });
    VideoSeiUserDataUnregisteredMeta::add(buf, &SEI_UUID, &payload.encode());
}

/// A face faceveildetect reported on a frame, as its region-of-interest meta carries it.
pub struct FaceBox {
    pub track: u64,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub score: f32,
}

/// The faces faceveildetect attached to a frame (they stay on it through faceveil).
pub fn face_boxes(buf: &gst::BufferRef) -> Vec<FaceBox> {
    buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .filter(|m| m.roi_type() == crate::rois::ROI_TYPE)
        .filter_map(|m| {
            let param = m.param(crate::rois::ROI_PARAM)?;
            let (x, y, width, height) = m.rect();
            let track = param.get::<u64>("track-id").ok()?;
            let score = param.get::<f64>("confidence").unwrap_or(1.0) as f32;
            Some(FaceBox { track, x, y, width, height, score })
        })
        .collect()
}

/// What an element's `stage-times` property reports (faceveildetect, faceveil), as the
/// library's [`StageTimes`]: zero for an element that has not run.
pub fn stage_times(element: &gst::Element) -> StageTimes {
    let mut times = StageTimes::default();
    let Some(s) = element.find_property("stage-times").and_then(|_| element.property::<Option<gst::Structure>>("stage-times"))
    else {
        return times;
    };
    let ns = |name: &str| Duration::from_nanos(s.get::<u64>(name).unwrap_or(0));
    let stages = times.stages().map(|(name, _)| ns(name));
    [times.downscale, times.detect, times.track, times.seal, times.crop, times.model, times.blend] = stages;
    times.frames = s.get("frames").unwrap_or(0);
    times.detections = s.get("detections").unwrap_or(0);
    times.cut_detections = s.get("cut-detections").unwrap_or(0);
    times.region_detections = s.get("region-detections").unwrap_or(0);
    times.skipped_detections = s.get("skipped-detections").unwrap_or(0);
    times.rested_faces = s.get("rested-faces").unwrap_or(0);
    times.sure_waits = s.get("sure-waits").unwrap_or(0);
    times.faces = s.get("faces").unwrap_or(0);
    times
}

/// SEI payloads waiting between two pads, keyed by running time (ns).
type Pending = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

/// How far behind the newest output a payload may wait before it counts as lost (the encoder
/// dropped its frame): encoders reorder frames by far less than this.
const REORDER_WINDOW_NS: u64 = 2_000_000_000;

/// A buffer's running time in ns: the clock both sides of an encoder or decoder agree on, where
/// the timestamps themselves may be shifted (x264enc moves them to leave room for B-frames).
pub fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u64> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
    segment.to_running_time(buffer.pts()?).map(|t| t.nseconds())
}

/// The codec of the H.264 or H.265 stream on `pad` and how it frames its NAL units.
pub(crate) fn nal_framing(pad: &gst::Pad) -> Option<(Codec, Framing)> {
    caps_framing(pad.current_caps()?.as_ref())
}

/// The codec and NAL framing of H.264 or H.265 caps; `None` for anything else.
fn caps_framing(caps: &gst::CapsRef) -> Option<(Codec, Framing)> {
    let s = caps.structure(0)?;
    // avcC and hvcC: the low two bits of byte 4 (avcC) or 21 (hvcC) are the NAL length size - 1.
    let (codec, length_size_at) = match s.name().as_str() {
        "video/x-h264" => (Codec::H264, 4),
        "video/x-h265" => (Codec::H265, 21),
        _ => return None,
    };
    if s.get::<&str>("stream-format").ok() == Some("byte-stream") {
        return Some((codec, Framing::AnnexB));
    }
    let size = s
        .get::<gst::Buffer>("codec_data")
        .ok()
        .and_then(|b| b.map_readable().ok().and_then(|m| m.get(length_size_at).map(|v| (v & 3) as usize + 1)))
        .unwrap_or(4);
    Some((codec, Framing::Avc(size)))
}

/// The first stream header in the faceveil SEI of the video at `uri`, read from its first
/// `frames` coded pictures without decoding them: a restore of a file cut or joined away from a
/// header starts with it, rather than passing the pictures before the next one unrestored.
/// `None` where none comes within them, or the file cannot be parsed.
pub fn header_in_stream(uri: &str, frames: u32) -> Option<StreamHeader> {
    let mut header = None;
    let mut seen = 0;
    let _ = each_payload(uri, Some(std::time::Instant::now() + HEADER_SCAN_LIMIT), |picture| {
        seen += 1;
        header = picture.payload.and_then(|p| p.ok()).and_then(|p| p.header);
        header.is_none() && seen < frames
    });
    header
}

/// One coded picture as [`each_payload`] meets it.
pub struct CodedPicture<'a> {
    /// Its faceveil SEI payload: `None` where it carries none, an error where it does not read.
    pub payload: Option<Result<SeiPayload, faceveil::Error>>,
    /// When the container shows it (ns), where it says.
    pub pts: Option<u64>,
    au: &'a [u8],
    codec: Codec,
    framing: Framing,
}

impl CodedPicture<'_> {
    /// Whether the picture is as `signer` signed it.
    pub fn check(&self, signer: &Signer) -> PictureCheck {
        pictures::check(signer, self.au, self.framing, self.codec)
    }
}

/// The segment event `event` without its stop (the same event otherwise), where it is a segment
/// of time that has one: a decoder or a sink drops the pictures shown after a segment's stop. GStreamer 1.22's MP4 reader stops the
/// segment of a fragmented MP4 whose writer was killed before it finished the file (as the CLI
/// writes MP4s, in fragments of a second) where the pictures' decoding times end, so that the
/// B-picture shown after that in each fragment was dropped: `verify` took it for a picture cut
/// out, and a restore went without it. (In a finished file the stop is the file's duration,
/// after its last picture; an edit list that trims a file's end is the rare case it changes.)
pub fn open_ended(event: &gst::EventRef) -> Option<gst::Event> {
    let gst::EventView::Segment(segment) = event.view() else { return None };
    let time = segment.segment().downcast_ref::<gst::ClockTime>()?;
    time.stop()?;
    let mut open = time.clone();
    open.set_stop(gst::ClockTime::NONE);
    Some(gst::event::Segment::builder(&open).seqnum(event.seqnum()).build())
}

/// Each coded picture of the video at `uri` with its faceveil SEI payload, in stream order,
/// without decoding the pictures. `visit` returns whether to go on; reading also stops at
/// `deadline`, if given, whether pictures come or not (a slow disk, a network share). Returns
/// what the container's tags held of faceveil's. An error where the file cannot be parsed or
/// holds no H.264 or H.265 stream. An MP4 the CLI finished that was cut short after is read up to
/// its last whole fragment ([`crate::cutmp4`]).
pub fn each_payload(
    uri: &str,
    deadline: Option<std::time::Instant>,
    mut visit: impl FnMut(CodedPicture<'_>) -> bool,
) -> anyhow::Result<ContainerTags> {
    use anyhow::{Context, bail};
    let pipeline = gst::Pipeline::new();
    let src = gst::Element::make_from_uri(gst::URIType::Src, uri, None).context("cannot read it")?;
    crate::cutmp4::mend_source(&src);
    let parse = gst::ElementFactory::make("parsebin").build()?;
    let sink = gst_app::AppSink::builder().sync(false).max_buffers(4).build();
    pipeline.add_many([&src, &parse, sink.upcast_ref()])?;
    src.link(&parse)?;
    let target = sink.static_pad("sink").expect("appsink has a sink pad");
    let tags = Arc::new(Mutex::new(ContainerTags::default()));
    let keep = tags.clone();
    target.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, probe| {
        let Some(gst::PadProbeData::Event(event)) = &mut probe.data else { return gst::PadProbeReturn::Ok };
        if let gst::EventView::Tag(tag) = event.view()
            && let Some(end) = tag.tag().iter_tag::<gst::tags::Comment>().find_map(|c| end_from_tag(c.get()))
        {
            keep.lock().unwrap().end = Some(end);
        } else if let Some(open) = open_ended(event) {
            *event = open;
        }
        gst::PadProbeReturn::Ok
    });
    let kind = tags.clone();
    parse.downcast_ref::<gst::Bin>().expect("parsebin is a bin").connect_deep_element_added(move |_, _, element| {
        if element.factory().is_some_and(|f| TAGGED_CONTAINERS.contains(&f.name().as_str())) {
            kind.lock().unwrap().keeps_tags = true;
        }
    });
    let linked = target.clone();
    parse.connect_pad_added(move |_, pad| {
        // A transport stream's pads come before their caps are set: what they can carry says it.
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let coded = caps.iter().any(|s| matches!(s.name().as_str(), "video/x-h264" | "video/x-h265"));
        if coded && !target.is_linked() {
            let _ = pad.link(&target);
        }
    });
    // A file with no H.264 or H.265 stream (another tool's VP9) links nothing: its pads are all
    // known once parsebin has no more, and the streams left unlinked then end it with an error.
    let settled = Arc::new(AtomicBool::new(false));
    let said = settled.clone();
    parse.connect_no_more_pads(move |_| said.store(true, Ordering::Relaxed));
    let stopping = |result: anyhow::Result<()>| {
        let _ = pipeline.set_state(gst::State::Null);
        result.map(|()| std::mem::take(&mut *tags.lock().unwrap()))
    };
    pipeline.set_state(gst::State::Playing).context("cannot parse it")?;
    let bus = pipeline.bus().expect("pipelines have a bus");
    loop {
        if settled.load(Ordering::Relaxed) && !linked.is_linked() {
            return stopping(Err(anyhow::anyhow!("it holds no H.264 or H.265 video")));
        }
        if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            let gst::MessageView::Error(e) = msg.view() else { unreachable!("filtered") };
            return stopping(Err(anyhow::anyhow!("cannot parse it: {}", e.error())));
        }
        if sink.is_eos() || deadline.is_some_and(|at| std::time::Instant::now() >= at) {
            return stopping(Ok(()));
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) else { continue };
        let (Some(buffer), Some((codec, framing))) = (sample.buffer(), sample.caps().and_then(caps_framing)) else { continue };
        let Ok(data) = buffer.map_readable() else { bail!("cannot read a coded picture") };
        let payload = sei::find_user_data(&data, framing, codec, &SEI_UUID).first().map(|p| SeiPayload::decode(p));
        let pts = buffer.pts().map(|t| t.nseconds());
        if !visit(CodedPicture { payload, pts, au: &data, codec, framing }) {
            return stopping(Ok(()));
        }
    }
}

/// The longest [`header_in_stream`] reads a file for (a slow disk, a network share).
const HEADER_SCAN_LIMIT: Duration = Duration::from_secs(10);

/// Makes an H.264 or H.265 encoder write the faceveil SEI metas of its raw input (attached by
/// `faceveil`) into the matching access units of its output, as user-data-unregistered SEI NAL
/// units: x264enc and x265enc (GStreamer 1.22) drop these metas. Frames are matched by running
/// time, which survives the encoder's reordering and timestamp shift. With `pictures`, each
/// such access unit is signed as well ([`faceveil::stream::pictures`]), as the header of a
/// stream signed by `faceveil`'s `sign-pictures` promises.
pub fn sei_through_encoder(encoder: &gst::Element, pictures: Option<SigningKey>) -> Result<(), glib::BoolError> {
    let sink = encoder.static_pad("sink").ok_or_else(|| glib::bool_error!("{} has no sink pad", encoder.name()))?;
    let src = encoder.static_pad("src").ok_or_else(|| glib::bool_error!("{} has no src pad", encoder.name()))?;
    let pending = Pending::default();
    let collect = pending.clone();
    sink.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH, move |pad, probe| {
        match &probe.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                if let Some(meta) = buffer.iter_meta::<VideoSeiUserDataUnregisteredMeta>().find(|m| m.uuid() == SEI_UUID)
                    && let Some(time) = running_time(pad, buffer)
                {
                    collect.lock().unwrap().insert(time, meta.data().to_vec());
                }
            }
            Some(gst::PadProbeData::Event(ev)) if ev.type_() == gst::EventType::FlushStop => collect.lock().unwrap().clear(),
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() else { return gst::PadProbeReturn::Ok };
        let (Some(time), Some((codec, framing))) = (running_time(pad, buffer), nal_framing(pad)) else {
            return gst::PadProbeReturn::Ok;
        };
        let payload = {
            let mut pending = pending.lock().unwrap();
            let payload = pending.remove(&time);
            pending.retain(|t, _| t + REORDER_WINDOW_NS >= time);
            payload
        };
        if let Some(payload) = payload
            && let Some(out) = with_sei(buffer, codec, framing, &payload, pictures.as_ref())
        {
            *buffer = out;
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// A copy of the access unit `buffer` with `payload` as a faceveil SEI NAL unit before its first
/// slice (unless it carries one: an application wrote it), and before that the picture's
/// signature where `signer` is given, keeping the buffer's flags, timestamps and metas; `None` if it
/// cannot be read.
pub(crate) fn with_sei(
    buffer: &gst::BufferRef,
    codec: Codec,
    framing: Framing,
    payload: &[u8],
    signer: Option<&SigningKey>,
) -> Option<gst::Buffer> {
    let au = buffer.map_readable().ok()?;
    let mut rewritten = if sei::find_user_data(&au, framing, codec, &SEI_UUID).is_empty() {
        sei::insert_before_first_slice(&au, framing, codec, &sei::sei_nal(codec, &SEI_UUID, payload))
    } else {
        au.to_vec()
    };
    drop(au);
    if let Some(nal) = signer.and_then(|key| pictures::signature_nal(key, &rewritten, framing, codec)) {
        // Before faceveil's own message: a decoder that keeps one unregistered SEI message a
        // picture keeps the last (gst-libav 1.22's avdec_h264), and a restore needs the record.
        rewritten = sei::insert_before_user_data(&rewritten, framing, codec, &nal, &SEI_UUID);
    }
    let mut out = gst::Buffer::from_mut_slice(rewritten);
    {
        let out = out.get_mut().expect("a new buffer is writable");
        // Copying flags, timestamps and metas into a fresh buffer cannot fail.
        let _ = buffer.copy_into(
            out,
            gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::META,
            ..,
        );
    }
    Some(out)
}

/// Makes the decoded frames of `decodebin` (a decodebin, uridecodebin or any bin that plugs
/// h264parse or h265parse) carry the faceveil SEI payloads of their coded access units as
/// metas, for `faceunveil`, whether or not the decoder passes such metas on. Frames are matched
/// by running time between the parser's output and the bin's raw video pads. With `pictures`,
/// the signer a restore requires, each coded picture under a header of that signer's that
/// promises signed pictures is checked before it is decoded ([`PictureWatch`]): the first that
/// is not as signed fails the pipeline with an error naming its frame, unless it is the last of
/// the stream, which is left out with a warning that ends in [`LAST_PICTURE_LEFT_OUT`].
pub fn sei_from_parser(decodebin: &gst::Element, pictures: Option<Signer>) -> Result<(), glib::BoolError> {
    let bin = decodebin.downcast_ref::<gst::Bin>().ok_or_else(|| glib::bool_error!("{} is not a bin", decodebin.name()))?;
    let pending = Pending::default();
    let collect = pending.clone();
    bin.connect_deep_element_added(move |_, _, element| {
        if element.factory().is_none_or(|f| !matches!(f.name().as_str(), "h264parse" | "h265parse")) {
            return;
        }
        let Some(src) = element.static_pad("src") else { return };
        let collect = collect.clone();
        // A parser of its own for each stream (a reconnected source plugs another): its header
        // comes in its own SEI.
        let watch = pictures.clone().map(|signer| Mutex::new(PictureWatch::new(signer)));
        if let Some(signer) = pictures.clone() {
            src.add_probe(gst::PadProbeType::QUERY_UPSTREAM, move |_, probe| {
                let Some(gst::PadProbeData::Query(query)) = &mut probe.data else { return gst::PadProbeReturn::Ok };
                if answer_pictures_checked(query, &signer) { gst::PadProbeReturn::Handled } else { gst::PadProbeReturn::Ok }
            });
        }
        // The end of stream matters only to a watch, which may hold the last picture back.
        let seen = if watch.is_some() {
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM
        } else {
            gst::PadProbeType::BUFFER
        };
        src.add_probe(seen, move |pad, probe| {
            if let Some(gst::PadProbeData::Event(event)) = &probe.data {
                if let (gst::EventView::Eos(_), Some(watch)) = (event.view(), &watch)
                    && let Some(why) = watch.lock().unwrap().end()
                    && let Some(parser) = pad.parent_element()
                {
                    let why = format!("{why}; {LAST_PICTURE_LEFT_OUT}");
                    parser.post_message(gst::message::Warning::builder(gst::StreamError::Failed, &why).src(&parser).build()).ok();
                }
                return gst::PadProbeReturn::Ok;
            }
            let (Some(gst::PadProbeData::Buffer(buffer)), Some((codec, framing))) = (&probe.data, nal_framing(pad)) else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(data) = buffer.map_readable() else { return gst::PadProbeReturn::Ok };
            match watch.as_ref().map(|w| w.lock().unwrap().check(&data, framing, codec)) {
                Some(Err(why)) => {
                    if let Some(parser) = pad.parent_element() {
                        let why = format!("{why}: the signed recording was altered, nothing of it is restored");
                        parser
                            .post_message(gst::message::Error::builder(gst::StreamError::Failed, &why).src(&parser).build())
                            .ok();
                    }
                    return gst::PadProbeReturn::Drop;
                }
                Some(Ok(Watched::HeldBack)) => return gst::PadProbeReturn::Drop,
                _ => {}
            }
            if let (Some(time), Some(payload)) =
                (running_time(pad, buffer), sei::find_user_data(&data, framing, codec, &SEI_UUID).pop())
            {
                collect.lock().unwrap().insert(time, payload);
            }
            gst::PadProbeReturn::Ok
        });
    });
    decodebin.connect_pad_added(move |_, pad| {
        let pending = pending.clone();
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_FLUSH, move |pad, probe| {
            match probe.data.as_mut() {
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    let Some(time) = running_time(pad, buffer) else { return gst::PadProbeReturn::Ok };
                    let payload = {
                        let mut pending = pending.lock().unwrap();
                        let payload = pending.remove(&time);
                        // Decoded frames leave in presentation order: payloads before this one
                        // belong to frames the decoder dropped (undecodable on joining midway).
                        pending.retain(|t, _| *t > time);
                        payload
                    };
                    if let Some(payload) = payload
                        && read_sei(buffer).is_none()
                    {
                        VideoSeiUserDataUnregisteredMeta::add(buffer.make_mut(), &SEI_UUID, &payload);
                    }
                }
                Some(gst::PadProbeData::Event(ev)) if ev.type_() == gst::EventType::FlushStop => pending.lock().unwrap().clear(),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
    });
    Ok(())
}
