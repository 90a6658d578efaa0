//! Video files, network streams and cameras through GStreamer: decode, change the faces of
//! every frame in a pad probe, re-encode with x264 and mux with the audio kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, Sender, unbounded};
use faceveil::faces::track::Track;
use faceveil::frame::FrameMut;
use faceveil::pipeline::{Anonymizer, Restorer};
use faceveil::stream::header::StreamHeader;
use faceveil::stream::sei::{self, Codec, Framing};
use faceveil::stream::sidecar::{self, Sidecar, SidecarWriter};
use faceveil::stream::{SEI_UUID, SeiPayload};
use faceveil::veil::FaceFinder;
use gst::prelude::*;
use gstfaceveil::streamdata;

use super::images::write_atomically;
use super::input::{Input, StreamSource};
use super::progress;

/// Where the probe leaves a header found in the input's tags; shared with the frame function,
/// which runs after the tags have passed.
pub type HeaderSlot = Arc<Mutex<Option<String>>>;

/// Frames a queue between two processing stages holds.
const STAGE_QUEUE_FRAMES: u32 = 4;

/// Per-frame work: the frame, its number, its running time in ns and the faces the find stage
/// (if any) located in it.
pub type FrameFn = Box<dyn FnMut(&mut FrameMut, u64, Option<u64>, &[Track]) -> Result<()> + Send>;

/// Finds the faces of a frame. It runs on its own streaming thread, a queue ahead of
/// [`FrameFn`], so that detecting one frame overlaps anonymizing the one before.
pub type FindFn = Box<dyn FnMut(&FrameMut) -> Result<Vec<Track>> + Send>;

/// State the pad probes share with the caller.
pub struct Hook {
    process: Mutex<FrameFn>,
    find: Option<Mutex<FindFn>>,
    /// Faces found per frame, in stream order: the queue between the stages keeps that order
    /// and drops nothing.
    found: (Sender<Vec<Track>>, Receiver<Vec<Track>>),
    error: Mutex<Option<anyhow::Error>>,
    frames: AtomicU64,
    /// End (pts + duration) of the latest frame seen, in ns.
    end_ns: AtomicU64,
    /// Header text found in the input's tags (a comment with the faceveil prefix).
    header_tag: HeaderSlot,
    /// Set when the video changed resolution and the container cannot hold that: the input is
    /// then ended early, as with Ctrl-C, and what came before is kept.
    size_change: Mutex<Option<String>>,
}

/// Initialises GStreamer and registers the faceveil elements built into this binary, so that
/// they come from the same build as the command, whatever GST_PLUGIN_PATH holds (they replace
/// a plugin of the same name found there).
pub fn init() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    gst::init().context("cannot initialise GStreamer")?;
    REGISTERED
        .get_or_init(|| gstfaceveil::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow!("cannot register the faceveil elements: {e}"))
}

pub fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("GStreamer element '{factory}' is missing (run scripts/setup.sh)"))
}

/// The source part of a pipeline; returns the element whose dynamic pads carry decoded streams.
pub fn add_source(pipeline: &gst::Pipeline, source: &StreamSource) -> Result<gst::Element> {
    match source {
        StreamSource::File(path) => {
            let abs = std::fs::canonicalize(path).with_context(|| format!("cannot open {}", path.display()))?;
            let uri = gst::glib::filename_to_uri(&abs, None).context("cannot make a URI of the input path")?;
            let dec = gst::ElementFactory::make("uridecodebin").property("uri", uri.as_str()).build()?;
            pipeline.add(&dec)?;
            Ok(dec)
        }
        StreamSource::Uri(uri, transport) => {
            let dec = gst::ElementFactory::make("uridecodebin").property("uri", uri.as_str()).build()?;
            if let Some(protocols) = transport.protocols() {
                dec.connect("source-setup", false, move |args| {
                    if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok())
                        && src.find_property("protocols").is_some()
                    {
                        src.set_property_from_str("protocols", protocols);
                    }
                    None
                });
            }
            skip_unrecovered_pictures(&dec);
            pipeline.add(&dec)?;
            Ok(dec)
        }
        StreamSource::Camera(device) => {
            let src = gst::ElementFactory::make("v4l2src").property("device", device.as_str()).build()?;
            let dec = make("decodebin")?;
            skip_unrecovered_pictures(&dec);
            pipeline.add_many([&src, &dec])?;
            src.link(&dec)?;
            Ok(dec)
        }
    }
}

/// A live stream joined midway starts on pictures whose references were never received; the
/// decoder would hand them out gray until a keyframe or an intra refresh completes (2 s on the
/// served stream). They are dropped instead, so the output starts at the first whole picture.
fn skip_unrecovered_pictures(decodebin: &gst::Element) {
    let Some(bin) = decodebin.downcast_ref::<gst::Bin>() else { return };
    bin.connect_deep_element_added(|_, _, element| {
        if element.find_property("output-corrupt").is_some() {
            element.set_property("output-corrupt", false);
        }
    });
}

/// Chains `elements`, adds them to `pipeline` and brings them to its state.
fn add_chain(pipeline: &gst::Pipeline, elements: &[gst::Element]) -> Result<()> {
    pipeline.add_many(elements)?;
    gst::Element::link_many(elements)?;
    for e in elements {
        e.sync_state_with_parent()?;
    }
    Ok(())
}

impl Hook {
    pub fn new(find: Option<FindFn>, process: FrameFn, header_tag: HeaderSlot) -> Arc<Self> {
        Arc::new(Self {
            process: Mutex::new(process),
            find: find.map(Mutex::new),
            found: unbounded(),
            error: Mutex::new(None),
            frames: AtomicU64::new(0),
            end_ns: AtomicU64::new(0),
            header_tag,
            size_change: Mutex::new(None),
        })
    }

    /// The find stage: locates the faces and hands them on.
    fn find(&self, frame: &mut FrameMut) -> Result<()> {
        let find = self.find.as_ref().expect("the find probe is installed only with a find function");
        let tracks = (find.lock().unwrap())(frame)?;
        self.found.0.send(tracks).map_err(|_| anyhow!("the frame stage has stopped"))
    }

    /// The frame stage: the caller's work on the faces found for this frame.
    fn process(&self, frame: &mut FrameMut, pts: Option<u64>) -> Result<()> {
        let tracks = match &self.find {
            Some(_) => self.found.1.try_recv().map_err(|_| anyhow!("a frame reached the anonymizer without its faces"))?,
            None => Vec::new(),
        };
        let n = self.frames.fetch_add(1, Ordering::SeqCst);
        (self.process.lock().unwrap())(frame, n, pts, &tracks)
    }

    fn fail(&self, pad: &gst::Pad, e: anyhow::Error) {
        let text = format!("{e:#}");
        self.error.lock().unwrap().get_or_insert(e);
        if let Some(parent) = pad.parent_element() {
            gst::element_error!(parent, gst::StreamError::Failed, ["{}", text]);
        }
    }
}

/// Which stage a probe runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Find,
    Process,
}

/// Installs the probe that runs one stage of `hook` on every frame passing `pad`.
fn install_probe(pad: &gst::Pad, hook: Arc<Hook>, stage: Stage) {
    let info_cache: Mutex<Option<(gst::Caps, gst_video::VideoInfo)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, probe| {
        if let Some(gst::PadProbeData::Event(ev)) = &probe.data {
            if let gst::EventView::Tag(tag) = ev.view()
                && stage == Stage::Process
            {
                for c in tag.tag().iter_tag::<gst::tags::Comment>() {
                    if let Some(text) = streamdata::header_from_tag(c.get()) {
                        *hook.header_tag.lock().unwrap() = Some(text.to_string());
                    }
                }
            }
            return gst::PadProbeReturn::Ok;
        }
        let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() else { return gst::PadProbeReturn::Ok };
        let result = (|| -> Result<()> {
            let caps = pad.current_caps().context("no caps on the video pad")?;
            let mut cache = info_cache.lock().unwrap();
            if cache.as_ref().is_none_or(|(c, _)| *c != caps) {
                *cache = Some((caps.clone(), gst_video::VideoInfo::from_caps(&caps)?));
            }
            let info = cache.as_ref().expect("just filled").1.clone();
            let pts = running_time(pad, buffer);
            if stage == Stage::Process {
                let end = pts.unwrap_or(0) + buffer.duration().map(|d| d.nseconds()).unwrap_or(0);
                hook.end_ns.fetch_max(end, Ordering::SeqCst);
            }
            let buf = buffer.make_mut();
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                .map_err(|_| anyhow!("cannot map a video frame"))?;
            let mut view = streamdata::frame_view(&mut frame).map_err(|e| anyhow!(e))?;
            match stage {
                Stage::Find => hook.find(&mut view),
                Stage::Process => hook.process(&mut view, pts),
            }
        })();
        match result {
            Ok(()) => gst::PadProbeReturn::Ok,
            Err(e) => {
                hook.fail(pad, e);
                gst::PadProbeReturn::Handled
            }
        }
    });
}

/// A buffer's running time in ns: the clock both sides of an encoder (which shifts timestamps)
/// or decoder agree on.
fn running_time(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<u64> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = segment.segment().downcast_ref::<gst::ClockTime>()?.clone();
    segment.to_running_time(buffer.pts()?).map(|t| t.nseconds())
}

/// A queue between two stages: a few frames are enough to keep both busy, and more would only
/// add memory (1.4 MB a 720p frame) and latency.
fn stage_queue() -> Result<gst::Element> {
    Ok(gst::ElementFactory::make("queue")
        .property("max-size-buffers", STAGE_QUEUE_FRAMES)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?)
}

/// The codec of the H.264 or H.265 stream on `pad` and how it frames its NAL units.
fn nal_framing(pad: &gst::Pad) -> Option<(Codec, Framing)> {
    let caps = pad.current_caps()?;
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

/// Puts each frame's payload into its access unit as a user-data-unregistered SEI.
pub fn insert_sei(pad: &gst::Pad, map: SeiMap) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() else { return gst::PadProbeReturn::Ok };
        let (Some(time), Some((codec, framing))) = (running_time(pad, buffer), nal_framing(pad)) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(payload) = map.lock().unwrap().remove(&time) else { return gst::PadProbeReturn::Ok };
        let Ok(au) = buffer.map_readable().map(|m| m.to_vec()) else { return gst::PadProbeReturn::Ok };
        let with_sei = sei::insert_before_first_slice(&au, framing, codec, &sei::sei_nal(codec, &SEI_UUID, &payload));
        let mut out = gst::Buffer::from_mut_slice(with_sei);
        {
            let out = out.get_mut().expect("new buffer is writable");
            let _ = buffer.copy_into(
                out,
                gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS | gst::BufferCopyFlags::META,
                ..,
            );
        }
        *buffer = out;
        gst::PadProbeReturn::Ok
    });
}

/// Collects faceveil SEI payloads from the input's H.264 or H.265 parser, before decoding.
fn watch_input_sei(dec: &gst::Element, map: SeiMap) {
    let Ok(bin) = dec.clone().dynamic_cast::<gst::Bin>() else { return };
    bin.connect_deep_element_added(move |_, _, element| {
        if element.factory().is_none_or(|f| !matches!(f.name().as_str(), "h264parse" | "h265parse")) {
            return;
        }
        let map = map.clone();
        let Some(src) = element.static_pad("src") else { return };
        src.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
            if let (Some(gst::PadProbeData::Buffer(buffer)), Some((codec, framing))) = (&probe.data, nal_framing(pad))
                && let (Some(time), Ok(data)) = (running_time(pad, buffer), buffer.map_readable())
                && let Some(payload) = sei::find_user_data(&data, framing, codec, &SEI_UUID).pop()
            {
                map.lock().unwrap().insert(time, payload);
            }
            gst::PadProbeReturn::Ok
        });
    });
}

/// The container an output is written in.
struct Container {
    muxer: gst::Element,
    /// MPEG-TS carries a change of resolution midway; MP4 and Matroska (in GStreamer) cannot.
    holds_size_changes: bool,
}

fn container_for(output: &Path) -> Result<Container> {
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let (muxer, holds_size_changes) = match ext.as_str() {
        "mp4" | "m4v" | "mov" => (make("mp4mux")?, false),
        "mkv" => (make("matroskamux")?, false),
        "ts" | "m2ts" => (make("mpegtsmux")?, true),
        _ => bail!("output {} must be .mp4, .mov, .mkv or .ts", output.display()),
    };
    Ok(Container { muxer, holds_size_changes })
}

/// Watches the decoded video's caps: where the container cannot take a new resolution, the
/// change is not let through; the hook records it and the input is ended there.
fn guard_size_changes(pad: &gst::Pad, hook: Arc<Hook>) {
    let first: Mutex<Option<(i32, i32)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER, move |_, probe| {
        let stopped = hook.size_change.lock().unwrap().is_some();
        match &probe.data {
            Some(gst::PadProbeData::Buffer(_)) if stopped => gst::PadProbeReturn::Handled,
            Some(gst::PadProbeData::Event(ev)) => {
                let gst::EventView::Caps(c) = ev.view() else { return gst::PadProbeReturn::Ok };
                let Some(st) = c.caps().structure(0) else { return gst::PadProbeReturn::Ok };
                let size = (st.get::<i32>("width").unwrap_or(0), st.get::<i32>("height").unwrap_or(0));
                let mut first = first.lock().unwrap();
                match *first {
                    None => {
                        *first = Some(size);
                        gst::PadProbeReturn::Ok
                    }
                    Some(f) if f == size => gst::PadProbeReturn::Ok,
                    Some(f) => {
                        if !stopped {
                            *hook.size_change.lock().unwrap() = Some(format!(
                                "the video changes resolution from {}x{} to {}x{} after {} frames, which this container cannot hold (write to .ts to keep the whole stream)",
                                f.0,
                                f.1,
                                size.0,
                                size.1,
                                hook.frames.load(Ordering::SeqCst)
                            ));
                        }
                        gst::PadProbeReturn::Handled
                    }
                }
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

/// x264 at CRF-like constant quality, in a format it can encode at any frame size. Recordings
/// of live inputs keep x264's lookahead too: its live tuning (`zerolatency`, with `ultrafast`)
/// cost 6.3 dB PSNR on the juggler clip at the same quality setting. They use `superfast`, which
/// measured 0.1 dB under `veryfast` there for 30% less encoder time (6 against 8 ms a 720p
/// frame), to keep up with the source.
fn encoder_chain(odd: bool, live: bool) -> Result<Vec<gst::Element>> {
    let convert = make("videoconvert")?;
    // 4:2:0 needs even sizes; odd ones are encoded as 4:4:4 so no pixel is lost.
    let format = if odd { "Y444" } else { "I420" };
    let caps = gst::ElementFactory::make("capsfilter")
        .property("caps", gst::Caps::builder("video/x-raw").field("format", format).build())
        .build()?;
    let enc = make("x264enc")?;
    // Constant quality (x264's CRF) 23, the usual default.
    enc.set_property_from_str("pass", "qual");
    enc.set_property("quantizer", 23u32);
    enc.set_property_from_str("speed-preset", if live { "superfast" } else { "veryfast" });
    // Tuned for fidelity rather than looks: psychovisual tuning spends bits on texture that
    // restoring an anonymized face does not need. Measured on three clips with the same key:
    // restore +0.3 to +1.0 dB face PSNR for 4 to 20% larger files.
    enc.set_property_from_str("psy-tune", "psnr");
    Ok(vec![convert, caps, enc, make("h264parse")?])
}

pub struct Transcode {
    pub frames: u64,
}

/// The sink pads where the video and audio branches take the decoded input.
type Entries = Arc<Mutex<Vec<gst::Pad>>>;

/// Per-frame SEI payloads keyed by presentation time (ns): filled by the frame function and
/// written into the encoded stream, or read from the input's stream before decoding.
pub type SeiMap = Arc<Mutex<HashMap<u64, Vec<u8>>>>;

/// What a transcode carries besides the frames.
#[derive(Default)]
pub struct Carry {
    /// Container comment tag to write.
    pub comment: Option<String>,
    /// Where a faceveil header found in the input's tags is left.
    pub header_tag: HeaderSlot,
    /// Payloads to insert as SEI into the output's H.264 stream.
    pub sei_out: Option<SeiMap>,
    /// Where payloads of faceveil SEI found in the input's H.264 stream are left.
    pub sei_in: Option<SeiMap>,
}

/// Decodes `input`, runs `find` (if given) and then `process` on every video frame, encodes to
/// `output` (through a temporary file, renamed on success), keeping the audio and `comment` as a
/// container tag.
pub fn transcode(input: &Input, output: &Path, find: Option<FindFn>, process: FrameFn, carry: Carry) -> Result<Transcode> {
    let Carry { comment, header_tag, sei_out, sei_in } = carry;
    init()?;
    let Input::Stream(source) = input else { bail!("not a video input") };
    if let Some(local) = input.local_path()
        && std::fs::canonicalize(local).ok() == std::fs::canonicalize(output).ok()
    {
        bail!("refusing to overwrite the input {}", local.display());
    }
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let pipeline = gst::Pipeline::new();
    let dec = add_source(&pipeline, source)?;
    let Container { muxer: mux, holds_size_changes } = container_for(output)?;
    if let (Some(text), Ok(setter)) = (&comment, mux.clone().dynamic_cast::<gst::TagSetter>()) {
        setter.add_tag::<gst::tags::Comment>(&text.as_str(), gst::TagMergeMode::Replace);
    }
    let sink = gst::ElementFactory::make("filesink").property("location", tmp.to_str().context("non-UTF-8 path")?).build()?;
    pipeline.add_many([&mux, &sink])?;
    mux.link(&sink)?;
    let hook = Hook::new(find, process, header_tag);
    if let Some(map) = sei_in {
        watch_input_sei(&dec, map);
    }
    let live = input.is_live();
    let have_video = Arc::new(Mutex::new(false));
    let link_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::new(Mutex::new(None));
    let entries = Entries::default();
    {
        let (pipeline_weak, mux, hook, have_video, link_error, entries) =
            (pipeline.downgrade(), mux.clone(), hook.clone(), have_video.clone(), link_error.clone(), entries.clone());
        let sei_out = sei_out.clone();
        dec.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(s) = caps.structure(0) else { return };
            let result = (|| -> Result<()> {
                if s.name().starts_with("video/") && !*have_video.lock().unwrap() {
                    *have_video.lock().unwrap() = true;
                    let odd = s.get::<i32>("width").unwrap_or(0) % 2 == 1 || s.get::<i32>("height").unwrap_or(0) % 2 == 1;
                    let caps = gst::Caps::builder("video/x-raw").field("format", "I420").build();
                    let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build()?;
                    if !holds_size_changes {
                        guard_size_changes(&filter.static_pad("src").expect("capsfilter has src"), hook.clone());
                    }
                    // Each stage is an identity with a probe and a queue after it, so that finding
                    // faces, changing them and encoding run side by side on successive frames.
                    let mut chain = vec![make("queue")?, make("videoconvert")?, filter];
                    let find_el = hook.find.as_ref().map(|_| make("identity")).transpose()?;
                    if let Some(el) = &find_el {
                        chain.extend([el.clone(), stage_queue()?]);
                    }
                    let process_el = make("identity")?;
                    chain.extend([process_el.clone(), stage_queue()?]);
                    chain.extend(encoder_chain(odd, live)?);
                    add_chain(&pipeline, &chain)?;
                    chain.last().expect("non-empty").link(&mux)?;
                    if let Some(el) = &find_el {
                        install_probe(&el.static_pad("src").expect("identity has src"), hook.clone(), Stage::Find);
                    }
                    install_probe(&process_el.static_pad("src").expect("identity has src"), hook.clone(), Stage::Process);
                    if let Some(map) = &sei_out {
                        insert_sei(&chain.last().expect("non-empty").static_pad("src").expect("h264parse has src"), map.clone());
                    }
                    let entry = chain[0].static_pad("sink").expect("queue has sink");
                    pad.link(&entry)?;
                    entries.lock().unwrap().push(entry);
                    if live {
                        let (w, h) = (s.get::<i32>("width").unwrap_or(0), s.get::<i32>("height").unwrap_or(0));
                        eprintln!("faceveil: source connected ({w}x{h})");
                    }
                } else if s.name().starts_with("audio/") {
                    let chain = vec![make("queue")?, make("audioconvert")?, make("audioresample")?, make("avenc_aac")?];
                    add_chain(&pipeline, &chain)?;
                    chain.last().expect("non-empty").link(&mux)?;
                    let entry = chain[0].static_pad("sink").expect("queue has sink");
                    pad.link(&entry)?;
                    entries.lock().unwrap().push(entry);
                } else {
                    let fake = make("fakesink")?;
                    add_chain(&pipeline, std::slice::from_ref(&fake))?;
                    pad.link(&fake.static_pad("sink").expect("fakesink has sink"))?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                link_error.lock().unwrap().get_or_insert(e);
            }
        });
    }
    let bar = progress::bar(0, "frames");
    let result = run_to_eos(&pipeline, &dec, &entries, &hook, &bar);
    let duration = pipeline.query_duration::<gst::ClockTime>().map(|d| d.nseconds());
    let _ = pipeline.set_state(gst::State::Null);
    bar.finish_and_clear();
    let frames = hook.frames.load(Ordering::SeqCst);
    let failure = hook.error.lock().unwrap().take().or_else(|| link_error.lock().unwrap().take());
    let outcome = match (failure, result) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) if frames == 0 && super::stop::requested() => {
            Err(anyhow!("stopped before the input delivered a video frame"))
        }
        (None, Ok(())) if !*have_video.lock().unwrap() => Err(anyhow!("the input has no video stream")),
        (None, Ok(())) if frames == 0 => Err(anyhow!("the input has no decodable video frames")),
        (None, Ok(())) => Ok(()),
    };
    if let Err(e) = outcome {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, output).with_context(|| format!("cannot write {}", output.display()))?;
    if let Some(change) = hook.size_change.lock().unwrap().take() {
        bail!("{change}: the {frames} frames before it were written to {}", output.display());
    }
    // A file that ends before its declared duration lost frames; what decoded is kept.
    let end = hook.end_ns.load(Ordering::SeqCst);
    if let Some(d) = duration.filter(|d| !live && !super::stop::requested() && end + 200_000_000 < *d) {
        bail!(
            "the input ends early (truncated or damaged): {frames} frames up to {:.2} s of {:.2} s were written to {}",
            end as f64 / 1e9,
            d as f64 / 1e9,
            output.display()
        );
    }
    Ok(Transcode { frames })
}

fn run_to_eos(
    pipeline: &gst::Pipeline,
    input: &gst::Element,
    entries: &Entries,
    hook: &Hook,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    pipeline.set_state(gst::State::Playing).context("cannot start the pipeline")?;
    let bus = pipeline.bus().expect("pipelines have a bus");
    let started = std::time::Instant::now();
    // How many of the entries have been sent the end: branches may still be linked after it.
    let mut ended = 0;
    let mut stopping = false;
    loop {
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(250));
        stopping |= super::stop::requested() || hook.size_change.lock().unwrap().is_some();
        if stopping {
            let entries = entries.lock().unwrap();
            if entries.is_empty() {
                // Stopped while still connecting: there is nothing to finish.
                return Ok(());
            }
            // The end goes in where our branches begin, not into the input: an RTSP source
            // passes an EOS through its jitter buffer and depayloader, which may hold it back
            // for as long as the server sends nothing. The input then sees EOS on its pushes.
            for entry in &entries[ended..] {
                entry.send_event(gst::event::Eos::new());
            }
            ended = entries.len();
        }
        if bar.length() == Some(0)
            && let Some(d) = pipeline.query_duration::<gst::ClockTime>()
        {
            bar.set_length(d.mseconds());
        }
        if let Some(pos) = pipeline.query_position::<gst::ClockTime>() {
            bar.set_position(pos.mseconds());
        }
        let frames = hook.frames.load(Ordering::SeqCst);
        bar.set_message(format!("{frames} frames, {:.1} fps", frames as f64 / started.elapsed().as_secs_f64().max(1e-3)));
        let Some(msg) = msg else { continue };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            // Once the input has been cut, its complaints about that are expected.
            gst::MessageView::Error(_) if stopping && msg.src().is_some_and(|s| s.has_as_ancestor(input)) => {}
            gst::MessageView::Error(err) => {
                let src = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                let debug = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                bail!("{} [{}]{}", err.error(), src, debug.lines().next().unwrap_or_default());
            }
            _ => {}
        }
    }
}

pub fn anonymize(
    input: &Input,
    output: &Path,
    mut finder: FaceFinder,
    mut anonymizer: Anonymizer,
    boxes: Option<&Path>,
) -> Result<()> {
    let header = anonymizer.header().cloned();
    let side_path = sidecar::path_for(output);
    let mut side_tmp = side_path.as_os_str().to_owned();
    side_tmp.push(".partial");
    let side_tmp = PathBuf::from(side_tmp);
    let mut writer = header.as_ref().map(|h| SidecarWriter::create(&side_tmp, h)).transpose()?;
    let boxes_out: Arc<Mutex<Vec<serde_json::Value>>> = Arc::new(Mutex::new(Vec::new()));
    let collect_boxes = boxes.is_some();
    let boxes_in = boxes_out.clone();
    let writer_slot: Arc<Mutex<Option<SidecarWriter>>> = Arc::new(Mutex::new(writer.take()));
    let writer_in = writer_slot.clone();
    let sei_out = SeiMap::default();
    let sei_fill = sei_out.clone();
    let find: FindFn = Box::new(move |frame| Ok(finder.find(frame)?.to_vec()));
    let process: FrameFn = Box::new(move |frame, n, pts, tracks| {
        let outcome = anonymizer.process(frame, tracks, pts)?;
        debug_assert_eq!(outcome.record.frame, n);
        if let (Some(h), Some(pts)) = (anonymizer.header(), pts) {
            sei_fill.lock().unwrap().insert(pts, SeiPayload::for_frame(&outcome.record, h).encode());
        }
        if let Some(w) = writer_in.lock().unwrap().as_mut() {
            w.write(&outcome.record)?;
        }
        if collect_boxes {
            let faces: Vec<progress::BoxJson> = outcome.tracks.iter().map(progress::BoxJson::from).collect();
            boxes_in.lock().unwrap().push(serde_json::json!({ "frame": n, "pts": pts, "faces": faces }));
        }
        Ok(())
    });
    let comment = header.as_ref().map(streamdata::header_tag);
    let sei_out = header.is_some().then_some(sei_out);
    let result = transcode(input, output, Some(find), process, Carry { comment, sei_out, ..Carry::default() });
    let writer = writer_slot.lock().unwrap().take();
    let t = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&side_tmp);
            return Err(e);
        }
    };
    if let Some(w) = writer {
        w.finish()?;
        std::fs::rename(&side_tmp, &side_path)?;
    }
    if let Some(b) = boxes {
        write_atomically(b, serde_json::to_string_pretty(&*boxes_out.lock().unwrap())?.as_bytes())?;
    }
    eprintln!(
        "{} frames anonymized -> {}{}",
        t.frames,
        output.display(),
        if header.is_some() { format!(" (restore data in {})", side_path.display()) } else { String::new() }
    );
    Ok(())
}

pub fn restore(
    input: &Input,
    output: &Path,
    sidecar: Option<Sidecar>,
    header_text: Option<&str>,
    restorer: impl Fn(&StreamHeader) -> Result<Restorer> + Send + 'static,
) -> Result<()> {
    let header = match (&sidecar, header_text) {
        (_, Some(text)) => Some(StreamHeader::decode(text)?),
        (Some(s), None) => Some(s.header.clone()),
        (None, None) => None,
    };
    // Without a sidecar or --header, the header comes with the stream: in the SEI of every
    // HEADER_EVERY-th frame, or in the container's comment tag (seen before the first frame).
    let mut current = header.map(|h| restorer(&h).map(|r| (h, r))).transpose()?;
    let slot = HeaderSlot::default();
    let tag = slot.clone();
    let sei_in = SeiMap::default();
    let sei_seen = sei_in.clone();
    let passed = Arc::new(AtomicU64::new(0));
    let passing = passed.clone();
    let process: FrameFn = Box::new(move |frame, n, pts, _| {
        // The stream's own SEI first, then the sidecar, then detection.
        let sei = pts.and_then(|p| sei_seen.lock().unwrap().remove(&p)).map(|bytes| SeiPayload::decode(&bytes)).transpose()?;
        let sei = sei.unwrap_or_default();
        let mut found = sei.header;
        if found.is_none()
            && current.is_none()
            && let Some(text) = tag.lock().unwrap().clone()
        {
            found = Some(StreamHeader::decode(&text)?);
        }
        // A header that differs from the one in use starts another stream (a splice, a restarted
        // source): its key is derived afresh.
        if let Some(h) = found
            && current.as_ref().is_none_or(|(c, _)| *c != h)
        {
            let r = restorer(&h)?;
            current = Some((h, r));
        }
        let Some((_, r)) = current.as_mut() else {
            // Joined midway: until a header arrives, frames pass as they are (anonymized).
            passing.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        };
        let faces = sei
            .record
            .map(|rec| rec.faces)
            .or_else(|| sidecar.as_ref().and_then(|s| s.record(n, pts)).map(|rec| rec.faces.clone()));
        r.process(frame, faces.as_deref())?;
        Ok(())
    });
    let t = transcode(input, output, None, process, Carry { header_tag: slot, sei_in: Some(sei_in), ..Carry::default() })?;
    let passed = passed.load(Ordering::SeqCst);
    if passed == t.frames {
        let _ = std::fs::remove_file(output);
        bail!("no faceveil header: none in the stream's SEI or tags, no sidecar beside the input, no --sidecar/--header");
    }
    if passed > 0 {
        eprintln!("faceveil: warning: the first {passed} frames came before the stream's header and passed unrestored");
    }
    eprintln!("{} frames restored -> {}", t.frames, output.display());
    Ok(())
}
