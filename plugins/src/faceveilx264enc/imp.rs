//! faceveilx264enc: H.264 by libx264 at constant quality, with the faces that `faceveil`
//! recorded in each frame (its SEI meta) coded some quantizer steps finer than the rest. A
//! password restore multiplies the codec's error on a surrogate, so the faces' bits are what it
//! needs (models/sdn/MODEL_CARD.md, "The restore after CRF 23"); GStreamer 1.22's x264enc takes
//! no offset per macroblock. Otherwise it codes as the CLI has x264enc code files: `veryfast`
//! (B-frames included), tuned for PSNR, diamond motion search, no rate ceiling; or as faceveil
//! records and serves live streams (`coding`): at a bitrate or under a ceiling, keyframes or
//! intra refresh at a set spacing and on request.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use faceveil::faces::geometry::CropSquare;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use crate::{streamdata, x264};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceveilx264enc", gst::DebugColorFlags::empty(), Some("x264 with finer faces")));

const DEFAULT_QUANTIZER: u32 = 23;
const DEFAULT_FACES_FINER: u32 = 6;
const DEFAULT_RATE_CONTROL: RateControl = RateControl::Quality;
const DEFAULT_BITRATE: u32 = 0;
const DEFAULT_CODING: Coding = Coding::File;
const DEFAULT_KEY_INT_MAX: u32 = 0;
const DEFAULT_INTRA_REFRESH: bool = false;
/// x264's rate buffer in milliseconds of the bitrate, as x264enc's `vbv-buf-capacity` default.
const DEFAULT_VBV_BUF_CAPACITY: u32 = 600;
/// x264's macroblocks, to which the offsets apply.
const MB: u32 = 16;
/// Faces whose square is at most this many pixels get all of `faces-finer`, and those from
/// [`FINER_NONE_FROM`] none, linearly between: the codec's error on a face smaller than the
/// model's 128 px grid is what a restore magnifies, while a large face restores from a CRF 23
/// file at about 29-30 dB anyway, and coding it finer would multiply the file (2026-12-06: the
/// selfie 3.3 times, for 4 dB it did not need).
const FINER_FULL_UNTIL: f32 = 128.0;
const FINER_NONE_FROM: f32 = 256.0;

/// The pictures' rate as the caps give it; 25 a second where they give none (a live source).
fn frame_rate(info: &gst_video::VideoInfo) -> (i32, i32) {
    match info.fps() {
        f if f.numer() > 0 => (f.numer(), f.denom()),
        _ => (25, 1),
    }
}

/// What the stream is coded for.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFaceVeilX264EncCoding")]
pub enum Coding {
    #[enum_value(name = "A file: veryfast with B-frames and lookahead, the cheapest motion search", nick = "file")]
    File = 0,
    #[enum_value(
        name = "A live source written to a file: superfast with lookahead, no B-frames (a live source's first times are irregular, from which x264 derives decoding times)",
        nick = "live-recording"
    )]
    LiveRecording = 1,
    #[enum_value(name = "Live viewers: nothing held back (zerolatency: no lookahead, no B-frames), superfast", nick = "live")]
    Live = 2,
}

/// What holds the stream's rate.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFaceVeilX264EncRateControl")]
pub enum RateControl {
    #[enum_value(name = "Constant quality (quantizer), under bitrate where one is given", nick = "quality")]
    Quality = 0,
    #[enum_value(name = "An average bitrate, never above it over x264's rate buffer", nick = "bitrate")]
    Bitrate = 1,
}

#[derive(Clone)]
struct Settings {
    quantizer: u32,
    faces_finer: u32,
    rate_control: RateControl,
    bitrate: u32,
    vbv_buf_capacity: u32,
    coding: Coding,
    key_int_max: u32,
    intra_refresh: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            quantizer: DEFAULT_QUANTIZER,
            faces_finer: DEFAULT_FACES_FINER,
            rate_control: DEFAULT_RATE_CONTROL,
            bitrate: DEFAULT_BITRATE,
            vbv_buf_capacity: DEFAULT_VBV_BUF_CAPACITY,
            coding: DEFAULT_CODING,
            key_int_max: DEFAULT_KEY_INT_MAX,
            intra_refresh: DEFAULT_INTRA_REFRESH,
        }
    }
}

impl Settings {
    /// x264's settings for pictures of `info`.
    fn x264(&self, info: &gst_video::VideoInfo) -> Result<x264::Settings, String> {
        let csp = match info.format() {
            gst_video::VideoFormat::Y444 => x264::CSP_I444,
            _ => x264::CSP_I420,
        };
        let (num, den) = frame_rate(info);
        let mut options = vec![
            ("fps", format!("{num}/{den}")),
            ("force-cfr", "1".into()),
            ("annexb", "1".into()),
            ("repeat-headers", "1".into()),
            // Offsets per macroblock need adaptive quantization on. At strength 0 it adds only
            // them, but x264 keeps it on at 0 only for its macroblock tree, which `veryfast`
            // has and `superfast` has not (nor zerolatency's lookahead): there it takes the
            // offsets at a strength of a hundredth (the variance's own under a tenth of a step).
            ("aq-mode", "1".into()),
            ("aq-strength", if self.coding == Coding::File { "0" } else { "0.01" }.into()),
            ("log", "-1".into()),
        ];
        options.extend(FaceVeilX264Enc::colour_options(info));
        match self.rate_control {
            RateControl::Quality => options.push(("crf", self.quantizer.to_string())),
            RateControl::Bitrate if self.bitrate == 0 => return Err("rate-control=bitrate needs a bitrate".into()),
            RateControl::Bitrate => options.push(("bitrate", self.bitrate.to_string())),
        }
        if self.bitrate > 0 {
            options.push(("vbv-maxrate", self.bitrate.to_string()));
            let kbit = u64::from(self.bitrate) * u64::from(self.vbv_buf_capacity) / 1000;
            options.push(("vbv-bufsize", kbit.max(1).to_string()));
        }
        if self.key_int_max > 0 {
            options.push(("keyint", self.key_int_max.to_string()));
        }
        if self.intra_refresh {
            options.push(("intra-refresh", "1".into()));
        }
        // As the CLI has had x264enc code each (cli/src/cli/media/encoder.rs, where each
        // choice is measured).
        let (preset, tune) = match self.coding {
            Coding::File => {
                options.push(("me", "dia".into()));
                options.push(("subme", "1".into()));
                ("veryfast", "psnr")
            }
            Coding::LiveRecording => {
                options.push(("bframes", "0".into()));
                ("superfast", "psnr")
            }
            Coding::Live => ("superfast", "psnr,zerolatency"),
        };
        Ok(x264::Settings { width: info.width(), height: info.height(), csp, preset, tune, options })
    }
}

struct State {
    encoder: x264::Encoder,
    info: gst_video::VideoInfo,
    finer: f32,
    /// Whether a keyframe asked for is a new intra refresh rather than an IDR picture.
    intra_refresh: bool,
    /// Each picture given to x264 that has not been decoded yet, by number (x264 counts time
    /// in pictures here): a coded picture's decoding time is the showing time of the picture
    /// its decoding number names.
    shown: VecDeque<(i64, gst::ClockTime)>,
    /// One picture's time, for decoding times before the first picture's.
    picture_time: gst::ClockTime,
}

/// Where the element asks the base class to move the first frame's time (and the segment with
/// it, so running times stay), so that the decoding times before it, which B-frames need, are
/// not negative: as x264enc does.
const MIN_PTS: gst::ClockTime = gst::ClockTime::from_seconds(1000 * 60 * 60);

impl State {
    /// The decoding time x264 gave a picture as a number.
    fn decoding_time(&mut self, number: i64) -> Option<gst::ClockTime> {
        while self.shown.len() > 1 && self.shown[1].0 <= number {
            self.shown.pop_front();
        }
        let &(first, time) = self.shown.front()?;
        let before = u64::try_from(first - number).unwrap_or(0);
        time.checked_sub(self.picture_time * before)
    }
}

#[derive(Default)]
pub struct FaceVeilX264Enc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl FaceVeilX264Enc {
    /// x264's names for the input's colorimetry, so that players convert as the source meant.
    fn colour_options(info: &gst_video::VideoInfo) -> Vec<(&'static str, String)> {
        use gst_video::{VideoColorMatrix as M, VideoColorPrimaries as P, VideoColorRange as R};
        let c = info.colorimetry();
        let mut options = vec![("fullrange", if c.range() == R::Range0_255 { "on" } else { "off" }.to_string())];
        let matrix = match c.matrix() {
            M::Bt709 => Some("bt709"),
            M::Bt601 => Some("smpte170m"),
            M::Bt2020 => Some("bt2020nc"),
            _ => None,
        };
        let primaries = match c.primaries() {
            P::Bt709 => Some("bt709"),
            P::Bt470bg => Some("bt470bg"),
            P::Smpte170m => Some("smpte170m"),
            P::Bt2020 => Some("bt2020"),
            _ => None,
        };
        options.extend(matrix.map(|m| ("colormatrix", m.to_string())));
        options.extend(primaries.map(|p| ("colorprim", p.to_string())));
        options
    }

    /// The quantizer offset of each macroblock: up to `finer` steps down over the squares of the
    /// faces the frame's faceveil record names, by their size; `None` where it names none.
    fn offsets(buffer: &gst::BufferRef, info: &gst_video::VideoInfo, finer: f32) -> Option<Vec<f32>> {
        let record = streamdata::read_sei(buffer)?.ok()?.record?;
        if record.faces.is_empty() || finer == 0.0 {
            return None;
        }
        let (mbw, mbh) = (info.width().div_ceil(MB) as usize, info.height().div_ceil(MB) as usize);
        let mut offsets = vec![0.0f32; mbw * mbh];
        for face in &record.faces {
            let CropSquare { cx, cy, side } = face.crop();
            let share = ((FINER_NONE_FROM - side) / (FINER_NONE_FROM - FINER_FULL_UNTIL)).clamp(0.0, 1.0);
            if share == 0.0 {
                continue;
            }
            let mb = |v: f32, n: usize| ((v / MB as f32).floor().max(0.0) as usize).min(n);
            let (x0, x1) = (mb(cx - side / 2.0, mbw), mb(cx + side / 2.0, mbw - 1) + 1);
            let (y0, y1) = (mb(cy - side / 2.0, mbh), mb(cy + side / 2.0, mbh - 1) + 1);
            for y in y0..y1 {
                for o in &mut offsets[y * mbw + x0..y * mbw + x1] {
                    // Where faces overlap, the finer of them.
                    *o = o.min(-finer * share);
                }
            }
        }
        Some(offsets)
    }

    /// Hands each coded picture to its frame and on downstream, with its decoding time.
    fn push_coded(&self, coded: x264::Coded) -> Result<gst::FlowSuccess, gst::FlowError> {
        let dts = self.state.lock().unwrap().as_mut().and_then(|s| s.decoding_time(coded.dts));
        let obj = self.obj();
        let Some(mut frame) = obj.frame(coded.number as i32) else {
            gst::debug!(CAT, imp = self, "picture {} has no frame (flushed)", coded.number);
            return Ok(gst::FlowSuccess::Ok);
        };
        if coded.keyframe {
            frame.set_flags(gst_video::VideoCodecFrameFlags::SYNC_POINT);
        }
        frame.set_dts(dts);
        frame.set_output_buffer(gst::Buffer::from_mut_slice(coded.data));
        obj.finish_frame(frame)
    }

    fn fail(&self, why: String) -> gst::FlowError {
        gst::element_imp_error!(self, gst::LibraryError::Encode, ("{why}"));
        gst::FlowError::Error
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FaceVeilX264Enc {
    const NAME: &'static str = "GstFaceVeilX264Enc";
    type Type = super::FaceVeilX264Enc;
    type ParentType = gst_video::VideoEncoder;
}

impl ObjectImpl for FaceVeilX264Enc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("quantizer")
                    .nick("Quantizer")
                    .blurb("x264's constant quality (CRF) for the picture outside the faces")
                    .minimum(0)
                    .maximum(51)
                    .default_value(DEFAULT_QUANTIZER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("faces-finer")
                    .nick("Faces finer")
                    .blurb("How many quantizer steps finer the squares of the faces that faceveil recorded in each frame are coded, in full for squares of up to 128 px and tapering to none at 256 px, where a restore needs it least (0: as the rest); six lifted password restores of small faces after CRF 23 by 3 to 4 dB")
                    .minimum(0)
                    .maximum(20)
                    .default_value(DEFAULT_FACES_FINER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("rate-control", DEFAULT_RATE_CONTROL)
                    .nick("Rate control")
                    .blurb("What holds the stream's rate: constant quality at quantizer (under bitrate where one is given), or an average bitrate")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("bitrate")
                    .nick("Bitrate")
                    .blurb("kbit/s: the ceiling of a constant-quality stream over vbv-buf-capacity, or the average of rate-control=bitrate (0: no ceiling)")
                    .maximum(2_048_000)
                    .default_value(DEFAULT_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("vbv-buf-capacity")
                    .nick("Rate buffer")
                    .blurb("Milliseconds of bitrate over which the stream keeps to it: a longer buffer lets a keyframe take more, which a live stream at a ceiling with frequent keyframes needs")
                    .maximum(10_000)
                    .default_value(DEFAULT_VBV_BUF_CAPACITY)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("coding", DEFAULT_CODING)
                    .nick("Coding")
                    .blurb("What the stream is coded for: a file, a live source written to a file, or live viewers (nothing held back)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("key-int-max")
                    .nick("Key interval")
                    .blurb("The most pictures from one keyframe (or intra refresh) to the next (0: x264's default, 250)")
                    .default_value(DEFAULT_KEY_INT_MAX)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("intra-refresh")
                    .nick("Intra refresh")
                    .blurb("Refresh the picture by a column of intra-coded blocks sweeping across it instead of whole keyframes, which starve the pictures after them without lookahead")
                    .default_value(DEFAULT_INTRA_REFRESH)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "quantizer" => s.quantizer = value.get().expect("type checked upstream"),
            "faces-finer" => s.faces_finer = value.get().expect("type checked upstream"),
            "rate-control" => s.rate_control = value.get().expect("type checked upstream"),
            "bitrate" => s.bitrate = value.get().expect("type checked upstream"),
            "vbv-buf-capacity" => s.vbv_buf_capacity = value.get().expect("type checked upstream"),
            "coding" => s.coding = value.get().expect("type checked upstream"),
            "key-int-max" => s.key_int_max = value.get().expect("type checked upstream"),
            "intra-refresh" => s.intra_refresh = value.get().expect("type checked upstream"),
            _ => unreachable!("every writable property is handled"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "quantizer" => s.quantizer.to_value(),
            "faces-finer" => s.faces_finer.to_value(),
            "rate-control" => s.rate_control.to_value(),
            "bitrate" => s.bitrate.to_value(),
            "vbv-buf-capacity" => s.vbv_buf_capacity.to_value(),
            "coding" => s.coding.to_value(),
            "key-int-max" => s.key_int_max.to_value(),
            "intra-refresh" => s.intra_refresh.to_value(),
            _ => unreachable!("every readable property is handled"),
        }
    }
}

impl GstObjectImpl for FaceVeilX264Enc {}

impl ElementImpl for FaceVeilX264Enc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "H.264 encoder, faces finer",
                "Codec/Encoder/Video",
                "Codes H.264 with libx264 at constant quality, the faces faceveil recorded in each frame some quantizer steps finer, so that a password restore after the codec comes closer to the original",
                "faceveil developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let raw = gst_video::VideoCapsBuilder::new()
                .format_list([gst_video::VideoFormat::I420, gst_video::VideoFormat::Y444])
                .build();
            let coded = gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").field("alignment", "au").build();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &raw).expect("a sink template"),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &coded).expect("a src template"),
            ]
        });
        T.as_ref()
    }
}

impl VideoEncoderImpl for FaceVeilX264Enc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.obj().set_min_pts(MIN_PTS);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_format(
        &self,
        state: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
    ) -> Result<(), gst::LoggableError> {
        // New caps midway (a change of size): the pictures x264 still holds come out first.
        VideoEncoderImpl::finish(self).map_err(|e| gst::loggable_error!(CAT, "cannot drain the encoder: {e:?}"))?;
        let info = state.info().clone();
        let settings = self.settings.lock().unwrap().clone();
        let encoder =
            settings.x264(&info).and_then(|x264| x264::Encoder::open(&x264)).map_err(|e| gst::loggable_error!(CAT, "{e}"))?;
        let caps = gst::Caps::builder("video/x-h264").field("stream-format", "byte-stream").field("alignment", "au").build();
        let obj = self.obj();
        let output =
            obj.set_output_state(caps, Some(state)).map_err(|_| gst::loggable_error!(CAT, "cannot set the output state"))?;
        obj.negotiate(output).map_err(|_| gst::loggable_error!(CAT, "cannot negotiate"))?;
        let (num, den) = frame_rate(&info);
        let picture_time = gst::ClockTime::from_nseconds(gst::ClockTime::SECOND.nseconds() * den as u64 / num as u64);
        let latency = picture_time * encoder.maximum_delayed() as u64;
        obj.set_latency(latency, Some(latency));
        *self.state.lock().unwrap() = Some(State {
            encoder,
            info,
            finer: settings.faces_finer as f32,
            intra_refresh: settings.intra_refresh,
            shown: VecDeque::new(),
            picture_time,
        });
        Ok(())
    }

    fn handle_frame(&self, frame: gst_video::VideoCodecFrame) -> Result<gst::FlowSuccess, gst::FlowError> {
        let coded = {
            let mut guard = self.state.lock().unwrap();
            let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
            let buffer = frame.input_buffer().ok_or(gst::FlowError::Error)?;
            let mut offsets = Self::offsets(buffer, &state.info, state.finer);
            let video =
                gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &state.info).map_err(|_| gst::FlowError::Error)?;
            let plane = |i: u32| -> Result<(&[u8], usize), gst::FlowError> {
                Ok((video.plane_data(i).map_err(|_| gst::FlowError::Error)?, video.plane_stride()[i as usize] as usize))
            };
            if let Some(pts) = frame.pts() {
                state.shown.push_back((frame.system_frame_number() as i64, pts));
            }
            // A keyframe asked for (a client joining, a recording's new segment).
            let forced = frame.flags().contains(gst_video::VideoCodecFrameFlags::FORCE_KEYFRAME);
            if forced && state.intra_refresh {
                state.encoder.intra_refresh();
            }
            let picture = x264::Picture {
                planes: [plane(0)?, plane(1)?, plane(2)?],
                number: frame.system_frame_number() as i64,
                offsets: offsets.as_deref_mut(),
                keyframe: forced && !state.intra_refresh,
            };
            state.encoder.encode(Some(picture)).map_err(|e| self.fail(e))?
        };
        drop(frame);
        match coded {
            Some(coded) => self.push_coded(coded),
            None => Ok(gst::FlowSuccess::Ok),
        }
    }

    fn finish(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        loop {
            let coded = {
                let mut guard = self.state.lock().unwrap();
                let Some(state) = guard.as_mut() else { return Ok(gst::FlowSuccess::Ok) };
                if state.encoder.delayed() == 0 {
                    return Ok(gst::FlowSuccess::Ok);
                }
                state.encoder.encode(None).map_err(|e| self.fail(e))?
            };
            if let Some(coded) = coded {
                self.push_coded(coded)?;
            }
        }
    }
}
