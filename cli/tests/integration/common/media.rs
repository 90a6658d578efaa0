//! Decoding and inspecting media files in tests, through GStreamer.
#![allow(dead_code)]

use std::path::Path;

use faceveil::frame::rgb::RgbImage;
use gst::prelude::*;
use gst_app::AppSink;

pub struct Decoded {
    pub frames: Vec<RgbImage>,
    pub pts: Vec<u64>,
}

/// Every video frame of a file as RGB, with its timestamps.
pub fn decode(path: &Path) -> Decoded {
    let pipeline = pipeline(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        path.display()
    ));
    let sink = pipeline.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Decoded { frames: Vec::new(), pts: Vec::new() };
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(LAUNCH_LIMIT_S)) {
        let caps = sample.caps().unwrap();
        let info = gst_video::VideoInfo::from_caps(caps).unwrap();
        let buf = sample.buffer().unwrap();
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, &info).unwrap();
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = info.stride()[0] as usize;
        let data = frame.plane_data(0).unwrap();
        let mut img = RgbImage::new(w, h);
        for y in 0..h {
            img.row_mut(y).copy_from_slice(&data[y * stride..y * stride + w * 3]);
        }
        out.frames.push(img);
        out.pts.push(buf.pts().map(|t| t.nseconds()).unwrap_or(0));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Stream types of a file per gst-discoverer ("video", "audio").
pub fn stream_kinds(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("gst-discoverer-1.0").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            ["video #", "audio #"].iter().find(|p| l.starts_with(**p)).map(|p| p.trim_end_matches(" #").to_string())
        })
        .collect()
}

/// The longest a test pipeline may run (the longest, a 10 s clip through x264, takes a few).
const LAUNCH_LIMIT_S: u64 = 300;

/// A pipeline from a gst-launch description.
fn pipeline(desc: &str) -> gst::Pipeline {
    gst::init().unwrap();
    gst::parse::launch(desc).unwrap().downcast::<gst::Pipeline>().unwrap()
}

/// Waits for a playing pipeline's end and stops it; panics, naming `what`, on an error or where
/// none comes within [`LAUNCH_LIMIT_S`]: a pipeline that hangs fails the test instead of holding
/// the suite.
fn finish(pipeline: &gst::Pipeline, what: &str) {
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(LAUNCH_LIMIT_S), &[gst::MessageType::Eos, gst::MessageType::Error])
        .unwrap_or_else(|| panic!("{what}: no end within {LAUNCH_LIMIT_S} s"));
    pipeline.set_state(gst::State::Null).unwrap();
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{what}: {}", e.error());
    }
}

/// Runs a gst-launch description to completion.
pub fn launch(desc: &str) {
    let pipeline = pipeline(desc);
    pipeline.set_state(gst::State::Playing).unwrap();
    finish(&pipeline, desc);
}

/// A 640x360 H.264 MP4 at `path` of `frames` frames of a moving ball at `fps`: a long stream to
/// serve, with no face.
pub fn moving_ball(path: &Path, frames: u32, fps: u32) {
    launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=640,height=360,framerate={fps}/1 \
         ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
        path.display()
    ));
}

/// An MP4 at `path` as the CLI records a live source (fragments of a second, the first one's
/// index in front, the whole finished at the end), 30 fps with B-pictures, left unfinished as a
/// killed writer leaves it: `frames` frames coded, the end of stream kept from the muxer, the
/// pipeline stopped. Only its whole fragments are in the file.
pub fn unfinished_fragmented_mp4(path: &Path, frames: u32) {
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc bframes=2 b-adapt=false key-int-max=30 ! h264parse name=parse \
         ! mp4mux fragment-duration=1000 fragment-mode=first-moov-then-finalise ! filesink location={}",
        path.display()
    );
    let pipeline = pipeline(&desc);
    let (ended, end) = std::sync::mpsc::channel();
    let ended = std::sync::Mutex::new(ended);
    let parse = pipeline.by_name("parse").unwrap();
    // The end of stream held back by blocking the pad until the pipeline stops, not dropped:
    // GStreamer 1.22 unrefs a null event where a probe drops a sticky one.
    let block = gst::PadProbeType::BLOCK | gst::PadProbeType::EVENT_DOWNSTREAM;
    parse.static_pad("src").unwrap().add_probe(block, move |_, probe| {
        if let Some(gst::PadProbeData::Event(e)) = &probe.data
            && e.type_() == gst::EventType::Eos
        {
            let _ = ended.lock().unwrap().send(());
            return gst::PadProbeReturn::Ok;
        }
        gst::PadProbeReturn::Pass
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    end.recv_timeout(std::time::Duration::from_secs(60)).expect("the frames are coded within a minute");
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Encodes `frames` (all of one size) as a new H.264 MP4 at `fps`, timed from 0: a video made
/// again from pictures, as an editor exports it, with none of the stream data it came with.
pub fn encode(frames: &[RgbImage], fps: i32, path: &Path) {
    encode_through(frames, fps, path, "videoconvert ! x264enc ! mp4mux");
}

/// Encodes `frames` (RGB, all of one size) at `fps`, timed from 0, through `chain` (a gst-launch
/// description from raw RGB to a muxer) into `path`.
pub fn encode_through(frames: &[RgbImage], fps: i32, path: &Path, chain: &str) {
    let pipeline = pipeline(&format!("appsrc name=src format=time ! {chain} ! filesink location=\"{}\"", path.display()));
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let (w, h) = (frames[0].width, frames[0].height);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w as u32, h as u32)
        .fps(gst::Fraction::new(fps, 1))
        .build()
        .unwrap();
    src.set_caps(Some(&info.to_caps().unwrap()));
    pipeline.set_state(gst::State::Playing).unwrap();
    let frame_ns = 1_000_000_000 / fps as u64;
    for (i, img) in frames.iter().enumerate() {
        let mut buf = gst::Buffer::with_size(info.size()).unwrap();
        {
            let buf = buf.get_mut().unwrap();
            buf.set_pts(gst::ClockTime::from_nseconds(i as u64 * frame_ns));
            buf.set_duration(gst::ClockTime::from_nseconds(frame_ns));
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info).unwrap();
            let stride = info.stride()[0] as usize;
            let data = frame.plane_data_mut(0).unwrap();
            for y in 0..h {
                data[y * stride..y * stride + w * 3].copy_from_slice(img.row(y));
            }
        }
        src.push_buffer(buf).unwrap();
    }
    src.end_of_stream().unwrap();
    finish(&pipeline, &format!("encoding {}", path.display()));
}

/// Copies the coded pictures of an H.264 MP4 without B-frames from picture `from` on (a keyframe)
/// into a new MP4, without decoding them, as `ffmpeg -ss T -c copy` cuts: the SEI each picture
/// carries goes along, and nothing else does.
pub fn cut_coded(input: &Path, output: &Path, from: usize) {
    let reader = pipeline(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! appsink name=sink sync=false",
        input.display()
    ));
    let sink = reader.by_name("sink").unwrap().downcast::<AppSink>().unwrap();
    reader.set_state(gst::State::Playing).unwrap();
    let mut samples = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(LAUNCH_LIMIT_S)) {
        samples.push(sample);
    }
    reader.set_state(gst::State::Null).unwrap();
    let first = samples[from].buffer().unwrap();
    assert!(!first.flags().contains(gst::BufferFlags::DELTA_UNIT), "picture {from} is not a keyframe");
    let start = first.pts().unwrap();
    let writer =
        pipeline(&format!("appsrc name=src format=time ! h264parse ! mp4mux ! filesink location=\"{}\"", output.display()));
    let src = writer.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    src.set_caps(Some(&samples[0].caps().unwrap().to_owned()));
    writer.set_state(gst::State::Playing).unwrap();
    for sample in &samples[from..] {
        let mut buffer = sample.buffer().unwrap().copy();
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(b.pts().map(|t| t - start));
            b.set_dts(b.dts().map(|t| t.saturating_sub(start)));
        }
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    finish(&writer, &format!("cutting {}", input.display()));
}
