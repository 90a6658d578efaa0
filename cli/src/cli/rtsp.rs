//! `--serve-rtsp PORT`: the anonymized stream published with gst-rtsp-server at
//! rtsp://HOST:PORT/faceveil.
//!
//! Ingest and serving are separate pipelines joined by an appsrc, so that when a live source
//! drops, the ingest reconnects with backoff while clients stay connected (the picture holds).
//! A file source is played in real time and ends the stream at its end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use faceveil::pipeline::Anonymizer;
use faceveil::veil::FaceFinder;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::input::{Input, StreamSource};
use super::video::{self, SeiMap};
use faceveil::stream::SeiPayload;
use gstfaceveil::streamdata;

pub const MOUNT: &str = "/faceveil";
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Silence after which the latest frame is repeated.
const HOLD_AFTER: Duration = Duration::from_millis(500);
/// The served bitrate unless one is given, in bits per pixel of each frame: 3 Mbit/s (0.136)
/// brought the juggler clip (720p, 24 fps, fast motion) through the live encoder at 33.1 dB
/// PSNR, near what x264 at constant quality 23 gives it in a file (33.5 dB); 2 Mbit/s gave 30.9.
const AUTO_BITS_PER_PIXEL: f64 = 0.14;
/// The frame rate assumed for the bitrate when the caps do not state one (live sources).
const AUTO_FALLBACK_FPS: f64 = 30.0;

/// The served bitrate in kbit/s for frames of these caps.
fn auto_bitrate(caps: &gst::CapsRef) -> u32 {
    let Some(s) = caps.structure(0) else { return 2048 };
    let pixels = f64::from(s.get::<i32>("width").unwrap_or(1280)) * f64::from(s.get::<i32>("height").unwrap_or(720));
    let fps = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map_or(AUTO_FALLBACK_FPS, |f| f64::from(f.numer()) / f64::from(f.denom()));
    (pixels * fps * AUTO_BITS_PER_PIXEL / 1000.0).clamp(256.0, 50_000.0) as u32
}

/// What the serving side exposes to the ingest: the appsrc of the current media, if a client
/// is connected, and the payloads to put into its H.264 stream. Clients that connect before the
/// source has delivered a frame wait for it (the server cannot describe a stream it has not seen).
#[derive(Clone, Default)]
struct Outlet {
    appsrc: Arc<Mutex<Option<gst_app::AppSrc>>>,
    /// The encoder's bitrate in kbit/s, or `None` to follow the frames' size and rate.
    bitrate: Option<u32>,
    sei: SeiMap,
    /// The latest frame, its caps, its payload and when it went out: repeated while the source
    /// is away so that clients keep a picture and new clients can still connect.
    last: Arc<Mutex<Option<LastFrame>>>,
}

/// A frame as it went out: buffer, caps, SEI payload, when.
type LastFrame = (gst::Buffer, gst::Caps, Vec<u8>, Instant);

impl Outlet {
    /// Pushes one anonymized frame, stamped with the media's running time so that the SEI
    /// probe after the encoder finds its payload.
    fn push(&self, buffer: gst::Buffer, caps: &gst::Caps, payload: Vec<u8>) {
        *self.last.lock().unwrap() = Some((buffer.clone(), caps.clone(), payload.clone(), Instant::now()));
        self.send(buffer, caps, payload);
    }

    /// Repeats the latest frame if the source has been silent for a while.
    fn keep_alive(&self) {
        let mut last = self.last.lock().unwrap();
        let Some((buffer, caps, payload, at)) = last.as_mut() else { return };
        if at.elapsed() < HOLD_AFTER {
            return;
        }
        *at = Instant::now();
        let (buffer, caps, payload) = (buffer.clone(), caps.clone(), payload.clone());
        drop(last);
        self.send(buffer, &caps, payload);
    }

    fn send(&self, mut buffer: gst::Buffer, caps: &gst::Caps, payload: Vec<u8>) {
        let Some(src) = self.appsrc.lock().unwrap().clone() else { return };
        if src.caps().as_ref() != Some(caps) {
            let encoder = src.parent().and_then(|p| p.downcast::<gst::Bin>().ok()).and_then(|b| b.by_name("enc"));
            if let Some(encoder) = encoder {
                encoder.set_property("bitrate", self.bitrate.unwrap_or_else(|| auto_bitrate(caps)));
            }
            src.set_caps(Some(caps));
        }
        let (Some(clock), Some(base)) = (src.clock(), src.base_time()) else { return };
        let now = clock.time().saturating_sub(base);
        {
            let b = buffer.make_mut();
            b.set_pts(now);
            b.set_dts(gst::ClockTime::NONE);
            b.set_duration(gst::ClockTime::NONE);
        }
        self.sei.lock().unwrap().insert(now.nseconds(), payload);
        let _ = src.push_buffer(buffer);
    }

    fn end(&self) {
        if let Some(src) = self.appsrc.lock().unwrap().as_ref() {
            let _ = src.end_of_stream();
        }
    }
}

fn start_server(port: u16, outlet: &Outlet) -> Result<(gst_rtsp_server::RTSPServer, gst::glib::SourceId)> {
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_service(&port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    // Live x264 (no lookahead, no B-frames) refreshes the picture by intra-coded columns instead
    // of a keyframe every 30 frames: without lookahead the keyframes starve the frames after
    // them. At 2 Mbit/s on the juggler clip (720p, fast motion) that took the stream from 28.4
    // to 30.9 dB PSNR, with `superfast` instead of `ultrafast` for about 1 ms more encoder time
    // a frame (4.0 against 3.1 ms).
    // A client joining midway sees its first whole picture after one full refresh (30 to 60
    // frames); the bitrate is set on the encoder when the frames' caps are known.
    factory.set_launch(
        "( appsrc name=src is-live=true format=time ! queue ! videoconvert ! video/x-raw,format=I420 \
         ! x264enc name=enc tune=zerolatency psy-tune=psnr speed-preset=superfast key-int-max=30 intra-refresh=true ! h264parse \
         ! rtph264pay name=pay0 pt=96 config-interval=1 )",
    );
    factory.set_shared(true);
    let slot = outlet.clone();
    factory.connect_media_configure(move |_, media| {
        let Ok(bin) = media.element().downcast::<gst::Bin>() else { return };
        let Some(src) = bin.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()) else { return };
        if let Some(parse) = bin.by_name("enc").and_then(|e| e.static_pad("src")) {
            video::insert_sei(&parse, slot.sei.clone());
        }
        *slot.appsrc.lock().unwrap() = Some(src);
        let gone = slot.appsrc.clone();
        media.connect_unprepared(move |_| *gone.lock().unwrap() = None);
    });
    server.mount_points().context("RTSP server has no mount points")?.add_factory(MOUNT, factory);
    let id = server.attach(None).context("cannot listen for RTSP clients (port in use?)")?;
    Ok((server, id))
}

/// What the ingest runs on each frame.
struct Work {
    finder: FaceFinder,
    anonymizer: Anonymizer,
}

enum IngestEnd {
    /// A file ended: the stream ends too.
    Finished,
    /// The source dropped or failed: a live one is tried again, a file's failure is final.
    Dropped(anyhow::Error),
}

/// Runs the source once: decode, anonymize, hand frames to the outlet.
fn ingest_once(source: &StreamSource, live: bool, work: &mut Work, outlet: &Outlet, frames: &AtomicU64) -> IngestEnd {
    let result = (|| -> Result<IngestEnd> {
        let pipeline = gst::Pipeline::new();
        let dec = video::add_source(&pipeline, source)?;
        let sink = gst_app::AppSink::builder().sync(!live).max_buffers(2).drop(live).build();
        let convert = video::make("videoconvert")?;
        let filter = gst::ElementFactory::make("capsfilter")
            .property("caps", gst::Caps::builder("video/x-raw").field("format", "I420").build())
            .build()?;
        pipeline.add_many([&convert, &filter, sink.upcast_ref()])?;
        gst::Element::link_many([&convert, &filter, sink.upcast_ref()])?;
        let target = convert.static_pad("sink").expect("videoconvert has a sink");
        dec.connect_pad_added(move |_, pad| {
            let is_video =
                pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/"))).unwrap_or(false);
            if is_video && !target.is_linked() {
                let _ = pad.link(&target);
            }
        });
        pipeline.set_state(gst::State::Playing).context("cannot start the source")?;
        let bus = pipeline.bus().expect("pipelines have a bus");
        let mut announced = false;
        let end = loop {
            if super::stop::requested() {
                break IngestEnd::Finished;
            }
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
                break match msg.view() {
                    gst::MessageView::Error(e) if live => IngestEnd::Dropped(anyhow!("{}", e.error())),
                    gst::MessageView::Error(e) => bail!("{}", e.error()),
                    _ if live => IngestEnd::Dropped(anyhow!("the source ended")),
                    _ => IngestEnd::Finished,
                };
            }
            let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) else { continue };
            let (Some(caps), Some(buffer)) = (sample.caps().map(|c| c.to_owned()), sample.buffer_owned()) else { continue };
            let mut buffer = buffer;
            let info = gst_video::VideoInfo::from_caps(&caps)?;
            frames.fetch_add(1, Ordering::SeqCst);
            if !announced {
                announced = true;
                eprintln!("faceveil: source connected ({}x{})", info.width(), info.height());
            }
            let payload = {
                let buf = buffer.make_mut();
                let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
                    .map_err(|_| anyhow!("cannot map a video frame"))?;
                let mut view = streamdata::frame_view(&mut frame).map_err(|e| anyhow!(e))?;
                let tracks = work.finder.find(&view)?.to_vec();
                let outcome = work.anonymizer.process(&mut view, &tracks, None)?;
                match work.anonymizer.header() {
                    Some(header) => SeiPayload::for_frame(&outcome.record, header),
                    None => SeiPayload { header: None, record: Some(outcome.record) },
                }
                .encode()
            };
            outlet.push(buffer, &caps, payload);
        };
        let _ = pipeline.set_state(gst::State::Null);
        Ok(end)
    })();
    // A failure of a live source is a drop to recover from; the caller decides.
    result.unwrap_or_else(IngestEnd::Dropped)
}

pub fn serve(input: &Input, port: u16, bitrate: Option<u32>, finder: FaceFinder, anonymizer: Anonymizer) -> Result<()> {
    video::init()?;
    let Input::Stream(source) = input else { bail!("--serve-rtsp needs a video file, an RTSP URL or a camera") };
    if let Some(h) = anonymizer.header() {
        // Restores also find it in the stream's SEI; printed for tools that lose SEI.
        println!("faceveil header: {}", h.encode());
    }
    let outlet = Outlet { bitrate, ..Outlet::default() };
    let (_server, _id) = start_server(port, &outlet)?;
    println!("serving rtsp://127.0.0.1:{port}{MOUNT} (Ctrl-C to stop)");
    let main_loop = gst::glib::MainLoop::new(None, false);
    let live = input.is_live();
    if live {
        let outlet = outlet.clone();
        std::thread::spawn(move || {
            loop {
                outlet.keep_alive();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    let ingest = {
        let (source, outlet, main_loop) = (source.clone(), outlet.clone(), main_loop.clone());
        std::thread::spawn(move || -> Result<()> {
            let mut work = Work { finder, anonymizer };
            let frames = AtomicU64::new(0);
            let mut backoff = BACKOFF_START;
            // Wait for a first client: a file played before anyone listens is lost.
            while outlet.appsrc.lock().unwrap().is_none() && !live && !super::stop::requested() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let outcome = loop {
                let before = frames.load(Ordering::SeqCst);
                match ingest_once(&source, live, &mut work, &outlet, &frames) {
                    IngestEnd::Finished => break Ok(()),
                    IngestEnd::Dropped(_) if super::stop::requested() => break Ok(()),
                    IngestEnd::Dropped(e) if live => {
                        if frames.load(Ordering::SeqCst) > before {
                            backoff = BACKOFF_START;
                        }
                        eprintln!("faceveil: source dropped ({e:#}); reconnecting in {:.1} s", backoff.as_secs_f64());
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        work.finder.reset();
                    }
                    IngestEnd::Dropped(e) => break Err(e),
                }
            };
            outlet.end();
            // Let clients receive the end of stream before the server goes.
            std::thread::sleep(Duration::from_millis(500));
            main_loop.quit();
            outcome
        })
    };
    main_loop.run();
    ingest.join().map_err(|_| anyhow!("the ingest thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(width: i32, height: i32, fps: Option<(i32, i32)>) -> gst::Caps {
        gst::init().unwrap();
        let mut b = gst::Caps::builder("video/x-raw").field("width", width).field("height", height);
        if let Some((n, d)) = fps {
            b = b.field("framerate", gst::Fraction::new(n, d));
        }
        b.build()
    }

    #[test]
    fn the_served_bitrate_follows_frame_size_and_rate() {
        let hd = auto_bitrate(&caps(1280, 720, Some((24, 1))));
        assert_eq!(hd, 3096, "1280 x 720 x 24 fps x 0.14 bit");
        assert!(auto_bitrate(&caps(1920, 1080, Some((30, 1)))) > 2 * hd);
        assert!(auto_bitrate(&caps(640, 360, Some((25, 1)))) < hd / 3);
        // A live source without a stated rate counts as 30 fps; a tiny one keeps a usable floor.
        assert_eq!(auto_bitrate(&caps(1280, 720, Some((0, 1)))), auto_bitrate(&caps(1280, 720, Some((30, 1)))));
        assert_eq!(auto_bitrate(&caps(1280, 720, None)), auto_bitrate(&caps(1280, 720, Some((30, 1)))));
        assert_eq!(auto_bitrate(&caps(64, 48, Some((15, 1)))), 256);
    }
}
