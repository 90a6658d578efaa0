//! Video files, network streams and cameras through GStreamer: decode, run every frame through
//! the plugin's elements (`faceveildetect ! queue ! faceveil` to anonymize, `faceunveil` to
//! restore: the one frame path that gst-launch pipelines and applications use too), re-encode
//! with x264 and mux with the audio kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use faceveil::config::Config;
use faceveil::faces::effects::Mode;
use faceveil::model::Direction;
use faceveil::pipeline::WarmModels;
use faceveil::secrets::{Signer, SigningKey};
use faceveil::stream::sidecar;
use faceveil::timing::StageTimes;
use gst::prelude::*;
use gstfaceveil::{cutmp4, outofband, streamdata};
use zeroize::Zeroizing;

use crate::cli::credentials::access;
use crate::cli::credentials::login;
use crate::cli::media::animation;
use crate::cli::media::checkpoint::CheckpointFile;
use crate::cli::media::colour;
use crate::cli::media::containers::{MuxerKind, muxer_kind};
use crate::cli::media::elements::{init, make};
use crate::cli::media::encoder::{DEFAULT_CRF, Encoder, FACES_FINER, Quality};
use crate::cli::media::images::write_atomically;
use crate::cli::media::input::{self, Input, StreamSource};
use crate::cli::media::mp4;
use crate::cli::media::writes;
use crate::cli::progress;

/// Frames a queue between two processing stages holds.
const STAGE_QUEUE_FRAMES: u32 = 4;

/// Turns each picture upright as its container's orientation tag says (phones store portrait
/// video sideways and tag it), and drops the tag: the detector and the model only know upright
/// faces, and the output is written upright, as players would show the input. Untagged video
/// passes through untouched.
pub fn upright() -> Result<gst::Element> {
    let flip = make("videoflip")?;
    flip.set_property_from_str("video-direction", "auto");
    // videoflip (GStreamer 1.22) turns the pictures but sends the tag on as it came, so the
    // elements after it warned that upright pictures were stored turned (16 times on a phone
    // clip), and a muxer that writes orientation would have turned them again.
    let src = flip.static_pad("src").context("videoflip has no src pad")?;
    src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, probe| {
        if let Some(gst::PadProbeData::Event(event)) = &mut probe.data
            && let gst::EventView::Tag(tag) = event.view()
            && tag.tag().get::<gst::tags::ImageOrientation>().is_some()
        {
            let mut tags = tag.tag_owned();
            tags.make_mut().remove::<gst::tags::ImageOrientation>();
            *event = gst::event::Tag::builder(tags).seqnum(event.seqnum()).build();
        }
        gst::PadProbeReturn::Ok
    });
    Ok(flip)
}

/// The source part of a pipeline; returns the element whose dynamic pads carry decoded streams.
pub fn add_source(pipeline: &gst::Pipeline, source: &StreamSource) -> Result<gst::Element> {
    match source {
        StreamSource::File(path) => {
            match input::picture(path) {
                Some(input::Picture::Heif) => bail!("{}", input::heif_unread(path)),
                Some(picture) => return animation::add_source(pipeline, path, picture),
                None => {}
            }
            let abs = std::fs::canonicalize(path).with_context(|| format!("cannot open {}", path.display()))?;
            let uri = gst::glib::filename_to_uri(&abs, None).context("cannot make a URI of the input path")?;
            let mend = Mutex::new(say_if_cut_short(path)?);
            let dec = gst::ElementFactory::make("uridecodebin").property("uri", uri.as_str()).build()?;
            dec.connect("source-setup", false, move |args| {
                let mend = mend.lock().unwrap().take()?;
                mend.give_to(&args.get(1)?.get::<gst::Element>().ok()?);
                None
            });
            colour::mend(&dec);
            mp4::every_picture_of_an_unfinished_file(&dec);
            pipeline.add(&dec)?;
            Ok(dec)
        }
        StreamSource::Uri(remote) => {
            let dec = gst::ElementFactory::make("uridecodebin").property("uri", remote.url.as_str()).build()?;
            let reach = remote.reach.clone();
            dec.connect("source-setup", false, move |args| {
                let src = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
                if let Some(protocols) = reach.transport.protocols()
                    && src.find_property("protocols").is_some()
                {
                    src.set_property_from_str("protocols", protocols);
                }
                access::explain_refused_certificates(&src);
                let given = [reach.login.as_ref().map(|l| l.give_to(&src)), reach.authorities.as_ref().map(|a| a.give_to(&src))];
                if let Some(Err(e)) = given.into_iter().flatten().find(Result::is_err) {
                    src.post_error_message(gst::error_msg!(gst::ResourceError::Settings, ["{}", e]));
                }
                None
            });
            skip_unrecovered_pictures(&dec);
            colour::mend(&dec);
            pipeline.add(&dec)?;
            Ok(dec)
        }
        StreamSource::Camera(device) => {
            let src = gst::ElementFactory::make("v4l2src").property("device", device.as_str()).build()?;
            let dec = make("decodebin")?;
            skip_unrecovered_pictures(&dec);
            colour::mend(&dec);
            pipeline.add_many([&src, &dec])?;
            src.link(&dec)?;
            Ok(dec)
        }
    }
}

/// Links the first video pad `decodebin` adds to `target`, with `processing` (a capsfilter
/// before the elements) set to the raw format that stream is processed in (`full_range`: how,
/// where it is full range).
pub fn link_first_video(decodebin: &gst::Element, target: gst::Pad, processing: gst::Element, full_range: colour::FullRange) {
    decodebin.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps();
        let is_video = caps.as_ref().and_then(|c| c.structure(0)).is_some_and(|s| s.name().starts_with("video/"));
        if is_video && !target.is_linked() {
            processing.set_property("caps", colour::processing_caps(caps.as_deref(), full_range));
            let _ = pad.link(&target);
        }
    });
}

/// A live stream joined midway starts on pictures whose references were never received; the
/// decoder would hand them out gray until a keyframe or an intra refresh completes (seconds on a
/// camera that keys seldom). They are dropped instead, so the output starts at the first whole
/// picture.
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

/// The command's settings, handed to the elements as their properties (the password through
/// the write-only one: never through argv or a launch line).
pub struct Settings {
    pub config: Config,
    /// The --attributes text, which the config holds parsed.
    pub attributes: String,
    pub password: Option<Zeroizing<String>>,
    pub sealing: Sealing,
}

/// Where a restore finds what the anonymized video did not carry itself, and how it was coded.
#[derive(Clone, Copy, Default)]
pub struct Source<'a> {
    /// The sidecar, where the command was given one or found it beside the input.
    pub sidecar: Option<&'a Path>,
    /// The stream header, given on the command line.
    pub header: Option<&'a str>,
    /// The video never went through a lossy codec: `faceunveil lossless-input`.
    pub lossless: bool,
    /// A camera or a stream from the network, which may be joined at any frame.
    pub live: bool,
}

/// How many frames of a file a restore decodes without a faceveil header before it stops: a
/// file's first frame carries the header and every `HEADER_EVERY`-th after it, so a file cut
/// anywhere has one within that many; one without any (a blur output, a stranger's video) is
/// said so at once instead of after every frame was decoded and encoded again.
const HEADER_WAIT_FRAMES: u32 = 2 * faceveil::stream::HEADER_EVERY as u32;

/// The first stream header a video file's own stream data carries within [`HEADER_WAIT_FRAMES`]
/// coded pictures (read without decoding them), for a restore that has neither a sidecar nor a
/// header to start from: a file cut or joined away from a header would otherwise pass the
/// pictures before the next one unrestored (a cut of the sample at 2.5 s: 15).
pub fn header_in_file(path: &Path) -> Option<faceveil::stream::header::StreamHeader> {
    streamdata::header_in_stream(&file_uri(path).ok()?, HEADER_WAIT_FRAMES)
}

/// Each coded picture of a video file with its faceveil SEI payload, and what the container's
/// tags held of faceveil's: see [`streamdata::each_payload`].
pub fn each_payload_in_file(
    path: &Path,
    visit: impl FnMut(streamdata::CodedPicture<'_>) -> bool,
) -> Result<outofband::ContainerTags> {
    say_if_cut_short(path)?;
    streamdata::each_payload(&file_uri(path)?, None, visit).with_context(|| format!("{}", path.display()))
}

/// Says that `path` is an MP4 cut short after it was finished, read from its fragments
/// ([`cutmp4`]), and gives back what mends it for its source; fails where it is one that nothing
/// of can be read.
fn say_if_cut_short(path: &Path) -> Result<Option<cutmp4::Mend>> {
    match cutmp4::of_file(path) {
        cutmp4::Cut::Whole => Ok(None),
        cutmp4::Cut::Mendable(mend) => {
            eprintln!(
                "faceveil: note: {} ends before its index (cut short after it was finished: a copy or download that stopped?): it is read from the one-second fragments it was written in, up to the last whole one",
                path.display()
            );
            Ok(Some(mend))
        }
        cutmp4::Cut::Lost => bail!(
            "{} is an MP4 cut short before its index (`moov`, which says where every picture is and which a plain MP4 keeps at its end): nothing of it can be read (an MP4 that faceveil wrote since 2026-12-06 is read up to the cut: it writes them in fragments)",
            path.display()
        ),
    }
}

fn file_uri(path: &Path) -> Result<String> {
    init()?;
    let abs = std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(gst::glib::filename_to_uri(&abs, None).context("cannot make a URI of the path")?.to_string())
}

/// Sealed faces: who they are sealed to (faceveil) and who opens them (faceunveil).
#[derive(Default)]
pub struct Sealing {
    /// age recipients, comma-separated, and how many of them must unseal together.
    pub recipients: Option<String>,
    pub threshold: u32,
    /// Seal bit-exact (PNG) instead of as a face video per track.
    pub lossless: bool,
    /// x264's quantizer for the face videos, where not the element's default.
    pub quantizer: Option<u32>,
    /// Also seal to the password.
    pub to_password: bool,
    /// Identity files, comma-separated, and the passphrase protected ones need.
    pub identity: Option<String>,
    pub passphrase: Option<Zeroizing<String>>,
    /// Revocation files, comma-separated: a restore refuses what their keys signed.
    pub revoked: Option<String>,
    /// The signing key, opened once: it signs the header and each record in `faceveil`, and
    /// each coded picture after the encoder, as that header promises (`sign-pictures`).
    pub signing: Option<SigningKey>,
}

impl Sealing {
    /// How an anonymization with these seals takes a full-range input: faces sealed in YUV open
    /// only in YUV ([`colour::FullRange`]).
    pub fn full_range(&self) -> colour::FullRange {
        colour::FullRange::for_anonymizing(self.recipients.is_some() || self.to_password)
    }
}

/// Sets a property, refusing a number outside the element's range (glib panics on those).
fn set(element: &gst::Element, name: &str, value: impl Into<gst::glib::Value>) -> Result<()> {
    let value = value.into();
    let pspec = element.find_property(name).with_context(|| format!("{} has no property {name}", element.name()))?;
    let range = if let (Some(p), Ok(v)) = (pspec.downcast_ref::<gst::glib::ParamSpecUInt>(), value.get::<u32>()) {
        (!(p.minimum()..=p.maximum()).contains(&v)).then(|| (p.minimum().to_string(), p.maximum().to_string()))
    } else if let (Some(p), Ok(v)) = (pspec.downcast_ref::<gst::glib::ParamSpecFloat>(), value.get::<f32>()) {
        (!(p.minimum()..=p.maximum()).contains(&v)).then(|| (p.minimum().to_string(), p.maximum().to_string()))
    } else {
        None
    };
    if let Some((min, max)) = range {
        bail!("--{name} must be between {min} and {max}");
    }
    element.set_property_from_value(name, &value);
    Ok(())
}

/// Sets an enum property by its nick.
fn set_enum(element: &gst::Element, name: &str, nick: &str) -> Result<()> {
    let pspec = element.find_property(name).with_context(|| format!("{} has no property {name}", element.name()))?;
    let class = gst::glib::EnumClass::with_type(pspec.value_type()).with_context(|| format!("{name} is not an enum"))?;
    let value = class.to_value_by_nick(nick).with_context(|| format!("{} does not know {name} {nick}", element.name()))?;
    set(element, name, value)
}

/// One of the plugin's elements (registering them first, once).
fn element(factory: &str) -> Result<gst::Element> {
    init()?;
    gst::ElementFactory::make(factory).build().with_context(|| format!("the {factory} element is not registered"))
}

impl Settings {
    /// Whether the output's surrogates are ones a password restore undoes (sdn with a password;
    /// not one-way effects, nor surrogates keyed at random for recipients alone): their faces
    /// are then coded finer, since the restore multiplies the codec's error there.
    pub fn restores_surrogates(&self) -> bool {
        self.config.mode == Mode::Sdn && self.password.is_some()
    }

    /// How an anonymized video is coded: surrogates a password restore undoes get the bits it
    /// needs; one-way effects, and surrogates keyed at random for recipients alone, do not.
    pub fn anonymized_quality(&self) -> Quality {
        if self.restores_surrogates() { Quality::CrfFacesFiner(DEFAULT_CRF, FACES_FINER) } else { Quality::Crf(DEFAULT_CRF) }
    }

    /// Detection: faceveildetect's job, and faceveil's and faceunveil's where no faces come
    /// from upstream.
    fn detection(&self, element: &gst::Element) -> Result<()> {
        let c = &self.config;
        set_enum(element, "detector", c.detector.kind.name())?;
        set_enum(element, "provider", c.runtime.provider.name())?;
        set(element, "threads", u32::try_from(c.runtime.intra_threads).unwrap_or(u32::MAX))?;
        set(element, "threshold", c.detector.threshold)?;
        set(element, "min-face-size", c.detector.min_face_size.round() as u32)?;
        set(element, "detect-interval", c.detect_every)?;
        set(element, "detect-size", u32::try_from(c.detector.max_side).unwrap_or(u32::MAX))
    }

    /// The model, its key and its blending: faceveil's and faceunveil's.
    fn model(&self, element: &gst::Element) -> Result<()> {
        let c = &self.config;
        set(element, "model", c.model.to_str().context("the model path is not UTF-8")?)?;
        set(element, "variant", c.variant.as_deref().unwrap_or_default())?;
        set(element, "mask-scale", c.mask_scale)?;
        set(element, "attributes", self.attributes.as_str())?;
        if let Some(password) = &self.password {
            set(element, "password", password.as_str())?;
        }
        Ok(())
    }

    /// `faceveildetect ! queue ! faceveil`: detecting a frame overlaps anonymizing the one before.
    /// faceveil writes the sidecar, if given, and the stream data (SEI metas, header tag).
    pub fn anonymizer(&self, sidecar: Option<&Path>) -> Result<Vec<gst::Element>> {
        let detect = element("faceveildetect")?;
        self.detection(&detect)?;
        let veil = element("faceveil")?;
        self.detection(&veil)?;
        self.model(&veil)?;
        set_enum(&veil, "mode", self.config.mode.name())?;
        set_enum(&veil, "keying", if self.config.keying.is_stream() { "stream" } else { "track" })?;
        if let Some(path) = sidecar {
            set(&veil, "sidecar", path.to_str().context("the sidecar path is not UTF-8")?)?;
        }
        if let Some(recipients) = &self.sealing.recipients {
            set(&veil, "recipients", recipients.as_str())?;
            set(&veil, "recipients-threshold", self.sealing.threshold)?;
        }
        set(&veil, "seal-password", self.sealing.to_password)?;
        set(&veil, "sealed-lossless", self.sealing.lossless)?;
        if let Some(quantizer) = self.sealing.quantizer {
            set(&veil, "sealed-quantizer", quantizer)?;
        }
        if let Some(key) = &self.sealing.signing {
            let veil = veil.downcast_ref::<gstfaceveil::FaceVeil>().context("the faceveil element is not faceveil's")?;
            veil.set_signing_key(key.clone());
        }
        set(&veil, "sign-pictures", self.sealing.signing.is_some())?;
        Ok(vec![detect, stage_queue()?, veil])
    }

    /// `faceunveil`, with the sidecar and the header where the command was given them; otherwise
    /// it finds the header in the stream (SEI, tag) and adopts a new one wherever it changes.
    pub fn restorer(&self, source: Source) -> Result<Vec<gst::Element>> {
        let unveil = element("faceunveil")?;
        self.detection(&unveil)?;
        self.model(&unveil)?;
        if let Some(path) = source.sidecar {
            set(&unveil, "sidecar", path.to_str().context("the sidecar path is not UTF-8")?)?;
        }
        if let Some(text) = source.header {
            set(&unveil, "header", text)?;
        }
        set(&unveil, "lossless-input", source.lossless)?;
        if !source.live {
            set(&unveil, "header-wait", HEADER_WAIT_FRAMES)?;
        }
        if let Some(identity) = &self.sealing.identity {
            set(&unveil, "identity", identity.as_str())?;
        }
        if let Some(passphrase) = &self.sealing.passphrase {
            set(&unveil, "identity-passphrase", passphrase.as_str())?;
        }
        if let Some(signer) = &self.config.signer {
            set(&unveil, "signer", signer.to_string())?;
        }
        if let Some(revoked) = &self.sealing.revoked {
            set(&unveil, "revoked", revoked.as_str())?;
        }
        Ok(vec![unveil])
    }
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

/// What a transcode runs the decoded video through, and which way faceveil's SEI crosses the
/// codec.
pub struct Stage {
    /// Linked in this order between the decoded frames and the encoder.
    pub elements: Vec<gst::Element>,
    pub sei: Sei,
    /// Signs each coded picture where `sei` writes ([`Sealing::signing`]).
    pub pictures: Option<SigningKey>,
    /// Where `sei` reads: the signer a restore requires, whose signed pictures are checked
    /// before they are decoded.
    pub signer: Option<Signer>,
    pub quality: Quality,
    /// Whether the input's audio is written too.
    pub audio: bool,
    /// How a full-range input reaches the elements.
    pub full_range: colour::FullRange,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sei {
    /// The frames' SEI metas (from faceveil) are written into the encoded stream.
    Write,
    /// The input's SEI is put back on the decoded frames (for faceunveil).
    Read,
    /// Neither: a baseline without faceveil.
    Neither,
}

/// What the probes count while a transcode runs.
#[derive(Default)]
struct Progress {
    frames: AtomicU64,
    /// End (running time + duration) of the latest frame seen, in ns.
    end_ns: AtomicU64,
    /// End of the latest buffer the input gave on any of its streams, in ns: a file whose audio
    /// runs on after its last picture is whole, though its video ends before its duration.
    input_end_ns: AtomicU64,
    /// Set when the video changed resolution and the container cannot hold that: the input is
    /// then ended early, as with Ctrl-C, and what came before is kept.
    size_change: Mutex<Option<String>>,
    /// Set when a live source sent no frame for its stall timeout ([`StreamSource::stall`]):
    /// ended likewise.
    stalled: AtomicBool,
    /// Set when an RTSP server closed the connection without ending the stream
    /// ([`input::Closing`]) and no frame came after it: ended likewise.
    closed: AtomicBool,
    /// Why a live source failed after it had sent frames: ended likewise, its frames kept.
    failed: Mutex<Option<String>>,
    /// Why writing a live recording failed midway (a full disk): it stopped there, and what
    /// was written is kept as it is.
    unwritten: Mutex<Option<String>>,
    /// Set when an RTSP server said that its stream ends (an RTCP BYE): a connection it closes
    /// after that is closed at the end, not midway.
    said_bye: AtomicBool,
}

/// Counts the frames leaving the stage.
fn count_frames(pad: &gst::Pad, progress: Arc<Progress>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data {
            let start = streamdata::running_time(pad, buffer).unwrap_or(0);
            progress.end_ns.fetch_max(start + buffer.duration().map_or(0, |d| d.nseconds()), Ordering::SeqCst);
            progress.frames.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Follows how far the input's stream on `pad` reaches (video, audio or other).
fn follow_input_end(pad: &gst::Pad, progress: Arc<Progress>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data
            && let Some(start) = streamdata::running_time(pad, buffer)
        {
            progress.input_end_ns.fetch_max(start + buffer.duration().map_or(0, |d| d.nseconds()), Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Notes in `progress` an RTSP server's word that its stream ends (an RTCP BYE, which rtspsrc
/// turns into the end of its pads); `dec` is the uridecodebin of a URI input. Over TCP the BYE
/// is read from the connection before the connection's close, so it is noted before rtspsrc
/// warns of the close.
fn follow_goodbye(dec: &gst::Element, progress: Arc<Progress>) {
    dec.connect("source-setup", false, move |args| {
        let src = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
        if src.factory().is_some_and(|f| f.name() == "rtspsrc") {
            let progress = progress.clone();
            src.connect("new-manager", false, move |args| {
                let manager = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
                let progress = progress.clone();
                manager.connect("on-bye-ssrc", false, move |_| {
                    progress.said_bye.store(true, Ordering::SeqCst);
                    None
                });
                None
            });
        }
        None
    });
}

/// The container an output is written in.
struct Container {
    muxer: gst::Element,
    /// MPEG-TS carries a change of resolution midway; MP4 and Matroska (in GStreamer) cannot.
    holds_size_changes: bool,
}

/// How long each fragment of an MP4 being written is (ms), see [`container_for`].
const MP4_FRAGMENT_MS: u32 = 1000;

/// The muxer for `output`, by its extension. An MP4 is written in fragments of
/// [`MP4_FRAGMENT_MS`] and made a plain MP4 again when the stream ends: a plain MP4 says where
/// its frames are only at its end, so a writer killed or cut off from power left hours of a
/// camera, or of a long file's anonymization, unreadable (and a signed one without a checkpoint
/// that could show a cut), where fragments keep all but the last second or so.
fn container_for(output: &Path) -> Result<Container> {
    let (muxer, holds_size_changes) = match muxer_kind(output) {
        Some(MuxerKind::Mp4) => {
            let mux = make("mp4mux")?;
            mux.set_property("fragment-duration", MP4_FRAGMENT_MS);
            mux.set_property_from_str("fragment-mode", "first-moov-then-finalise");
            (mux, false)
        }
        Some(MuxerKind::Matroska) => (make("matroskamux")?, false),
        Some(MuxerKind::MpegTs) => (make("mpegtsmux")?, true),
        None => bail!(
            "output {} must be .mp4, .mov, .mkv or .ts: the input is a video (an animated GIF or WebP is one too)",
            output.display()
        ),
    };
    Ok(Container { muxer, holds_size_changes })
}

/// Puts `chain` (a queue first) between the decoder's `pad` and the muxer, and records its entry,
/// where a stop sends the end. An anonymized output's chain lets only faceveil's tags through.
fn into_muxer(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    chain: &[gst::Element],
    mux: &gst::Element,
    entries: &Entries,
    sei: Sei,
) -> Result<()> {
    let last = chain.last().context("an empty chain")?;
    if sei == Sei::Write {
        faceveil_tags_only(&last.static_pad("src").context("the chain's last element has no src pad")?);
    }
    add_chain(pipeline, chain)?;
    last.link(mux)?;
    let entry = chain[0].static_pad("sink").expect("queue has sink");
    pad.link(&entry)?;
    entries.lock().unwrap().push(entry);
    Ok(())
}

/// Lets only faceveil's own header comment through to the muxer of an anonymized file: the
/// input's tags would be written into it otherwise, and a title that names the people in a
/// clip, or a phone's position, make and model, say who and where as a face does. Each tag event
/// is emptied of all else rather than dropped: a tag event is sticky, and a pad sends a dropped
/// one again before every buffer.
fn faceveil_tags_only(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, probe| {
        let Some(gst::PadProbeData::Event(event)) = &mut probe.data else { return gst::PadProbeReturn::Ok };
        let gst::EventView::Tag(tag) = event.view() else { return gst::PadProbeReturn::Ok };
        let ours = tag
            .tag()
            .iter_tag::<gst::tags::Comment>()
            .map(|c| c.get().to_owned())
            .find(|c| outofband::header_from_tag(c).is_some());
        let mut tags = gst::TagList::new();
        let list = tags.get_mut().expect("a new tag list is writable");
        if let Some(comment) = ours {
            list.add::<gst::tags::Comment>(&comment.as_str(), gst::TagMergeMode::Replace);
        }
        list.set_scope(tag.tag().scope());
        *event = gst::event::Tag::builder(tags).seqnum(event.seqnum()).build();
        gst::PadProbeReturn::Ok
    });
}

/// Watches the decoded video's caps: where the container cannot take a new resolution, the
/// change is not let through; it is recorded and the input is ended there.
fn guard_size_changes(pad: &gst::Pad, progress: Arc<Progress>) {
    let first: Mutex<Option<(i32, i32)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER, move |_, probe| {
        let stopped = progress.size_change.lock().unwrap().is_some();
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
                            // How many frames came before is said where the run ends: frames
                            // still on their way count too.
                            *progress.size_change.lock().unwrap() = Some(format!(
                                "the video changes resolution from {}x{} to {}x{}, which this container cannot hold (write to .ts to keep the whole stream)",
                                f.0, f.1, size.0, size.1
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

pub struct Transcode {
    pub frames: u64,
    /// Where the stage's time went (for `faceveil bench`).
    pub times: StageTimes,
    /// Why the output holds only a part of the input (cut short, a change of size it cannot
    /// hold, Ctrl-C or SIGTERM), where it does: the part is kept, with what belongs to it (the
    /// sidecar), and the run then ends in this error.
    pub incomplete: Option<String>,
}

impl Transcode {
    /// The run, or its [`Self::incomplete`] as the error it is.
    pub fn whole(self) -> Result<Self> {
        match self.incomplete {
            Some(why) => Err(anyhow!(why)),
            None => Ok(self),
        }
    }
}

/// Has `dec` (a decodebin) hand out AAC sound as it is coded, to be written as it came: decoding
/// and coding it again took 6% of the CPU of `faceveil anonymize samples/faces_720p.mp4` (4.40
/// against 4.13 CPU-seconds, 2.42 against 2.33 s, 4 runs each with and without its sound track,
/// 2026-12-06, 08:37 UTC) and lost a generation of the sound's quality. Other sound is decoded and coded as
/// AAC, which every container written here takes.
fn pass_aac_through(dec: &gst::Element) {
    if dec.find_property("caps").is_none() {
        return;
    }
    let mut caps = dec.property::<Option<gst::Caps>>("caps").unwrap_or_else(gst::Caps::new_empty);
    caps.make_mut().append(gst::Caps::builder("audio/mpeg").field("mpegversion", 4i32).build());
    dec.set_property("caps", caps);
}

/// The sink pads where the video and audio branches take the decoded input.
type Entries = Arc<Mutex<Vec<gst::Pad>>>;

/// Decodes `input`, runs its video through `stage`, encodes to `output` (through a temporary
/// file, renamed on success), keeping the audio unless `stage` leaves it out; an anonymized
/// output keeps only faceveil's header among the tags ([`faceveil_tags_only`]).
pub fn transcode(input: &Input, output: &Path, stage: Stage) -> Result<Transcode> {
    init()?;
    let Input::Stream(source) = input else { bail!("not a video input") };
    if let Some(local) = input.local_path()
        && input::same_file(local, output)
    {
        bail!("refusing to overwrite the input {}", local.display());
    }
    let tmp = partial(output);
    let pipeline = gst::Pipeline::new();
    let dec = add_source(&pipeline, source)?;
    if stage.audio {
        pass_aac_through(&dec);
    }
    let progress = Arc::new(Progress::default());
    if let StreamSource::Uri(_) = source {
        follow_goodbye(&dec, progress.clone());
    }
    if stage.sei == Sei::Read {
        streamdata::sei_from_parser(&dec, stage.signer.clone())?;
    }
    let Container { muxer: mux, holds_size_changes } = container_for(output)?;
    let sink = gst::ElementFactory::make("filesink").property("location", tmp.to_str().context("non-UTF-8 path")?).build()?;
    pipeline.add_many([&mux, &sink])?;
    // A signed video keeps its newest checkpoint beside it while it is written; dropped after
    // the pipeline has stopped, when the stream's end is in the video and its sidecar, and kept
    // where writing failed midway.
    let mut checkpoints = match (stage.sei, &stage.pictures) {
        (Sei::Write, Some(_)) => Some(CheckpointFile::between(output, &pipeline, &mux, &sink)?),
        _ => {
            mux.link(&sink)?;
            None
        }
    };
    let live = input.is_live();
    // A live recording that a full disk stops is kept: what its last write left of a picture
    // is taken off again.
    let last_write = live.then(|| {
        let last = Arc::default();
        writes::watch(&sink, &last);
        last
    });
    let have_video = Arc::new(Mutex::new(false));
    let link_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::new(Mutex::new(None));
    let entries = Entries::default();
    {
        let (pipeline_weak, mux, progress, have_video, link_error, entries) =
            (pipeline.downgrade(), mux.clone(), progress.clone(), have_video.clone(), link_error.clone(), entries.clone());
        let (elements, sei, quality, audio, full_range) =
            (stage.elements.clone(), stage.sei, stage.quality, stage.audio, stage.full_range);
        let pictures = stage.pictures.clone();
        dec.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(s) = caps.structure(0) else { return };
            follow_input_end(pad, progress.clone());
            let result = (|| -> Result<()> {
                if s.name().starts_with("video/") && !*have_video.lock().unwrap() {
                    *have_video.lock().unwrap() = true;
                    let odd = s.get::<i32>("width").unwrap_or(0) % 2 == 1 || s.get::<i32>("height").unwrap_or(0) % 2 == 1;
                    let filter = gst::ElementFactory::make("capsfilter")
                        .property("caps", colour::processing_caps(Some(&caps), full_range))
                        .build()?;
                    if !holds_size_changes {
                        guard_size_changes(&filter.static_pad("src").expect("capsfilter has src"), progress.clone());
                    }
                    let last = elements.last().unwrap_or(&filter).clone();
                    count_frames(&last.static_pad("src").context("the last stage element has no src pad")?, progress.clone());
                    // A queue after the stage lets encoding run beside it on the next frames.
                    // Turned upright after the size guard, which sees the stored size only.
                    let mut chain = vec![make("queue")?, make("videoconvert")?, filter, upright()?];
                    chain.extend(elements.iter().cloned());
                    chain.push(stage_queue()?);
                    let encoder = Encoder::new(odd, live, quality)?;
                    if sei == Sei::Write {
                        encoder.write_sei(pictures.clone())?;
                    }
                    chain.extend(encoder.elements);
                    into_muxer(&pipeline, pad, &chain, &mux, &entries, sei)?;
                    if live {
                        let (w, h) = (s.get::<i32>("width").unwrap_or(0), s.get::<i32>("height").unwrap_or(0));
                        eprintln!("faceveil: source connected ({w}x{h})");
                    }
                } else if audio && s.name() == "audio/mpeg" {
                    // AAC as it came (`pass_aac_through`); aacparse frames it as the muxer
                    // wants (ADTS for MPEG-TS).
                    into_muxer(&pipeline, pad, &[make("queue")?, make("aacparse")?], &mux, &entries, sei)?;
                } else if audio && s.name().starts_with("audio/") {
                    let chain = vec![make("queue")?, make("audioconvert")?, make("audioresample")?, make("avenc_aac")?];
                    into_muxer(&pipeline, pad, &chain, &mux, &entries, sei)?;
                } else {
                    if s.name().starts_with("video/") {
                        // Left out rather than written as it came: its faces were never looked at.
                        eprintln!("faceveil: note: the input has another video stream, which is left out: only its first is processed and written");
                    }
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
    let result = run_to_eos(&pipeline, &dec, &entries, &stage.elements, &progress, &bar, live.then(|| source.stall()));
    let duration = pipeline.query_duration::<gst::ClockTime>().map(|d| d.nseconds());
    // Read before the elements stop, which drops what they measured.
    let mut times = StageTimes::default();
    for element in &stage.elements {
        times.add(&streamdata::stage_times(element));
    }
    let _ = pipeline.set_state(gst::State::Null);
    bar.finish_and_clear();
    let frames = progress.frames.load(Ordering::SeqCst);
    let failure = link_error.lock().unwrap().take();
    // The bus says why an element failed (a bad header, a missing model); linking that element
    // only that it could not start.
    let outcome = match (failure, result) {
        (_, Err(e)) | (Some(e), Ok(())) => Err(e),
        (None, Ok(())) if frames == 0 && crate::cli::stop::requested() => {
            Err(anyhow!("stopped before the input delivered a video frame"))
        }
        (None, Ok(())) if frames == 0 && progress.closed.load(Ordering::SeqCst) => {
            Err(anyhow!("the RTSP server closed the connection before it sent a video frame"))
        }
        (None, Ok(())) if frames == 0 && progress.stalled.load(Ordering::SeqCst) => {
            Err(anyhow!("the source sent no video frame for {} s", source.stall().as_secs()))
        }
        (None, Ok(())) if !*have_video.lock().unwrap() => Err(anyhow!("the input has no video stream")),
        (None, Ok(())) if frames == 0 => Err(anyhow!("the input has no decodable video frames")),
        (None, Ok(())) => Ok(()),
    };
    if let Err(e) = outcome {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let unwritten = progress.unwritten.lock().unwrap().take();
    let cut = match (&unwritten, &last_write) {
        // One that cannot be cut back is kept as it is, and said.
        (Some(_), Some(last)) => last.lock().unwrap().cut_back().unwrap_or_else(|e| {
            eprintln!("faceveil: {e:#}");
            None
        }),
        _ => None,
    };
    std::fs::rename(&tmp, output).with_context(|| format!("cannot write {}", output.display()))?;
    // A file whose streams all end before its declared duration lost frames; what decoded is
    // kept. One stream reaching it is enough: the video of a whole file may end before its audio.
    let end = progress.end_ns.load(Ordering::SeqCst);
    let reached = end.max(progress.input_end_ns.load(Ordering::SeqCst));
    if let Some(checkpoints) = checkpoints.take().filter(|_| unwritten.is_some()) {
        checkpoints.keep();
    }
    let incomplete = if let Some(why) = unwritten {
        Some(format!(
            "{why}: the recording stopped there, and what was written of its {frames} frames is kept in {}, cut where writing failed{}",
            output.display(),
            cut.map_or(String::new(), |cut| format!(" (the {} bytes of its last write, cut short, taken off)", cut.bytes))
        ))
    } else if let Some(change) = progress.size_change.lock().unwrap().take() {
        Some(format!("{change}: the {frames} frames before it were written to {}", output.display()))
    } else if let Some(d) = duration.filter(|d| !live && !crate::cli::stop::requested() && reached + 200_000_000 < *d) {
        Some(format!(
            "the input ends early (truncated or damaged): {frames} frames up to {:.2} s of {:.2} s were written to {}",
            end as f64 / 1e9,
            d as f64 / 1e9,
            output.display()
        ))
    } else if progress.stalled.load(Ordering::SeqCst) {
        Some(format!(
            "the source sent no frame for {} s (a camera that hangs, a server that closed the connection without ending the stream): the {frames} frames before were written to {}",
            source.stall().as_secs(),
            output.display()
        ))
    } else if let Some(why) = progress.failed.lock().unwrap().take() {
        Some(format!("the source failed: {why}; the {frames} frames before were written to {}", output.display()))
    } else if progress.closed.load(Ordering::SeqCst) {
        Some(format!(
            "the RTSP server closed the connection without ending the stream (the server or its camera stopped, or the network failed): the {frames} frames before were written to {}",
            output.display()
        ))
    } else if !live && crate::cli::stop::requested() {
        // A file stopped before its end is a part of it: kept, and said so, not a finished run.
        let of = duration.map_or(String::new(), |d| format!(" of {:.2} s", d as f64 / 1e9));
        Some(format!(
            "stopped (Ctrl-C or SIGTERM): {frames} frames up to {:.2} s{of} were written to {}",
            end as f64 / 1e9,
            output.display()
        ))
    } else {
        None
    };
    Ok(Transcode { frames, times, incomplete })
}

/// Plays the pipeline to its end, or until it is stopped; `stall`, for a live input: how long
/// it may send no frame before it is ended as hung.
fn run_to_eos(
    pipeline: &gst::Pipeline,
    input: &gst::Element,
    entries: &Entries,
    stage: &[gst::Element],
    progress: &Progress,
    bar: &indicatif::ProgressBar,
    stall: Option<Duration>,
) -> Result<()> {
    let live = stall.is_some();
    let ours = |msg: &gst::Message| msg.src().is_some_and(|s| stage.iter().any(|e| e.upcast_ref::<gst::Object>() == s));
    let bus = pipeline.bus().expect("pipelines have a bus");
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The element that refused to start said why on the bus (a folder that does not exist, a
        // camera that is not there); the state change alone says only that one failed.
        let why = bus.pop_filtered(&[gst::MessageType::Error]).map(|msg| error_text(&msg, ours(&msg)));
        let _ = pipeline.set_state(gst::State::Null);
        return Err(match why {
            Some(text) => anyhow!(text),
            None => anyhow::Error::from(e).context("cannot start the pipeline"),
        });
    }
    let started = std::time::Instant::now();
    // How many of the entries have been sent the end: branches may still be linked after it.
    let mut ended = 0;
    let mut stopping = false;
    let mut said = std::collections::HashSet::new();
    let (mut seen, mut since) = (0, std::time::Instant::now());
    let mut closing = input::Closing::default();
    loop {
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(250));
        let frames = progress.frames.load(Ordering::SeqCst);
        if frames != seen {
            (seen, since) = (frames, std::time::Instant::now());
        }
        // A live source that sends nothing (a camera that hangs; an RTSP server that closed the
        // connection, after which rtspsrc may wait on without an end) would hold the recording
        // open for ever: it is ended as Ctrl-C ends it, its frames kept.
        if stall.is_some_and(|stall| since.elapsed() > stall) {
            progress.stalled.store(true, Ordering::SeqCst);
        }
        if closing.over(since) {
            progress.closed.store(true, Ordering::SeqCst);
        }
        stopping |= crate::cli::stop::requested()
            || progress.size_change.lock().unwrap().is_some()
            || progress.stalled.load(Ordering::SeqCst)
            || progress.closed.load(Ordering::SeqCst);
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
        bar.set_message(format!("{frames} frames, {:.1} fps", frames as f64 / started.elapsed().as_secs_f64().max(1e-3)));
        let Some(msg) = msg else { continue };
        // A close after the server said that the stream ends is its end.
        if !progress.said_bye.load(Ordering::SeqCst) {
            closing.message(&msg);
        }
        match msg.view() {
            gst::MessageView::Eos(_) => {
                if closing.pending() {
                    progress.closed.store(true, Ordering::SeqCst);
                }
                return Ok(());
            }
            // Once the input has been cut, its complaints about that are expected.
            gst::MessageView::Error(_) if stopping && msg.src().is_some_and(|s| s.has_as_ancestor(input)) => {}
            // A live source that fails midway (a camera or server gone, over UDP rtspsrc's
            // reconnection refused) ends the recording as a stall does: what it sent is kept.
            gst::MessageView::Error(_) if live && frames > 0 && msg.src().is_some_and(|s| s.has_as_ancestor(input)) => {
                *progress.failed.lock().unwrap() = Some(error_text(&msg, false));
                stopping = true;
            }
            // A live recording that cannot be written further (a full disk, the file or its
            // sidecar) stops there: nothing more can be written to end it, and what was is all
            // there is of what the camera saw, so it is kept as it is rather than deleted.
            gst::MessageView::Error(e)
                if live
                    && frames > 0
                    && (e.error().matches(gst::ResourceError::NoSpaceLeft) || e.error().matches(gst::ResourceError::Write)) =>
            {
                *progress.unwritten.lock().unwrap() = Some(error_text(&msg, ours(&msg)));
                return Ok(());
            }
            // The elements' own messages say all there is to say; others name where they came
            // from. Their warnings (frames that passed unrestored before the stream's header, a
            // fallback that covered faces) are the user's to know; a note (the small faces a
            // large frame's detection misses) once, though both elements may say it.
            gst::MessageView::Warning(_) => {
                if let Some(words) = element_words(&msg).filter(|w| !w.starts_with("note: ") || said.insert(w.clone())) {
                    bar.suspend(|| eprintln!("faceveil: {words}"));
                }
            }
            gst::MessageView::Info(_) => {
                if let Some(words) = element_words(&msg).filter(|w| said.insert(w.clone())) {
                    bar.suspend(|| eprintln!("faceveil: {words}"));
                }
            }
            gst::MessageView::Error(_) => bail!(error_text(&msg, ours(&msg))),
            _ => {}
        }
    }
}

/// An error message as the user reads it: faceveil's own elements' say all there is to say;
/// another element's gets the details GStreamer keeps under the place in its source ("system
/// error: No such file or directory") and the element's name.
fn error_text(msg: &gst::Message, ours: bool) -> String {
    let gst::MessageView::Error(err) = msg.view() else { return String::new() };
    if ours {
        return err.error().to_string();
    }
    let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
    let details: Vec<&str> = debug.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).collect();
    let details = if details.is_empty() { String::new() } else { format!(": {}", details.join("; ")) };
    let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
    let said = err.error().to_string();
    // filesink says "No space left on the resource." and nothing of which file: name it.
    let file = msg
        .src()
        .and_then(|s| s.downcast_ref::<gst::Element>())
        .filter(|e| e.find_property("location").is_some_and(|p| p.value_type() == String::static_type()))
        .and_then(|e| e.property::<Option<String>>("location"))
        .filter(|location| !said.contains(location.as_str()))
        .map(|location| format!(" ({location})"))
        .unwrap_or_default();
    let hint = if err.error().matches(gst::ResourceError::NotAuthorized) {
        "; the source plays only to a valid login: give its user with --source-user and its password with \
         --source-password-file or $FACEVEIL_SOURCE_PASSWORD"
    } else {
        ""
    };
    // A source's location and its details can hold a URL with its password.
    login::hide_passwords(&format!("{}{file}{details} ({src}){hint}", said.trim_end_matches('.')))
}

/// What faceveil's own elements say to the user, as they should read it: their warnings (a
/// fallback that covered faces, a stream stored turned) and notes (the small faces a large
/// frame's detection misses). None for other messages and other elements.
pub fn element_words(msg: &gst::Message) -> Option<String> {
    let ours = msg
        .src()
        .and_then(|s| s.downcast_ref::<gst::Element>())
        .and_then(gst::Element::factory)
        .and_then(|f| f.plugin_name())
        .is_some_and(|plugin| plugin == "faceveil");
    match msg.view() {
        // Given full-range YUV on purpose (colour::FullRange::AsYuv): said once, as what it means
        // here, rather than as the cure a pipeline of one's own would need.
        gst::MessageView::Warning(w) if ours && w.error().to_string().contains(streamdata::FULL_RANGE_WARNING_MARK) => Some(
            "note: this video is full range (0-255); with sealed faces it stays in its own YUV planes, which the model reads as limited range (16-235): a surrogate's darkest and brightest levels clip, and the sealed faces come back exact".into(),
        ),
        gst::MessageView::Warning(w) if ours || w.error().to_string().ends_with(streamdata::LAST_PICTURE_LEFT_OUT) => {
            Some(format!("warning: {}", w.error()))
        }
        gst::MessageView::Info(i) if ours => Some(format!("note: {}", i.error())),
        _ => None,
    }
}

/// The message types [`element_words`] reads, with those a run ends on.
pub const WATCHED: [gst::MessageType; 4] =
    [gst::MessageType::Error, gst::MessageType::Eos, gst::MessageType::Warning, gst::MessageType::Info];

/// `path` with ".partial" added: where a file is written before it is complete.
fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

/// Anonymizes a video file or stream into `output`; `audio`: whether its sound is written too.
pub fn anonymize(input: &Input, output: &Path, settings: &Settings, boxes: Option<&Path>, audio: bool) -> Result<()> {
    let side_path = sidecar::path_for(output);
    let side_tmp = partial(&side_path);
    let _warm = WarmModels::start(&settings.config, Direction::Anonymize);
    let elements = settings.anonymizer(Some(&side_tmp))?;
    let boxes_out: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    if boxes.is_some() {
        // faceveildetect's faces ride on each frame through faceveil as region-of-interest metas.
        let veil = elements.last().expect("the anonymizer has elements").static_pad("src").expect("faceveil has src");
        let collected = boxes_out.clone();
        veil.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data {
                let faces: Vec<progress::BoxJson> = streamdata::face_boxes(buffer).iter().map(progress::BoxJson::from).collect();
                let mut collected = collected.lock().unwrap();
                let frame = collected.len();
                collected.push(serde_json::json!({ "frame": frame, "pts": buffer.pts().map(|t| t.nseconds()), "faces": faces }));
            }
            gst::PadProbeReturn::Ok
        });
    }
    let t = match transcode(
        input,
        output,
        Stage {
            elements,
            sei: Sei::Write,
            pictures: settings.sealing.signing.clone(),
            signer: None,
            quality: settings.anonymized_quality(),
            audio,
            full_range: settings.sealing.full_range(),
        },
    ) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&side_tmp);
            return Err(e);
        }
    };
    // faceveil writes a sidecar where it has a header to put in it (sdn mode). A part of the
    // input that was kept keeps its sidecar and boxes too.
    let sidecar = side_tmp.exists();
    if sidecar {
        std::fs::rename(&side_tmp, &side_path)?;
    }
    if let Some(b) = boxes {
        write_atomically(b, serde_json::to_string_pretty(&*boxes_out.lock().unwrap())?.as_bytes())?;
    }
    let t = match t.whole() {
        Ok(t) => t,
        Err(e) if sidecar => bail!("{e:#} (restore data in {})", side_path.display()),
        Err(e) => return Err(e),
    };
    eprintln!(
        "{} anonymized -> {}{}",
        frames(t.frames),
        output.display(),
        if sidecar { format!(" (restore data in {})", side_path.display()) } else { String::new() }
    );
    Ok(())
}

/// Restores with the sidecar and the header where given; otherwise faceunveil finds the header
/// in the stream (SEI, tag). A stream without any fails at its end, and its output is removed.
pub fn restore(input: &Input, output: &Path, settings: &Settings, source: Source, quality: Quality) -> Result<()> {
    // Identities alone open only the sealed faces: the restore graph is not needed then.
    let _warm = settings.password.is_some().then(|| WarmModels::start(&settings.config, Direction::Restore));
    let elements = settings.restorer(source)?;
    let t = transcode(
        input,
        output,
        Stage {
            elements,
            sei: Sei::Read,
            pictures: None,
            signer: settings.config.signer.clone(),
            quality,
            audio: true,
            full_range: colour::FullRange::AsYuv,
        },
    )?
    .whole()?;
    eprintln!("{} restored -> {}", frames(t.frames), output.display());
    Ok(())
}

/// "1 frame", "2 frames": a count of frames as the closing line says it.
fn frames(n: u64) -> String {
    if n == 1 { "1 frame".into() } else { format!("{n} frames") }
}
