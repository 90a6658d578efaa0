//! Pictures as videos: an animated GIF or WebP, or a still picture handed to a video output or a
//! `serve` camera, decoded by the image crate and fed to the pipeline through an appsrc.
//! GStreamer 1.22's own decoders are not used for them: libav's GIF demuxer never sends the end
//! of a GIF (still or animated), so a run would spin forever, and avdec_bmp and avdec_tiff decode
//! no frame of the BMP and TIFF files the image crate reads.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, sync_channel};

use anyhow::{Result, bail};
use gst::prelude::*;
use image::{AnimationDecoder, ImageFormat};

use crate::cli::media::input::Picture;

/// Frames decoded ahead of the pipeline: enough to keep it busy, few enough to bound memory
/// (an RGBA frame of a 4K animation is 33 MB).
const DECODED_AHEAD: usize = 2;

/// Browsers show a GIF frame whose delay is under 20 ms (many say 0 or 10 ms, meaning "as fast
/// as possible") for 100 ms; so do these videos, which then play as the GIF did on the web.
const SHORTEST_DELAY_MS: f64 = 20.0;
const DEFAULT_DELAY_MS: f64 = 100.0;

/// One decoded frame: RGBA pixels, their size and how long they are shown.
struct Frame {
    rgba: Vec<u8>,
    width: u32,
    height: u32,
    delay_ms: f64,
}

/// Adds an appsrc that plays `path` and a decodebin behind it, whose pad carries the raw video
/// as uridecodebin's would; returns the decodebin.
pub fn add_source(pipeline: &gst::Pipeline, path: &Path, picture: Picture) -> Result<gst::Element> {
    let frames = decode_in_background(path.to_path_buf(), picture);
    // The first frame gives the size (an animation's frames all have its canvas's) and, by its
    // delay, the nominal rate: with none (0/1) x264enc and mp4mux lose a frame of a 10-frame GIF.
    // Each frame still lasts as long as its own delay says.
    let first = match frames.recv() {
        Ok(Ok(frame)) => frame,
        Ok(Err(e)) => bail!("cannot decode frame 1 of {}: {e}", path.display()),
        Err(_) => bail!("{} has no frame", path.display()),
    };
    let (width, height) = (first.width, first.height);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGBA")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::approximate_f64(1000.0 / first.delay_ms).unwrap_or(gst::Fraction::new(0, 1)))
        .build();
    let src = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).is_live(false).build();
    let dec = gst::ElementFactory::make("decodebin").build()?;
    pipeline.add_many([src.upcast_ref(), &dec])?;
    src.link(&dec)?;
    let frames = Mutex::new((Some(first), frames));
    let (mut pts, mut pushed) = (gst::ClockTime::ZERO, 0u64);
    src.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| {
                let (first, rest) = &mut *frames.lock().unwrap();
                match first.take().map(Ok).map_or_else(|| rest.recv(), Ok) {
                    Ok(Ok(frame)) if (frame.width, frame.height) == (width, height) => {
                        let duration = gst::ClockTime::from_nseconds((frame.delay_ms * 1e6).round() as u64);
                        let mut buffer = gst::Buffer::from_mut_slice(frame.rgba);
                        let b = buffer.get_mut().expect("a new buffer is writable");
                        b.set_pts(pts);
                        b.set_duration(duration);
                        pts += duration;
                        pushed += 1;
                        let _ = src.push_buffer(buffer);
                    }
                    Ok(Ok(_)) => {
                        gst::element_error!(
                            src,
                            gst::StreamError::Decode,
                            ("frame {} of the picture has another size than the first", pushed + 1)
                        );
                    }
                    Ok(Err(e)) => gst::element_error!(
                        src,
                        gst::StreamError::Decode,
                        ("cannot decode frame {} of the picture: {e}", pushed + 1)
                    ),
                    Err(_) => {
                        let _ = src.end_of_stream();
                    }
                }
            })
            .build(),
    );
    Ok(dec)
}

/// Decodes the frames on a thread of their own (the decoders' frame iterators cannot move
/// between threads, as the appsrc's callback does); the channel closes after the last.
fn decode_in_background(path: PathBuf, picture: Picture) -> Receiver<image::ImageResult<Frame>> {
    let (tx, rx) = sync_channel(DECODED_AHEAD);
    std::thread::Builder::new()
        .name("faceveil-picture".into())
        .spawn(move || {
            let send_all = |frames: &mut dyn Iterator<Item = image::ImageResult<Frame>>| {
                for frame in frames {
                    let failed = frame.is_err();
                    // The receiver is gone when the pipeline stopped early: nothing more to do.
                    if tx.send(frame).is_err() || failed {
                        return;
                    }
                }
            };
            match frames(&path, picture) {
                Ok(mut frames) => send_all(&mut frames),
                Err(e) => send_all(&mut std::iter::once(Err(e))),
            }
        })
        .expect("a thread can be started");
    rx
}

fn frames(path: &Path, picture: Picture) -> image::ImageResult<Box<dyn Iterator<Item = image::ImageResult<Frame>>>> {
    let reader = || -> image::ImageResult<BufReader<std::fs::File>> { Ok(BufReader::new(std::fs::File::open(path)?)) };
    let animation: image::Frames<'static> = match picture {
        Picture::Animated(ImageFormat::Gif) => image::codecs::gif::GifDecoder::new(reader()?)?.into_frames(),
        Picture::Animated(ImageFormat::WebP) => image::codecs::webp::WebPDecoder::new(reader()?)?.into_frames(),
        _ => {
            let still = image::ImageReader::new(reader()?).with_guessed_format()?.decode()?.into_rgba8();
            let (width, height) = still.dimensions();
            let frame = Frame { rgba: still.into_raw(), width, height, delay_ms: DEFAULT_DELAY_MS };
            return Ok(Box::new(std::iter::once(Ok(frame))));
        }
    };
    Ok(Box::new(animation.map(|frame| {
        let frame = frame?;
        let (numer, denom) = frame.delay().numer_denom_ms();
        let delay_ms = numer as f64 / denom.max(1) as f64;
        let delay_ms = if delay_ms < SHORTEST_DELAY_MS { DEFAULT_DELAY_MS } else { delay_ms };
        let rgba = frame.into_buffer();
        let (width, height) = rgba.dimensions();
        Ok(Frame { rgba: rgba.into_raw(), width, height, delay_ms })
    })))
}
