//! `--virtual-camera /dev/videoN`: the anonymized picture written to a v4l2loopback device with
//! `v4l2sink`, so that a video-call application that opens that device sees it as a webcam.
//!
//! source ! decode ! [leaky queue: live] ! videoconvert ! faceveildetect ! queue ! faceveil
//! ! videoconvert ! video/x-raw,format=YUY2 ! v4l2sink
//!
//! The device carries raw pixels only: the restore data (SEI, sidecar) has nowhere to go. The
//! stream header is printed instead; with `--keying stream` a recording of the call can then be
//! restored from its pixels with the password and that header.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

use crate::cli::media::colour;
use crate::cli::media::elements;
use crate::cli::media::input::{Input, StreamSource};
use crate::cli::media::video::{self, Settings};

/// What the device is given: packed 4:2:2, the format webcams deliver and every video-call
/// application (browsers' WebRTC included) reads from a camera.
const DEVICE_FORMAT: &str = "YUY2";
/// Frames a live source may hold ahead of processing; beyond that the oldest is dropped, so the
/// picture in the call stays current instead of falling behind.
const LIVE_FRAMES: u32 = 2;

/// What the user must do when the device is not a v4l2loopback output.
const LOOPBACK_HINT: &str = "load v4l2loopback first, e.g. `sudo modprobe v4l2loopback devices=1 video_nr=10 \
                             card_label=faceveil exclusive_caps=1`, and name its device (/dev/video10)";

/// Plays `input` through the anonymizer into the v4l2loopback device until the input ends, fails
/// or Ctrl-C.
pub fn run(input: &Input, device: &Path, settings: &Settings) -> Result<()> {
    elements::init()?;
    let Input::Stream(source) = input else { bail!("--virtual-camera needs a camera, a video file or an RTSP URL") };
    ensure_device(device)?;
    let sink = elements::make("v4l2sink")?;
    sink.set_property("device", device.to_str().context("the device path is not UTF-8")?);
    let (pipeline, veil) = build(source, input.is_live(), settings, sink)?;
    if let Err(e) = pipeline.set_state(gst::State::Paused) {
        let _ = pipeline.set_state(gst::State::Null);
        bail!("cannot start: {}", error(&pipeline).unwrap_or_else(|| e.to_string()));
    }
    if let Some(header) = veil.property::<Option<String>>("header") {
        println!("faceveil header: {header}");
    }
    eprintln!("faceveil: writing to the virtual camera {} (Ctrl-C to stop)", device.display());
    let result = play(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// A clear error before GStreamer's, for the usual mistakes: no such device, or a real camera.
fn ensure_device(device: &Path) -> Result<()> {
    if !device.exists() {
        bail!("{} does not exist: {LOOPBACK_HINT}", device.display());
    }
    // A v4l2loopback device names its driver in sysfs; a real camera's is another.
    let name = device.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let driver = std::fs::read_link(format!("/sys/class/video4linux/{name}/device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(driver) = driver.filter(|d| !d.contains("v4l2loopback")) {
        bail!("{} is a {driver} device, not a virtual camera: {LOOPBACK_HINT}", device.display());
    }
    Ok(())
}

/// The pipeline up to `sink`, which takes raw frames in [`DEVICE_FORMAT`]; also returns the
/// faceveil element (its header).
fn build(source: &StreamSource, live: bool, settings: &Settings, sink: gst::Element) -> Result<(gst::Pipeline, gst::Element)> {
    let pipeline = gst::Pipeline::new();
    let dec = video::add_source(&pipeline, source)?;
    let mut chain = Vec::new();
    if live {
        chain.push(
            gst::ElementFactory::make("queue")
                .property("max-size-buffers", LIVE_FRAMES)
                .property("max-size-bytes", 0u32)
                .property("max-size-time", 0u64)
                .property_from_str("leaky", "downstream")
                .build()?,
        );
    }
    chain.push(elements::make("videoconvert")?);
    chain.extend(video::as_shown()?);
    let processing = gst::ElementFactory::make("capsfilter")
        .property("caps", colour::processing_caps(None, settings.sealing.full_range()))
        .build()?;
    chain.push(processing.clone());
    let anonymizer = settings.anonymizer(None)?;
    let veil = anonymizer.last().expect("the anonymizer has elements").clone();
    chain.extend(anonymizer);
    chain.push(elements::make("videoconvert")?);
    chain.push(
        gst::ElementFactory::make("capsfilter")
            .property("caps", gst::Caps::builder("video/x-raw").field("format", DEVICE_FORMAT).build())
            .build()?,
    );
    // A file plays at its own frame rate, as a camera would; a live source goes out as it comes.
    sink.set_property("sync", !live);
    chain.push(sink);
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    let target = chain[0].static_pad("sink").expect("the chain starts with a sink pad");
    video::link_first_video(&dec, target, processing, settings.sealing.full_range());
    Ok((pipeline, veil))
}

/// Runs the pipeline to its end, its first error, or Ctrl-C.
fn play(pipeline: &gst::Pipeline) -> Result<()> {
    pipeline.set_state(gst::State::Playing).context("cannot start playing")?;
    let bus = pipeline.bus().expect("pipelines have a bus");
    while !crate::cli::stop::requested() {
        let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(200), &video::WATCHED) else {
            continue;
        };
        return match msg.view() {
            gst::MessageView::Error(e) => {
                Err(anyhow!("{}: {}", msg.src().map(|s| s.name().to_string()).unwrap_or_default(), e.error()))
            }
            gst::MessageView::Eos(_) => Ok(()),
            _ => {
                if let Some(words) = video::element_words(&msg) {
                    eprintln!("faceveil: {words}");
                }
                continue;
            }
        };
    }
    Ok(())
}

/// The first error on the bus, if any.
fn error(pipeline: &gst::Pipeline) -> Option<String> {
    let msg = pipeline.bus()?.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use faceveil::faces::effects::Mode;

    use super::*;

    fn sample() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/two_faces_640x360.mp4")
    }

    /// Every frame a pipeline hands its appsink, as (width, height, bytes).
    fn frames(pipeline: &gst::Pipeline, sink: &gst_app::AppSink) -> Vec<(i32, i32, Vec<u8>)> {
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut out = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let s = sample.caps().unwrap().structure(0).unwrap().to_owned();
            assert_eq!(s.get::<&str>("format").unwrap(), DEVICE_FORMAT);
            let map = sample.buffer().unwrap().map_readable().unwrap();
            out.push((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap(), map.to_vec()));
        }
        let bus = pipeline.bus().unwrap();
        assert!(bus.pop_filtered(&[gst::MessageType::Error]).is_none(), "the pipeline failed");
        pipeline.set_state(gst::State::Null).unwrap();
        out
    }

    /// v4l2loopback cannot be loaded here (cli/tests/integration/cli.rs tries the device itself where it can):
    /// the same pipeline, with an appsink where v4l2sink goes, must hand over every frame of a
    /// file in the device's format, faces painted over and the rest kept.
    #[test]
    fn the_virtual_camera_is_given_every_frame_anonymized_in_its_format() {
        elements::init().unwrap();
        let config = faceveil::config::Config { mode: Mode::Solid, ..faceveil::config::Config::new(PathBuf::new()) };
        let settings = Settings { config, attributes: String::new(), password: None, sealing: Default::default() };
        let source = StreamSource::File(sample());
        let appsink = || gst_app::AppSink::builder().sync(false).build();
        let sink = appsink();
        let (pipeline, _) = build(&source, false, &settings, sink.clone().upcast()).unwrap();
        assert!(sink.property::<bool>("sync"), "a file plays at its own frame rate, as a camera would");
        let anonymized = frames(&pipeline, &sink);

        // The same file, converted to the device's format without the anonymizer.
        let plain = gst::parse::launch(&format!(
            "uridecodebin uri={} ! videoconvert ! video/x-raw,format={DEVICE_FORMAT} ! appsink name=sink sync=false",
            gst::glib::filename_to_uri(sample().canonicalize().unwrap(), None).unwrap()
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let plain_sink = plain.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
        let original = frames(&plain, &plain_sink);

        assert_eq!(anonymized.len(), original.len(), "every frame reaches the device");
        assert_eq!(anonymized.len(), 100);
        for (i, ((w, h, a), (_, _, o))) in anonymized.iter().zip(&original).enumerate() {
            assert_eq!((*w, *h), (640, 360));
            // YUY2: Y U Y V, two pixels in four bytes; the luma is every other byte.
            let row = *w as usize * 2;
            let luma_diff = |rows: std::ops::Range<usize>| -> f64 {
                let (a, o) = (&a[rows.start * row..rows.end * row], &o[rows.start * row..rows.end * row]);
                a.iter().zip(o).step_by(2).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / (a.len() / 2) as f64
            };
            // Black squares over two faces change a good share of the picture...
            let painted = a.iter().zip(o).step_by(2).filter(|(x, y)| **x <= 20 && **y > 60).count();
            assert!(painted > 2000, "frame {i}: only {painted} pixels were painted over");
            // ...and leave the top rows, where there is no face, as they were.
            assert!(luma_diff(0..20) < 2.0, "frame {i}: the background changed by {:.1}", luma_diff(0..20));
        }
    }
}
