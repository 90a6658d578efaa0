//! One camera: a GStreamer pipeline of its own, built from the plugin's elements, on a thread of
//! its own, restarted with backoff when its source fails. Nothing is shared between cameras but
//! the RTSP server and the metrics registry, so a slow or dead camera cannot stall another.
//!
//! source ! decode ! [identity sync: files in real time] ! queue ! videoconvert ! videoflip (upright)
//! ! faceveildetect
//! ! queue ! faceveil ! videoconvert ! x264enc ! h264parse ! tee ! queue ! splitmuxsink
//!                                                               tee ! queue ! appsink -> mount

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use faceveil::secrets::SigningKey;
use gst::prelude::*;
use prometheus_client::metrics::counter::Counter;

use super::config::CameraConfig;
use super::metrics::CameraMetrics;
use super::mounts::Outlet;
use super::recording::{self, Retention, Run, SignedEnd};
use super::space;
use crate::cli::media::colour;
use crate::cli::media::elements::make;
use crate::cli::media::encoder::{self, LiveRate};
use crate::cli::media::input::{Closing, Reconnect, StreamSource};
use crate::cli::media::video::{self, add_source, as_shown};
use crate::cli::media::writes;

/// Decoded frames a live or real-time camera may hold ahead of processing; beyond that the
/// oldest is dropped, so the picture stays current instead of falling further behind.
const INGEST_FRAMES: u32 = 2;
/// Encoded frames an output may fall behind (2 s at 30 fps) before its oldest are dropped.
const OUTPUT_FRAMES: u32 = 60;
/// How long a stopping camera may take to close its recording.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How long a pipeline may take to stop. GStreamer 1.22's rtspsrc can deadlock on the way to
/// NULL (seen here with local RTSP cameras: the camera thread waits for rtspsrc's state lock
/// while rtspsrc's own task, holding it, waits to be stopped); waiting for it for ever would hold
/// up the camera's reconnect, a reload and the process's exit.
const STOP_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(250);
/// splitmuxsink's name in the pipeline: its errors (and its queue's) are the recording's.
const RECORDING: &str = "recording";
/// faceveil's name in the pipeline: the bytes it sealed are read from it.
const VEIL: &str = "veil";

pub struct Camera {
    pub config: CameraConfig,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Camera {
    pub fn start(config: CameraConfig, metrics: CameraMetrics, outlet: Option<Outlet>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name(format!("camera {}", config.name)).spawn({
            let (config, stop) = (config.clone(), stop.clone());
            move || supervise(&config, &metrics, outlet.as_ref(), &stop)
        })?;
        Ok(Self { config, stop, thread })
    }

    /// Asks the camera to stop; its recording is closed cleanly. [`Camera::join`] waits for it.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn join(self) {
        self.request_stop();
        if self.thread.join().is_err() {
            eprintln!("faceveil: camera {}: its thread panicked", self.config.name);
        }
    }
}

enum End {
    /// Asked to stop.
    Stopped,
    /// A file ended.
    Finished,
    /// The source failed (or a live one ended): try again.
    Failed(anyhow::Error),
    /// The recording could not be written (a full disk, a folder it may not write to): the
    /// camera goes on without it for a while.
    Unwritten(anyhow::Error),
    /// The time came to try the recording again.
    RecordAgain,
}

/// A recording that could not be written is tried again 5 s later, then after twice as long
/// after each failure in a row, up to a minute: a full disk waits for someone to clear it, and
/// each try restarts the camera. Meanwhile the camera and its mount go on without it.
struct Unwritable {
    until: Option<Instant>,
    delay: Duration,
}

impl Unwritable {
    const START: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(60);

    fn new() -> Self {
        Self { until: None, delay: Self::START }
    }

    /// Until when the recording waits after its last failure, if it failed last.
    fn until(&self) -> Option<Instant> {
        self.until
    }

    /// The recording failed after `recorded` of writing: the wait before the next try. One that
    /// had written for longer than the longest wait failed anew, not again.
    fn failed(&mut self, recorded: Duration) -> Duration {
        if recorded >= Self::MAX {
            self.delay = Self::START;
        }
        let delay = self.delay;
        self.until = Some(Instant::now() + delay);
        self.delay = (delay * 2).min(Self::MAX);
        delay
    }

    /// A recording run ended otherwise.
    fn ended(&mut self) {
        (self.until, self.delay) = (None, Self::START);
    }
}

fn supervise(config: &CameraConfig, metrics: &CameraMetrics, outlet: Option<&Outlet>, stop: &AtomicBool) {
    // Opened once for every reconnection: a protected key's passphrase costs a deliberate second.
    match config.signing_key() {
        Ok(signing) => run_until_stopped(config, signing.as_ref(), metrics, outlet, stop),
        Err(e) => eprintln!("faceveil: camera {}: {e:#}", config.name),
    }
    if let Some(outlet) = outlet {
        outlet.end();
    }
}

/// Runs the camera, reconnecting with backoff, until it is stopped or its file ends.
fn run_until_stopped(
    config: &CameraConfig,
    signing: Option<&SigningKey>,
    metrics: &CameraMetrics,
    outlet: Option<&Outlet>,
    stop: &AtomicBool,
) {
    let mut reconnect = Reconnect::new();
    let mut unwritable = Unwritable::new();
    loop {
        let before = metrics.frames.get();
        let paused = unwritable.until().filter(|&t| !may_record_again(config, t));
        if paused.is_some() && outlet.is_none() {
            // Without its recording a camera with no mount has nothing to feed: it waits.
            if !sleep_until(Instant::now() + POLL, stop) {
                break;
            }
            if unwritable.until().is_some_and(|t| may_record_again(config, t)) {
                eprintln!("faceveil: camera {}: trying the recording again", config.name);
            }
            continue;
        }
        let started = Instant::now();
        let end = run_once(config, paused, signing, metrics, outlet, stop);
        metrics.up.set(0);
        metrics.fps.set(0.0);
        metrics.recording.set(0);
        let error = match end {
            End::Stopped => break,
            End::Finished => {
                eprintln!("faceveil: camera {}: end of file", config.name);
                break;
            }
            End::Unwritten(e) => {
                let wait = unwritable.failed(started.elapsed());
                let meanwhile = if outlet.is_some() { "its mount goes on without it" } else { "the camera waits" };
                eprintln!(
                    "faceveil: camera {}: the recording cannot be written: {e:#}; {meanwhile}, and tries it again after {} s, once its disk has room",
                    config.name,
                    wait.as_secs()
                );
                continue;
            }
            End::RecordAgain => {
                eprintln!("faceveil: camera {}: trying the recording again", config.name);
                continue;
            }
            End::Failed(e) => e,
        };
        if paused.is_none() {
            unwritable.ended();
        }
        let backoff = reconnect.next_delay(metrics.frames.get() > before);
        eprintln!("faceveil: camera {}: {error:#}; reconnecting in {:.1} s", config.name, backoff.as_secs_f64());
        if !sleep_until(Instant::now() + backoff, stop) {
            break;
        }
        metrics.reconnects.inc();
    }
}

/// Waits until `until`; false if asked to stop meanwhile.
fn sleep_until(until: Instant, stop: &AtomicBool) -> bool {
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(POLL.min(until - Instant::now()));
    }
    !stop.load(Ordering::SeqCst)
}

/// One run of the camera, from its source's start to its end; it records unless the recording
/// is `paused` until a time, and then ends at that time to try it again.
fn run_once(
    config: &CameraConfig,
    paused: Option<Instant>,
    signing: Option<&SigningKey>,
    metrics: &CameraMetrics,
    outlet: Option<&Outlet>,
    stop: &AtomicBool,
) -> End {
    let last_frame = Arc::new(Mutex::new(Instant::now()));
    let mut retention = config.record.as_ref().filter(|_| paused.is_none()).map(|r| Retention::new(&config.name, r));
    let run = match retention.as_mut().map(begin_recording).transpose() {
        Ok(run) => run,
        Err(e) => return End::Unwritten(e),
    };
    let pipeline = match build(config, run.as_ref(), signing, metrics, outlet, &last_frame) {
        Ok(p) => p,
        Err(e) => return End::Failed(e),
    };
    metrics.recording.set(i64::from(run.is_some()));
    let mut watched = Watched { ends: SignedEnd::new(&config.name, run.as_ref()), retention, record_again: paused, sealed: 0 };
    let end = watch(&pipeline, config, &mut watched, metrics, &last_frame, stop);
    let stopped = stop_within(&pipeline, STOP_WAIT);
    // The faces sealed in the run's last second, the element keeping its count when stopped.
    count_sealed(&pipeline, metrics, &mut watched.sealed);
    if !stopped {
        eprintln!(
            "faceveil: camera {}: its pipeline did not stop within {} s and is left behind",
            config.name,
            STOP_WAIT.as_secs()
        );
    }
    if let Some(retention) = &mut watched.retention {
        if stopped {
            if let Some(run) = &run {
                run.cut_back(&config.name);
            }
            recording::drop_empty_segments(retention.folder());
        }
        retention.apply();
    }
    end
}

/// The camera's folder made, room made in it, and a run of its recording begun.
fn begin_recording(retention: &mut Retention) -> Result<Run> {
    let folder = retention.folder().to_path_buf();
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    retention.apply();
    Run::begin(folder)
}

/// Takes the pipeline to NULL on a thread of its own and waits at most `wait` for it; false if
/// it did not get there (the thread, and with it the pipeline, are then left to finish or hang
/// on their own).
fn stop_within(pipeline: &gst::Pipeline, wait: Duration) -> bool {
    let (done, stopped) = std::sync::mpsc::channel();
    let pipeline = pipeline.clone();
    let spawned = std::thread::Builder::new().name("pipeline stop".into()).spawn(move || {
        let _ = pipeline.set_state(gst::State::Null);
        let _ = done.send(());
    });
    spawned.is_ok() && stopped.recv_timeout(wait).is_ok()
}

/// What [`watch`] keeps up to date besides the metrics: the recording's signed end and its
/// retention, and the time to try a paused recording again.
struct Watched<'a> {
    ends: SignedEnd<'a>,
    retention: Option<Retention<'a>>,
    record_again: Option<Instant>,
    /// The bytes this run's faceveil had sealed when the camera's counter last took them.
    sealed: u64,
}

/// Adds what the run's faceveil sealed since `counted` (a run's count when last taken) to the
/// camera's counter.
fn count_sealed(pipeline: &gst::Pipeline, metrics: &CameraMetrics, counted: &mut u64) {
    if let Some(veil) = pipeline.by_name(VEIL) {
        let sealed = veil.property::<u64>("sealed-bytes");
        metrics.sealed.inc_by(sealed.saturating_sub(*counted));
        *counted = sealed;
    }
}

/// Runs the pipeline until it ends, fails, stalls or is asked to stop, or a paused recording is
/// to be tried again; keeps fps, the recording's retention and its signed end up to date
/// meanwhile.
fn watch(
    pipeline: &gst::Pipeline,
    config: &CameraConfig,
    Watched { ends, retention, record_again, sealed }: &mut Watched,
    metrics: &CameraMetrics,
    last_frame: &Mutex<Instant>,
    stop: &AtomicBool,
) -> End {
    let bus = pipeline.bus().expect("pipelines have a bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        return End::Failed(bus_error(&bus).unwrap_or_else(|| anyhow!("the pipeline does not start")));
    }
    let live = config.is_live();
    let stall = config.stall();
    let (mut counted, mut counted_at) = (metrics.frames.get(), Instant::now());
    let mut types = video::WATCHED.to_vec();
    types.push(gst::MessageType::Element);
    let mut server_close = Closing::default();
    let recorder = pipeline.by_name(RECORDING);
    loop {
        if stop.load(Ordering::SeqCst) {
            // End of stream first, so that the segment being written is closed whole, and a
            // signed stream's end is kept.
            pipeline.send_event(gst::event::Eos::new());
            let until = Instant::now() + CLOSE_WAIT;
            let closing = [gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Element];
            while let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(until.saturating_duration_since(Instant::now()).as_nanos() as u64),
                &closing,
            ) {
                ends.message(&msg);
                if msg.type_() != gst::MessageType::Element {
                    break;
                }
            }
            return End::Stopped;
        }
        if let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_nseconds(POLL.as_nanos() as u64), &types) {
            // The elements' own words are the operator's to know, camera by camera.
            if let Some(words) = video::element_words(&msg) {
                eprintln!("faceveil: camera {}: {words}", config.name);
            }
            ends.message(&msg);
            server_close.message(&msg);
            match msg.view() {
                gst::MessageView::Error(e) if recorder.as_ref().is_some_and(|r| within(&msg, r)) => {
                    // The debug text's lines after its first (where in GStreamer it was raised)
                    // say what the system said ("File too large"), where the message is only
                    // "Could not write to resource"; the recording's elements know file names,
                    // never the source's URL.
                    let error = describe(&msg, e.error());
                    return End::Unwritten(match e.debug().as_deref().and_then(|d| d.lines().skip(1).last()) {
                        Some(said) => anyhow!("{error:#} ({said})"),
                        None => error,
                    });
                }
                gst::MessageView::Error(e) => return End::Failed(describe(&msg, e.error())),
                gst::MessageView::Eos(_) if live => return End::Failed(anyhow!("the source ended")),
                gst::MessageView::Eos(_) => return End::Finished,
                _ if recording::is_segment_closed(&msg) => {
                    if let Some(retention) = retention {
                        retention.apply();
                    }
                }
                _ => {}
            }
        }
        if counted_at.elapsed() >= Duration::from_secs(1) {
            let frames = metrics.frames.get();
            metrics.fps.set((frames - counted) as f64 / counted_at.elapsed().as_secs_f64());
            (counted, counted_at) = (frames, Instant::now());
            count_sealed(pipeline, metrics, sealed);
        }
        if live && last_frame.lock().unwrap().elapsed() > stall {
            return End::Failed(anyhow!("no frame for {} s", stall.as_secs()));
        }
        if server_close.over(*last_frame.lock().unwrap()) {
            return End::Failed(anyhow!("the RTSP server closed the connection"));
        }
        if record_again.is_some_and(|t| may_record_again(config, t)) {
            return End::RecordAgain;
        }
    }
}

/// Free space under which a paused recording is not tried again on a disk that keeps none
/// free (no `record.min_free`), or an eighth of a smaller disk: a full disk is waited out
/// without restarting the camera each time, and the recording comes back as soon as space does.
const ROOM_TO_RECORD: u64 = 16 << 20;

/// Whether a recording paused until `at` is to be tried again now: its time came, and its disk
/// has room for it, or `min_free` will make room as it starts (or the disk cannot be asked:
/// the try will say why).
fn may_record_again(config: &CameraConfig, at: Instant) -> bool {
    let Some(record) = &config.record else { return false };
    Instant::now() >= at
        && (record.min_free.is_some()
            || space::of_disk(&record.dir).map_or(true, |(free, size)| free >= ROOM_TO_RECORD.min(size / 8)))
}

/// Whether `msg` comes from the recording: splitmuxsink, an element inside it, or the queue
/// that feeds it (which fails after it).
fn within(msg: &gst::Message, recorder: &gst::Element) -> bool {
    let Some(src) = msg.src() else { return false };
    let feeds = recorder.static_pad("video").and_then(|p| p.peer()).and_then(|p| p.parent_element());
    src == recorder.upcast_ref::<gst::Object>()
        || src.has_as_ancestor(recorder)
        || feeds.is_some_and(|q| src == q.upcast_ref::<gst::Object>())
}

/// An error message with the element it came from. Debug details are left out: they can hold
/// the source URL, credentials included.
fn describe(msg: &gst::Message, error: gst::glib::Error) -> anyhow::Error {
    let hint = if error.matches(gst::ResourceError::NotAuthorized) {
        " (the source plays only to a valid login: check source_user and its password)"
    } else {
        ""
    };
    match msg.src() {
        Some(src) => anyhow!("{}: {error}{hint}", src.name()),
        None => anyhow!("{error}{hint}"),
    }
}

fn bus_error(bus: &gst::Bus) -> Option<anyhow::Error> {
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(100), &[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(describe(&msg, e.error())),
        _ => None,
    }
}

/// A bounded queue. A leaky one drops its oldest buffer when full and counts it as dropped;
/// one that is not holds back the elements before it (a file read as fast as possible).
fn queue(frames: u32, leaky: bool, dropped: &Counter) -> Result<gst::Element> {
    let q = make("queue")?;
    q.set_property("max-size-buffers", frames);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    if leaky {
        q.set_property_from_str("leaky", "downstream");
        let dropped = dropped.clone();
        q.connect("overrun", false, move |_| {
            dropped.inc();
            None
        });
    }
    Ok(q)
}

/// Sets the detection properties faceveildetect and faceveil share.
fn detection(element: &gst::Element, config: &CameraConfig) {
    element.set_property_from_str("detector", config.detector.name());
    element.set_property("detect-interval", config.detect_interval);
    element.set_property("threshold", config.threshold);
    element.set_property("threads", config.threads);
    element.set_property_from_str("provider", config.provider.name());
}

fn build(
    config: &CameraConfig,
    run: Option<&Run>,
    signing: Option<&SigningKey>,
    metrics: &CameraMetrics,
    outlet: Option<&Outlet>,
    last_frame: &Arc<Mutex<Instant>>,
) -> Result<gst::Pipeline> {
    let pipeline = gst::Pipeline::with_name(&config.name);
    let source = config.source()?;
    let paced = source.is_live() || config.realtime;
    let dec = add_source(&pipeline, &source)?;

    let mut chain = Vec::new();
    if matches!(source, StreamSource::File(_)) && config.realtime {
        chain.push(gst::ElementFactory::make("identity").property("sync", true).build()?);
    }
    let ingest = queue(INGEST_FRAMES, paced, &metrics.dropped)?;
    let detect = make("faceveildetect")?;
    detection(&detect, config);
    let veil = make("faceveil")?;
    veil.set_property("name", VEIL);
    detection(&veil, config);
    veil.set_property_from_str("mode", config.mode.name());
    // Whether faces are sealed, to recipients or to the password. The signing key signs the
    // header and records in faceveil, and each coded picture after the encoder.
    // The sdn password; none in sdn mode where the faces are sealed to recipients alone (checked
    // at load), which keys them at random.
    let password = config.password()?;
    if let Some(password) = &password {
        veil.set_property("password", password.as_str());
    }
    let recipients = config.recipients()?;
    if let Some(recipients) = &recipients {
        veil.set_property("recipients", recipients.as_str());
        veil.set_property("recipients-threshold", config.recipients_threshold);
    }
    veil.set_property("seal-password", config.seal_password);
    if let Some(quantizer) = config.sealed_quantizer {
        veil.set_property("sealed-quantizer", quantizer);
    }
    if let Some(key) = signing {
        let veil = veil.downcast_ref::<gstfaceveil::FaceVeil>().context("the faceveil element is not faceveil's")?;
        veil.set_signing_key(key.clone());
        veil.set_property("sign-pictures", true);
    }
    let sealing = recipients.is_some() || config.seal_password;
    let i420 = gst::ElementFactory::make("capsfilter")
        .property("caps", gst::Caps::builder("video/x-raw").field("format", "I420").build())
        .build()?;
    // Live settings (nothing held back) at constant quality 23 under a ceiling that follows the
    // frames' size, tuned for fidelity as the file path is; keyframes where segments split and
    // RTSP clients join, otherwise seldom (`encoder::LIVE_KEYFRAME_EVERY`); surrogates a
    // password restore undoes with their faces finer.
    let quality = LiveRate::Quality(encoder::DEFAULT_CRF);
    let encoder = gst::parse::launch(&encoder::live("encoder", quality, config.keyframe_interval, password.is_some()))?;
    encoder::ceiling_follows_frames(&encoder)?;
    // faceveil's SEI metas (the header every 30 frames, each frame's record) into the stream, so
    // that any segment or RTSP stream can be restored on its own.
    gstfaceveil::streamdata::sei_through_encoder(&encoder, signing.cloned())?;
    let parse = make("h264parse")?;
    // Parameter sets before every keyframe: each segment and each joining client starts whole.
    parse.set_property("config-interval", -1i32);
    let byte_stream = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").field("alignment", "au").build(),
        )
        .build()?;
    let tee = make("tee")?;
    // Faces sealed in YUV open only in YUV (colour::FullRange).
    let full_range = colour::FullRange::for_anonymizing(sealing);
    let processing =
        gst::ElementFactory::make("capsfilter").property("caps", colour::processing_caps(None, full_range)).build()?;
    let [deinterlace, flip] = as_shown()?;
    chain.extend([
        ingest.clone(),
        make("videoconvert")?,
        deinterlace,
        flip,
        processing.clone(),
        detect.clone(),
        queue(2, false, &metrics.dropped)?,
        veil.clone(),
        make("videoconvert")?,
        i420,
        encoder.clone(),
        parse,
        byte_stream,
        tee.clone(),
    ]);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;

    if let Some(run) = run {
        let record = config.record.as_ref().expect("a run records");
        let out = queue(OUTPUT_FRAMES, paced, &metrics.dropped)?;
        let split = make("splitmuxsink")?;
        split.set_property("name", RECORDING);
        split.set_property("location", run.segment_pattern());
        split.set_property("max-size-time", u64::from(record.segment_seconds) * 1_000_000_000);
        split.set_property("muxer", make("mpegtsmux")?);
        // Each segment starts on a keyframe asked for at its time, not on the next one that comes.
        split.set_property("send-keyframe-requests", true);
        // Each buffer written through: a write that fails (a full disk) fails as it is made, and
        // is said and recovered from as any failure. A buffered sink met it only as it flushed a
        // segment it closed, and splitmuxsink did not report that: the camera went on recording
        // nothing without a word (CI, 2026-12-05:
        // `serve.rs::a_camera_whose_recording_cannot_be_written_says_so_and_starts_again`).
        let sink = make("filesink")?;
        writes::watch(&sink, &run.last_write);
        split.set_property("sink", &sink);
        pipeline.add_many([&out, &split])?;
        gst::Element::link_many([&tee, &out, &split])?;
    }
    if let Some(outlet) = outlet {
        let out = queue(OUTPUT_FRAMES, paced, &metrics.dropped)?;
        let feeds = outlet.clone();
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                        feeds.push(&sample);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            )
            .build();
        pipeline.add_many([&out, sink.upcast_ref()])?;
        gst::Element::link_many([&tee, &out, sink.upcast_ref()])?;
        outlet.ask_keyframes_through(&sink.static_pad("sink").context("appsink has no sink pad")?);
    }

    let target = chain[0].static_pad("sink").expect("the chain starts with a sink pad");
    video::link_first_video(&dec, target, processing, full_range);
    watch_frames(metrics, last_frame, &ingest, &detect, &veil, &encoder);
    Ok(pipeline)
}

/// Counts frames and faces and times each frame from its decoded picture to the encoder's input
/// (the encoder shifts timestamps, so frames are matched before it; with zerolatency it adds no
/// frames of delay).
fn watch_frames(
    metrics: &CameraMetrics,
    last_frame: &Arc<Mutex<Instant>>,
    ingest: &gst::Element,
    detect: &gst::Element,
    veil: &gst::Element,
    encoder: &gst::Element,
) {
    // Entry times by timestamp; frames dropped on the way are pruned as later ones come out.
    let entered: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let pad = |e: &gst::Element, name: &str| e.static_pad(name).expect("the element has this pad");
    let pts = |info: &gst::PadProbeInfo| info.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
    {
        let entered = entered.clone();
        pad(ingest, "sink").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(t) = pts(info) {
                let mut map = entered.lock().unwrap();
                // Bounded even if nothing ever comes out (a stuck encoder).
                if map.len() >= 256 {
                    map.pop_first();
                }
                map.insert(t, Instant::now());
            }
            gst::PadProbeReturn::Ok
        });
    }
    let faces = metrics.faces.clone();
    pad(detect, "src").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buf) = info.buffer() {
            let n = buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>().filter(|m| m.roi_type() == "face").count();
            faces.inc_by(n as u64);
        }
        gst::PadProbeReturn::Ok
    });
    let (frames, up, last_frame) = (metrics.frames.clone(), metrics.up.clone(), last_frame.clone());
    pad(veil, "src").add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        frames.inc();
        up.set(1);
        *last_frame.lock().unwrap() = Instant::now();
        gst::PadProbeReturn::Ok
    });
    let latency = metrics.latency.clone();
    pad(encoder, "sink").add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(t) = pts(info) {
            let mut map = entered.lock().unwrap();
            // Frames before this one that never came out were dropped on the way.
            *map = map.split_off(&t);
            if let Some(at) = map.remove(&t) {
                latency.observe(at.elapsed().as_secs_f64());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_that_cannot_be_written_waits_longer_after_each_failure_in_a_row() {
        let mut unwritable = Unwritable::new();
        assert_eq!(unwritable.until(), None);
        let waits: Vec<u64> = (0..6).map(|_| unwritable.failed(Duration::from_secs(1)).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert!(unwritable.until().is_some_and(|t| t > Instant::now() + Duration::from_secs(59)));
        // A recording that wrote for a minute or more before it failed, or one that ended
        // otherwise, starts the waits over.
        assert_eq!(unwritable.failed(Duration::from_secs(60)), Duration::from_secs(5));
        unwritable.failed(Duration::from_secs(1));
        unwritable.ended();
        assert_eq!(unwritable.until(), None, "a recording that ended otherwise waits for nothing");
        assert_eq!(unwritable.failed(Duration::from_secs(1)), Duration::from_secs(5));
    }

    #[test]
    fn a_pipeline_that_cannot_stop_is_left_behind_after_the_wait() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch("videotestsrc ! appsink name=sink emit-signals=true sync=false").unwrap();
        let pipeline = pipeline.downcast::<gst::Pipeline>().unwrap();
        let sink = pipeline.by_name("sink").unwrap();
        // The streaming thread blocks in the sink's callback until released, holding the lock
        // that going to NULL must take: the stop cannot finish meanwhile.
        let (entered, blocked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        sink.connect("new-sample", false, move |_| {
            let _ = entered.send(());
            let _ = released.lock().unwrap().recv();
            Some(gst::FlowReturn::Eos.to_value())
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        blocked.recv_timeout(Duration::from_secs(10)).expect("a frame reaches the sink");
        let started = Instant::now();
        assert!(!stop_within(&pipeline, Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(2), "the wait is bounded: {:?}", started.elapsed());
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pipeline.current_state() != gst::State::Null {
            assert!(Instant::now() < deadline, "the stop finishes once the streaming thread is free");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(stop_within(&pipeline, Duration::from_secs(5)), "a pipeline that can stop stops within the wait");
    }
}
