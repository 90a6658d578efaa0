//! The codec of sealed face videos (faceveil's default sealed layout): x264 to seal, libav's
//! H.264 decoder to open, each a small GStreamer pipeline (appsrc ! coder ! appsink) driven one
//! picture at a time from the element's streaming thread. The core library decides what is
//! coded ([`faceveil::secrets::FaceCodec`]); this is only the media I/O it leaves to us.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use faceveil::secrets::{Canvas, FaceCodec, FaceDecoder, FaceEncoder};
use gst::prelude::*;
use gst_video::prelude::*;

/// x264's constant quantizer for sealed faces, with chroma finer still: an error in U or V
/// counts about twice in R or B, which is how restored faces are seen and measured. Measured
/// with the CLI on two_faces_640x360.mp4 (scripts/sealed_size_psnr.py, face PSNR over RGB
/// against the original's decoded frames, mean / worst of 200 faces, sealed KB), restores at
/// CRF 4 with x264's macroblock tree: QP 16: 42.7 / 40.7 dB, 180 KB; QP 12: 44.6 / 43.5, 278
/// KB; QP 12 with chroma offset -6: 45.4 / 44.1, 314 KB; QP 10: 45.1 / 43.4, 354 KB; QP 11
/// with chroma -6: 45.9 / 44.7, 357 KB. With restores at CRF 4 without the tree (which starved
/// the juggler's moving face), chroma -9 and 4 references: QP 13: 45.9 / 44.7, 299 KB; QP 14:
/// 45.4 / 44.1, 261 KB. QP 13 with restores at CRF 2 without the tree (the CLI's
/// `SEALED_RESTORE_CRF`): 46.2 / 45.0, and the 06_juggler_720p.mp4 face, the hardest of the
/// clips measured, 45.4 / 43.7 (44.3 / 43.1 at QP 11, chroma -6, restores at CRF 4).
///
/// On the faces alone (each track's canvases coded by gst-launch-1.0 and compared with the
/// canvases, RGB; two_faces_640x360.mp4 and faces_720p.mp4): at equal PSNR, chroma -9 and -12
/// cost the same as -6 (-9 a little less); 4 references instead of medium's 3 take 6% fewer
/// bytes for 3% more encoder time (8 references 8%, but on the selfie's 800 px canvas, where
/// they gain nothing, twice the time); `trellis=2` 2 to 4% fewer bytes for 35% more time, left
/// out as a face can fill the frame; `ipratio=1` (keyframes at the same quantizer) no gain.
pub const SEALED_FACE_QP: u32 = 13;
const SEALED_FACE_CHROMA_QP_OFFSET: i32 = -9;
/// x264's quantizer for small faces: canvases of at most [`SMALL_FACE_CANVAS`] pixels. Their
/// bytes are few against the frame's, and fixed costs (headers, the chunk's head, nonce and tag)
/// weigh more in them, so a finer quantizer costs little: on 05_crowd_mot20-08_960x366.mp4
/// (407 faces of at most 48 px, canvases of 64 px) each step of the quantizer down from 13 to
/// 11 took 6% more bytes for 0.7 to 0.9 dB more on the faces alone (QP 11: 12% more, 1.6 dB);
/// on two_faces_640x360.mp4's larger faces 13 to 12 took 11% more for 0.7 dB. Through the
/// CLI, with restores at CRF 4, the crowd's faces were 44.2 / 41.3 dB (mean / worst, RGB) at
/// QP 13, 45.1 / 42.8 at QP 11 with chroma -6 and 3 references; now, at QP 11 and with restores
/// at CRF 2, 45.6 / 43.4.
pub const SMALL_FACE_QP: u32 = 11;
/// The quantizers a user may seal faces at (`sealed-quantizer`): x264's, less 0, which is its
/// lossless mode and `sealed-lossless`'s.
pub const SEALED_QUANTIZERS: std::ops::RangeInclusive<u32> = 1..=51;
/// The largest canvas (in pixels: 64 x 64) coded at [`SMALL_FACE_QP`].
pub const SMALL_FACE_CANVAS: usize = 64 * 64;

/// x264's reference frames for sealed faces (medium's 3 plus one), see [`SEALED_FACE_QP`].
const SEALED_FACE_REFS: u32 = 4;

/// x264's preset for sealed faces. On two_faces_640x360.mp4 `slower` made 10% fewer bytes than
/// `medium` at 0.2 dB more, but a face can fill the frame: on 07_selfie_portrait_720x1280.mp4's
/// 704 px face (gst-launch-1.0, one thread) `slower` took 90 ms of CPU a frame, `medium` 35 ms
/// for 7% more bytes, `faster` 20 ms for 12% more. Sealing runs in the stream's own thread, live
/// cameras included.
const SEALED_FACE_PRESET: &str = "medium";
/// x264's preset for large sealed faces (canvases of [`SLICED_FACE_CANVAS`] or more), coded
/// bit-exact or not: a face that fills the frame must be sealed as fast as frames come.
/// 07_selfie_portrait_720x1280.mp4 (352 frames at 30 fps, 11.7 s; canvases of 768-800 px),
/// `faceveil anonymize --recipient` twice each, alternated (2-core AMD EPYC, 2026-12-04 22:54
/// UTC): `medium` 14.69 / 14.23 s, `faster` 11.26 / 11.26 s, `veryfast` 9.83 / 10.05 s; sealed
/// bytes (`scripts/sealed_size_psnr.py`, one run each) 7.85 MB with `medium`, 9.12 MB with
/// `veryfast` (+16%), faces 47.53 / 46.80 dB and 47.34 / 46.67 dB (mean / worst, RGB); with
/// `--sealed-lossless` 14.71 / 14.40 s against 10.59 / 10.52 s, still bit-exact. docs/SECURITY.md
/// has the rest ("Large faces at x264's `veryfast`").
const LARGE_SEALED_FACE_PRESET: &str = "veryfast";

/// The smallest canvas (in pixels: 512 x 512) coded on two threads, as slices of the picture.
/// Sealing codes each face in the stream's own thread, so a face that fills much of the frame
/// held the whole frame back: on 07_selfie_portrait_720x1280.mp4 (canvases of 768-800 px) `faceveil
/// anonymize --recipient` took 24.2 s on one thread and 19.2 s on two (medians of three runs,
/// alternated, 2-core AMD EPYC, 2026-12-03; 10.9 s without sealing), for 0.3% more sealed bytes
/// (7.85 against 7.83 MB, the same PSNR). Smaller faces cost little time either way, and two
/// slices cost them more: 1.8% on faces_720p.mp4, 2.4% on two_faces_640x360.mp4.
const SLICED_FACE_CANVAS: usize = 512 * 512;

/// How long one picture may take through a coder before it counts as stuck.
const PICTURE_TIMEOUT: Duration = Duration::from_secs(10);

/// Each picture's nominal duration: the face videos have no clock of their own, and x264's
/// constant quantizer does not depend on the rate.
const PICTURE_NS: u64 = 40_000_000;

/// x264 at [`SEALED_FACE_QP`] ([`SMALL_FACE_QP`] for small faces), with no lookahead and no B-frames (`tune=zerolatency`), so each
/// face's picture comes out as it goes in; libav's decoder on one thread for the same reason.
/// On the faces alone (two_faces_640x360.mp4, as measured above), 3 B-frames and a lookahead of
/// 8 took 20% fewer bytes at 0.2 dB less on average but 1.4 dB less on the worst face; each
/// chunk would then come out up to 8 pictures (0.32 s at 25 fps: x264 holds the larger of the
/// B-frames and the lookahead; not measured through the element) after its frame, ride in a
/// later frame's record, and a restore would hold as many frames back.
///
/// [`X264Faces::lossless`] codes at quantizer 0 instead, x264's lossless mode, for bit-exact
/// faces: on a fixed 192 px square of two_faces_640x360.mp4 (100 frames, ffmpeg's x264 with
/// these settings) 550 KB, where a PNG of each frame's luma alone took 1.51 MB.
pub struct X264Faces {
    lossless: bool,
    quantizer: u32,
}

impl Default for X264Faces {
    fn default() -> Self {
        Self { lossless: false, quantizer: SEALED_FACE_QP }
    }
}

impl X264Faces {
    /// Bit-exact face videos (x264's lossless mode).
    pub fn lossless() -> Self {
        Self { lossless: true, ..Self::default() }
    }

    /// Face videos at another constant quantizer than [`SEALED_FACE_QP`], for a user who trades
    /// quality for size; small faces stay as much finer as they are by default.
    pub fn with_quantizer(quantizer: u32) -> Self {
        Self { quantizer: quantizer.max(1), ..Self::default() }
    }

    /// The quantizer of a canvas of `pixels`.
    fn quantizer_for(&self, pixels: usize) -> u32 {
        if pixels <= SMALL_FACE_CANVAS {
            self.quantizer.saturating_sub(SEALED_FACE_QP - SMALL_FACE_QP).max(1)
        } else {
            self.quantizer
        }
    }

    /// Whether the GStreamer elements that seal face videos are installed.
    pub fn available() -> Result<(), String> {
        match gst::ElementFactory::find("x264enc") {
            Some(_) => Ok(()),
            None => {
                Err("sealed face videos need x264enc (gst-plugins-ugly): install it, or seal losslessly (sealed-lossless)".into())
            }
        }
    }
}

impl FaceCodec for X264Faces {
    fn encoder(&self, width: usize, height: usize) -> Result<Box<dyn FaceEncoder>> {
        let quality = if self.lossless {
            format!("quantizer=0 option-string=ref={SEALED_FACE_REFS}")
        } else {
            let qp = self.quantizer_for(width * height);
            format!("quantizer={qp} option-string=chroma-qp-offset={SEALED_FACE_CHROMA_QP_OFFSET}:ref={SEALED_FACE_REFS}")
        };
        let large = width * height >= SLICED_FACE_CANVAS;
        let (threads, preset) = if large { (2, LARGE_SEALED_FACE_PRESET) } else { (1, SEALED_FACE_PRESET) };
        let launch = format!(
            "appsrc name=src format=time ! x264enc tune=zerolatency speed-preset={preset} pass=quant \
             {quality} psy-tune=psnr threads={threads} \
             ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false"
        );
        let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width as u32, height as u32)
            .fps(gst::Fraction::new(25, 1))
            .build()
            .context("face canvas caps")?;
        let coder = Coder::launch(&launch, &caps.to_caps()?)?;
        Ok(Box::new(Encoder { coder, info: caps }))
    }

    fn decoder(&self) -> Result<Box<dyn FaceDecoder>> {
        let launch = "appsrc name=src format=time ! avdec_h264 max-threads=1 ! video/x-raw,format=I420 \
                      ! appsink name=sink sync=false";
        let caps = gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").field("alignment", "au").build();
        Ok(Box::new(Decoder { coder: Coder::launch(launch, &caps)? }))
    }
}

/// A playing `appsrc ! ... ! appsink` pipeline that turns one buffer into one.
struct Coder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    pictures: u64,
}

impl Coder {
    fn launch(description: &str, caps: &gst::Caps) -> Result<Self> {
        let pipeline = gst::parse::launch(description)
            .with_context(|| format!("cannot build the face video pipeline (x264enc, avdec_h264): {description}"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("the face video pipeline is not a pipeline"))?;
        let named = |name: &str| pipeline.by_name(name).with_context(|| format!("face video pipeline without {name}"));
        let src = named("src")?.downcast::<gst_app::AppSrc>().map_err(|_| anyhow!("src is not an appsrc"))?;
        let sink = named("sink")?.downcast::<gst_app::AppSink>().map_err(|_| anyhow!("sink is not an appsink"))?;
        src.set_caps(Some(caps));
        pipeline.set_state(gst::State::Playing).context("cannot start the face video pipeline")?;
        Ok(Self { pipeline, src, sink, pictures: 0 })
    }

    /// Pushes `buffer` and waits for what the coder makes of it.
    fn code(&mut self, mut buffer: gst::Buffer) -> Result<gst::Sample> {
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_nseconds(self.pictures * PICTURE_NS));
            b.set_duration(gst::ClockTime::from_nseconds(PICTURE_NS));
        }
        self.pictures += 1;
        self.src.push_buffer(buffer).map_err(|e| anyhow!("the face video pipeline refused a picture: {e:?}"))?;
        self.sink.try_pull_sample(gst::ClockTime::from_nseconds(PICTURE_TIMEOUT.as_nanos() as u64)).ok_or_else(|| {
            let why = self
                .pipeline
                .bus()
                .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => Some(e.error().to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| format!("nothing came out within {} s", PICTURE_TIMEOUT.as_secs()));
            anyhow!("the face video pipeline failed: {why}")
        })
    }
}

impl Drop for Coder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

struct Encoder {
    coder: Coder,
    info: gst_video::VideoInfo,
}

impl FaceEncoder for Encoder {
    fn encode(&mut self, canvas: &Canvas, keyframe: bool) -> Result<Vec<u8>> {
        ensure!(
            (canvas.width as u32, canvas.height as u32) == (self.info.width(), self.info.height()),
            "a {}x{} canvas for a {}x{} face video",
            canvas.width,
            canvas.height,
            self.info.width(),
            self.info.height()
        );
        let mut buffer = gst::Buffer::with_size(self.info.size()).context("face canvas buffer")?;
        {
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &self.info)
                .map_err(|_| anyhow!("cannot map a face canvas"))?;
            for (i, (data, width)) in
                [(&canvas.y, canvas.width), (&canvas.u, canvas.width / 2), (&canvas.v, canvas.width / 2)].into_iter().enumerate()
            {
                let stride = frame.plane_stride()[i] as usize;
                let plane = frame.plane_data_mut(i as u32).map_err(|_| anyhow!("face canvas plane {i}"))?;
                for (row, src) in data.chunks_exact(width).enumerate() {
                    plane[row * stride..][..width].copy_from_slice(src);
                }
            }
        }
        if keyframe {
            let event = gst_video::DownstreamForceKeyUnitEvent::builder().all_headers(true).build();
            ensure!(self.coder.src.send_event(event), "x264enc did not take the request for a keyframe");
        }
        let sample = self.coder.code(buffer)?;
        let coded = sample.buffer().context("x264enc gave a sample without a buffer")?;
        // A picture that must start a sequence but depends on others would restore as garbage.
        if keyframe && coded.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            bail!("x264enc did not make the keyframe asked for");
        }
        Ok(coded.map_readable().context("x264enc's output")?.to_vec())
    }
}

struct Decoder {
    coder: Coder,
}

impl FaceDecoder for Decoder {
    fn decode(&mut self, coded: &[u8]) -> Result<Canvas> {
        let sample = self.coder.code(gst::Buffer::from_slice(coded.to_vec()))?;
        let caps = sample.caps().context("the decoder gave a picture without caps")?;
        let info = gst_video::VideoInfo::from_caps(caps).context("the decoder's picture caps")?;
        let buffer = sample.buffer().context("the decoder gave a sample without a buffer")?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| anyhow!("cannot map a decoded face picture"))?;
        let (width, height) = (info.width() as usize, info.height() as usize);
        let plane = |i: usize, w: usize, h: usize| -> Result<Vec<u8>> {
            let stride = frame.plane_stride()[i] as usize;
            let data = frame.plane_data(i as u32).map_err(|_| anyhow!("decoded face plane {i}"))?;
            Ok((0..h).flat_map(|r| &data[r * stride..][..w]).copied().collect())
        };
        Ok(Canvas {
            width,
            height,
            y: plane(0, width, height)?,
            u: plane(1, width / 2, height / 2)?,
            v: plane(2, width / 2, height / 2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The top-left `side` x `side` pixels of the astronaut photo (512 x 512, a face in its upper
    /// half) as an I420 canvas, converted as the library writes a frame (BT.601).
    fn astronaut(side: usize) -> Canvas {
        use faceveil::frame::{FrameMut, PixelFormat, Plane, YuvMatrix, rgb::RgbImage};
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/astronaut.jpg");
        // Decoded by the image crate's own code: `image::open` would compile every decoder here.
        let img = image::load_from_memory(&std::fs::read(path).unwrap()).unwrap().to_rgb8();
        let rgb =
            RgbImage::from_raw(img.width() as usize, img.height() as usize, img.into_raw()).unwrap().cropped(0, 0, side, side);
        let mut canvas = Canvas::flat(side, side);
        let half = side / 2;
        let planes = vec![
            Plane { data: &mut canvas.y, stride: side },
            Plane { data: &mut canvas.u, stride: half },
            Plane { data: &mut canvas.v, stride: half },
        ];
        let mut frame = FrameMut::new(PixelFormat::I420, side, side, YuvMatrix::Bt601, planes).unwrap();
        let whole = frame.whole();
        frame.write_region(whole, &rgb).unwrap();
        canvas
    }

    /// The NAL unit types of an H.264 byte stream, in order.
    fn nal_types(stream: &[u8]) -> Vec<u8> {
        stream.windows(4).filter(|w| w[..3] == [0, 0, 1]).map(|w| w[3] & 0x1f).collect()
    }

    #[test]
    fn small_faces_stay_finer_than_large_ones_at_any_quantizer() {
        let (small, large) = (SMALL_FACE_CANVAS, SMALL_FACE_CANVAS + 1);
        let default = X264Faces::default();
        assert_eq!((default.quantizer_for(small), default.quantizer_for(large)), (SMALL_FACE_QP, SEALED_FACE_QP));
        let coarse = X264Faces::with_quantizer(25);
        assert_eq!((coarse.quantizer_for(small), coarse.quantizer_for(large)), (23, 25));
        // Quantizer 0 would be x264's lossless mode, which is sealed-lossless's, not this.
        let finest = X264Faces::with_quantizer(0);
        assert_eq!((finest.quantizer_for(small), finest.quantizer_for(large)), (1, 1));
    }

    #[test]
    fn large_faces_are_coded_as_two_slices_and_come_back_whole() {
        gst::init().unwrap();
        let codec = X264Faces::default();
        for (side, slices) in [(512, 2), (496, 1)] {
            let canvas = astronaut(side);
            let coded = codec.encoder(side, side).unwrap().encode(&canvas, true).unwrap();
            let idr_slices = nal_types(&coded).iter().filter(|&&t| t == 5).count();
            assert_eq!(idr_slices, slices, "a {side} px canvas");
            let back = codec.decoder().unwrap().decode(&coded).unwrap();
            let squared: f64 = canvas.y.iter().zip(&back.y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
            let psnr = 10.0 * (255.0f64.powi(2) * canvas.y.len() as f64 / squared).log10();
            assert!(psnr > 45.0, "a {side} px canvas decodes whole: luma at {psnr:.1} dB");
        }
    }
}
