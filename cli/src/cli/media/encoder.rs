//! How faceveil codes the videos it writes: x264's settings by purpose (anonymized videos and
//! password restores, restores that open sealed faces, lossless on request, live recordings),
//! each measured where it was chosen.

use std::sync::Mutex;

use anyhow::{Context, Result};
use faceveil::secrets::SigningKey;
use gst::prelude::*;
use gstfaceveil::{streamdata, timestamps};

use crate::cli::media::elements::make;

/// How closely a written video keeps the frames it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    /// x264's constant quality (CRF): with no ceiling for a file, within [`live_ceiling`] for a
    /// live source, whose viewers, links and disks want a bounded rate.
    /// Until 2026-12-06 files kept that ceiling too, which is not x264's CRF and starved busy
    /// and large pictures. Measured through the CLI (anonymize with a password, then restore),
    /// each clip with the ceiling and without; face PSNR of the restore over each recorded
    /// square's weight-1 ellipse, and PSNR of the anonymized video outside every square, both
    /// against the original's decoded frames, RGB; 2-core AMD EPYC, 2026-12-06 19:25-19:36 UTC,
    /// one run each (each its own salt, so the surrogates differ: ±0.2 dB between runs):
    ///
    /// | clip | anonymized bytes | background PSNR | restored faces |
    /// |---|---|---|---|
    /// | 05_crowd at 1920x1080 (upscaled, letterboxed; 127 frames) | 1.37 → 3.06 MB | 36.28 → 40.40 dB | 22.24 → 25.52 dB |
    /// | 06_juggler_720p | 1.89 → 2.17 MB | 33.37 → 35.49 | 25.54 → 26.05 |
    /// | 05_crowd_mot20-08_960x366 | 1.14 → 1.34 MB | 36.14 → 37.11 | 20.66 → 21.02 |
    /// | faces_720p, two_faces, 02_hamilton, 07_selfie | within 2% (under the ceiling) | within 0.03 | within 0.2 |
    Crf(u32),
    /// x264's constant quality with no ceiling and no macroblock tree, for restores of sealed
    /// faces. x264enc's `pass=qual` holds the rate under its `bitrate` (2048 kbit/s by default),
    /// which held a CRF 4 restore of 05_crowd_mot20-08_960x366.mp4 to 1.3 MB (6.9 MB without)
    /// and its faces to 42 dB in YUV. The macroblock tree spends fewer bits where the picture
    /// moves, as a face does: see [`SEALED_RESTORE_CRF`].
    CrfUncapped(u32),
    /// [`Quality::Crf`] outside the faces, and the squares of the faces `faceveil` recorded in
    /// each frame that many quantizer steps finer (`faceveilx264enc`), for a file of surrogates
    /// that a password restore undoes: the restore multiplies the codec's error there. A live
    /// source's recording is coded as [`Quality::Crf`] codes it (`superfast`, no B-frames, under
    /// the live ceiling), its faces finer too.
    CrfFacesFiner(u32, u32),
    /// x264 at quantizer 0: every byte decodes as it was given.
    Lossless,
}

/// Anonymized videos and password restores: x264's usual default.
pub const DEFAULT_CRF: u32 = 23;
/// Restores that open sealed faces: what was sealed must survive the output's codec (lossless
/// on request). The same face videos restored into a lossless file and re-encoded with x264enc
/// (`pass=qual`, no ceiling, no macroblock tree, `psy-tune=psnr`); face PSNR over RGB against the
/// original's decoded frames, inside each square less 4 px, mean / worst face; file size; 2-core
/// AMD EPYC, 2026-12-01:
///
/// | x264 | two_faces_640x360 | faces_720p | 05_crowd_mot20-08 | 02_hamilton | 06_juggler_720p | 07_selfie_portrait |
/// |---|---|---|---|---|---|---|
/// | lossless | 46.6 / 45.5 dB, 2.6 MB | 47.0 / 45.9, 11.9 | 48.4 / 45.8, 11.6 | 50.3 / 45.8, 8.8 | 46.1 / 45.5, 19.2 | 47.5 / 46.8, 31.5 |
/// | `veryfast`, CRF 2 (until 2026-12-01) | 46.2 / 45.1, 1.7 | 46.6 / 45.6, 7.6 | 45.8 / 42.9, 6.3 | 49.5 / 44.7, 6.2 | 45.4 / 44.1, 14.3 | 47.1 / 46.4, 27.2 |
/// | `medium`, CRF 2, chroma -6 | 46.4 / 45.3, 1.4 | 46.8 / 45.8, 5.9 | 47.4 / 44.7, 5.9 | 50.0 / 45.6, 5.7 | 45.9 / 45.2, 13.2 | |
/// | `medium`, CRF 1, chroma -9 | 46.4 / 45.3, 1.5 | 46.8 / 45.8, 5.9 | 47.6 / 45.2, 6.3 | 50.1 / 45.6, 6.1 | 46.0 / 45.4, 13.6 | 47.4 / 46.7, 26.1 |
///
/// The last keeps every face of these clips at 45 dB or more, within 0.15 to 0.6 dB of the
/// lossless restore's worst face, in files no larger than `veryfast`'s at CRF 2: `medium`'s
/// finer decisions cost fewer bits than they save. Finer chroma matters because an error in U
/// or V counts about twice in R or B; at CRF 1 chroma -9 gives what -6 gives on five clips, and
/// on one of three anonymizations of the crowd (each its own key) lifted the worst face from
/// 44.65 to 45.14 dB (the other two: 45.24 and 45.01 at -6). The price is encoder time, about
/// twice `veryfast`'s (the selfie's 352 frames: 18.1 s against 8.0 s).
pub const SEALED_RESTORE_CRF: u32 = 1;
/// x264's preset for restores that open sealed faces (live inputs keep `superfast`, to keep up).
const SEALED_RESTORE_PRESET: &str = "medium";
/// x264's chroma quantizer offset for restores that open sealed faces.
const SEALED_RESTORE_CHROMA_QP_OFFSET: i32 = -9;

/// x264's motion search for anonymized videos and password restores (`veryfast` otherwise): the
/// diamond search and the coarsest subpixel refinement, which take 23 to 33% of x264's CPU time
/// off for a few percent more bytes. Measured on the raw frames of four clips, x264enc at CRF
/// 21, 23 and 25 (`psy-tune=psnr`), Y PSNR against the raw frames and file size, 2-core AMD EPYC,
/// 2026-12-02 (against `veryfast` alone):
///
/// | clip | x264 CPU | at CRF 23: Y PSNR, size | size at equal PSNR |
/// |---|---|---|---|
/// | faces_720p | -31% | +0.20 dB, -1.4% | -5.5% |
/// | 06_juggler_720p | -28% | -0.19 dB, +3.4% | +5.2% |
/// | 02_hamilton_whitehouse_360p | -30% | -0.31 dB, +10.0% | +15.4% |
/// | 07_selfie_portrait_720x1280 | -31% | -0.02 dB, +6.4% | +6.8% |
///
/// x264 is a quarter of the CPU of `faceveil anonymize` on a 720p clip with two faces (perf):
/// the whole process then ran 5% faster on samples/faces_720p.mp4 (4 runs each, alternated). The
/// `superfast` preset with its macroblock tree and lookahead put back saved as much CPU but cost
/// up to 20% more bytes at equal PSNR; `superfast` itself doubled the sample's file.
const CRF_X264_OPTIONS: &str = "me=dia:subme=1";

/// How many quantizer steps finer the faces of anonymized files are coded
/// ([`Quality::CrfFacesFiner`]; in full for squares of up to 128 px, tapering to none at 256 px:
/// `plugins/src/faceveilx264enc/imp.rs`). First measured on the two shared clips whose password
/// restores after CRF 23 fell short of issue 11's 28 dB: the same surrogates from `faceveil`
/// (password, sidecar, detection every 2nd frame) through x264enc as the CLI coded files and
/// through `faceveilx264enc` (all faces, no B-frames then), restored by the CLI; face PSNR over
/// each recorded square's weight-1 ellipse against the original's decoded frames, RGB; the
/// juggler 26.11 dB (2.17 MB) against 30.05 dB (2.41 MB) at six steps; Hamilton 26.03 dB
/// (811 KB) against 27.91 dB at three (1.04 MB) and 29.55 dB at six (1.29 MB). Then through the
/// CLI as it now codes (B-frames, the taper), anonymize and restore with a password, against
/// the build before (x264enc at CRF 23, no ceiling); 2-core AMD EPYC, 2026-12-06 19:33-20:15
/// UTC, one run each (each its own salt: ±0.2 dB between runs):
///
/// | clip | x264enc: bytes, restored faces | faceveilx264enc, six steps |
/// |---|---|---|
/// | samples/faces_720p.mp4 | 580 KB, 29.69 dB | 672 KB, 31.84 dB |
/// | samples/two_faces_640x360.mp4 | 224 KB, 29.28 dB | 318 KB, 33.56 dB |
/// | 07_selfie_portrait_720x1280 (a face of 700 px: none finer) | 1,152 KB, 29.64 dB | 1,138 KB, 29.55 dB |
/// | 06_juggler_720p | 2.17 MB, 26.05 dB | 2.01 MB, 29.62 dB |
/// | 02_hamilton_whitehouse_360p | 985 KB, 26.16 dB | 1.26 MB, 28.77 dB |
/// | 05_crowd_mot20-08_960x366 (faces of 6-20 px) | 1.34 MB, 21.02 dB | 1.44 MB, 22.37 dB |
///
/// Every clip but the crowd, whose faces are too small for any restore, now comes back above
/// 28 dB; the cost is up to two fifths more bytes where large faces fill much of the picture.
pub const FACES_FINER: u32 = 6;

/// x264enc's highest `bitrate` (kbit/s): as a ceiling, none.
const MAX_X264ENC_KBPS: u32 = 2_048_000;
/// x264enc's default `bitrate` (kbit/s), which constant quality keeps as a ceiling: the least
/// ceiling of live streams ([`live_ceiling`]).
const LIVE_CEILING_KBPS: u32 = 2048;
/// A served stream's bitrate unless one is given, in bits per pixel of each frame: 3 Mbit/s
/// (0.136) brought the juggler clip (720p, 24 fps, fast motion) through the live encoder at 33.1
/// dB PSNR, near what x264 at constant quality 23 gives it in a file (33.5 dB); 2 Mbit/s gave 30.9.
const LIVE_BITS_PER_PIXEL: f64 = 0.14;
/// The frame rate assumed for the bitrate when the caps do not state one (live sources).
const LIVE_FALLBACK_FPS: f64 = 30.0;

/// A served stream's bitrate in kbit/s for frames of these caps ([`LIVE_BITS_PER_PIXEL`]).
pub fn live_bitrate(caps: &gst::CapsRef) -> u32 {
    let Some(s) = caps.structure(0) else { return LIVE_CEILING_KBPS };
    let pixels = f64::from(s.get::<i32>("width").unwrap_or(1280)) * f64::from(s.get::<i32>("height").unwrap_or(720));
    let fps = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map_or(LIVE_FALLBACK_FPS, |f| f64::from(f.numer()) / f64::from(f.denom()));
    (pixels * fps * LIVE_BITS_PER_PIXEL / 1000.0).clamp(256.0, 50_000.0) as u32
}

/// The ceiling in kbit/s of a live source coded at constant quality (serve's cameras, the CLI's
/// live recordings): a served stream's bitrate for frames of these caps, and never under
/// x264enc's 2 Mbit/s, which all of them had until 2026-12-06. That starved large pictures:
/// serve's recording of the juggler clip (720p, 24 fps) came out at 28.4 dB outside its face
/// against 35.5 dB for the CLI's file at the same CRF 23, its password restore at 27.2 dB.
pub fn live_ceiling(caps: &gst::CapsRef) -> u32 {
    live_bitrate(caps).max(LIVE_CEILING_KBPS)
}

/// The buffer (ms of the bitrate) over which a live source coded at constant quality keeps to
/// its ceiling (x264enc's and faceveilx264enc's `vbv-buf-capacity`; 600 by default). With a
/// keyframe every 30 pictures (serve's segments and mounts) and no lookahead, 600 ms let each
/// keyframe take too little, and the pictures after it stayed poor until the next: the juggler
/// clip's decoded frames coded as serve codes them (`x264enc tune=zerolatency
/// speed-preset=superfast psy-tune=psnr pass=qual quantizer=23 bitrate=3096 key-int-max=30
/// vbv-buf-capacity=MS`; PSNR of each frame against the clip's, RGB; 2-core AMD EPYC,
/// 2026-12-06 23:35 UTC):
///
/// | buffer | mean PSNR | worst frame | a keyframe (frame 30) | bytes (10 s) |
/// |---|---|---|---|---|
/// | 600 ms | 31.15 dB | 26.71 dB | 27.9 dB | 4.13 MB |
/// | 1,000 ms | 31.79 | 27.77 | 29.5 | 4.25 |
/// | 2,000 ms | 33.76 | 30.45 | 37.3 | 4.49 |
/// | 4,000 ms | 36.96 | 33.76 | 39.9 | 5.11 |
///
/// (Without a ceiling: 39.12 dB mean, 6.28 MB.) Over a stream longer than its buffer the rate
/// still keeps to the ceiling; a longer buffer spends it where the keyframes are, and lets a
/// stream's first seconds take what the buffer holds. Two seconds: the span of a key interval
/// at 15 fps, twice it at 30.
const LIVE_CEILING_BUFFER_MS: u32 = 2000;

/// Has `encoder` (x264enc or faceveilx264enc, coding at constant quality) take
/// [`live_ceiling`] for its frames as its `bitrate` each time their caps come, before it opens,
/// over [`LIVE_CEILING_BUFFER_MS`].
pub fn ceiling_follows_frames(encoder: &gst::Element) -> Result<()> {
    encoder.set_property("vbv-buf-capacity", LIVE_CEILING_BUFFER_MS);
    let pad = encoder.static_pad("sink").context("the encoder has no sink pad")?;
    let target = encoder.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, probe| {
        if let Some(gst::PadProbeData::Event(event)) = &probe.data
            && let gst::EventView::Caps(caps) = event.view()
            && let Some(encoder) = target.upgrade()
        {
            encoder.set_property("bitrate", live_ceiling(caps.caps()));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// The most pictures between a live stream's keyframes (x264's own default): `--serve-rtsp`, and
/// serve's cameras unless their `keyframe_interval` says otherwise. A keyframe comes sooner where
/// one is asked for: where a client starts to play (serve's mounts and the `--serve-rtsp` server
/// ask), where a recorded segment starts (splitmuxsink asks), and at scene cuts. Live coding has no
/// lookahead, so a keyframe takes its bits from the pictures around it under the ceiling or the
/// bitrate: keyframes every 30 pictures (serve's cameras until 2026-12-07), or an intra refresh
/// over 30 (`--serve-rtsp`), starved busy pictures over a still background. Each clip's decoded
/// frames coded as a camera codes them (`x264enc tune=zerolatency speed-preset=superfast
/// psy-tune=psnr pass=qual quantizer=23 vbv-buf-capacity=2000 bitrate=CEILING key-int-max=K`) or as
/// the RTSP server did (`pass=cbr bitrate=BITRATE key-int-max=30 intra-refresh=true`, against
/// `key-int-max=250`), Y PSNR of each frame against the clip's, mean / worst frame; 2-core Intel
/// Xeon, 2026-12-07 00:35-01:25 UTC:
///
/// | clip (ceiling or bitrate, kbit/s) | a keyframe every 30, or an intra refresh | every 250 |
/// |---|---|---|
/// | 06_juggler_720p, 24 fps, at constant quality (3,096) | 4.49 MB, 38.21 / 34.16 dB | 3.45 MB, 42.77 / 42.25 dB |
/// | samples/faces_720p.mp4, at constant quality (3,870) | 960 KB, 48.42 / 47.31 | 831 KB, 48.01 / 46.28 |
/// | 02_hamilton_whitehouse_360p, at constant quality (2,048) | 844 KB, 46.63 / 43.44 | 775 KB, 46.50 / 43.46 |
/// | 05_crowd_mot20-08_960x366, 25 fps, at constant quality (2,048) | 1.52 MB, 40.22 / 39.41 | 1.37 MB, 40.05 / 39.14 |
/// | 07_selfie_portrait_720x1280, at constant quality (3,870) | 3.37 MB, 46.72 / 45.67 | 2.82 MB, 46.35 / 42.60 |
/// | 06_juggler_720p, the RTSP server's bitrate (3,097) | intra refresh: 4.08 MB, 37.83 / 34.47 | 3.65 MB, 41.75 / 34.45 |
/// | 02_hamilton_whitehouse_360p, the RTSP server's bitrate (967) | intra refresh: 1.08 MB, 47.28 / 42.34 | 1.09 MB, 48.15 / 43.33 |
///
/// At constant quality 8 to 23% fewer bytes, the juggler, whose keyframes the ceiling starved,
/// 4.6 dB better, the others within 0.4 dB on average (the selfie's worst frame, a keyframe at its
/// 300th picture, recovers over ten pictures); at a set bitrate 0.9 and 3.9 dB better (an intra
/// refresh over 120 pictures: 47.82 and 40.96 dB). An RTSP client over UDP that loses a packet
/// sees the damage until the next keyframe, up to 250 pictures on: over TCP (`rtspt://`, or a
/// player's "RTSP over TCP") nothing is lost, and `--serve-keyframe-interval` (serve's
/// `keyframe_interval`) shortens it.
pub const LIVE_KEYFRAME_EVERY: u32 = 250;

/// Asks the live encoder upstream of `pad` to key its next picture, with its parameter sets (the
/// request passes queues, tees and parsers on its way): a client starts to play.
pub fn ask_keyframe(pad: &gst::Pad) {
    pad.push_event(gst_video::UpstreamForceKeyUnitEvent::builder().all_headers(true).build());
}

/// What holds a live stream's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveRate {
    /// An average bitrate, never above it over x264's 600 ms buffer: the element's `bitrate`,
    /// set once the frames' size and rate are known.
    Average,
    /// x264's constant quality (CRF), under a ceiling: 2048 kbit/s until [`ceiling_follows_frames`]
    /// sets it from the frames.
    Quality(u32),
}

/// The encoder of a live stream (served over RTSP, serve's cameras) as a gst-launch description
/// named `name`: x264's `zerolatency` (nothing held back) at `superfast`, tuned for PSNR, keyframes
/// where asked for and at most `key_int` pictures apart ([`LIVE_KEYFRAME_EVERY`]). With
/// `faces_finer` (surrogates a password restore undoes) `faceveilx264enc` codes the recorded faces
/// [`FACES_FINER`] steps finer, where libx264 loads as it loads it; x264enc otherwise. Measured
/// through RTSP (`scripts/roundtrip.py CLIP --rtsp --detect-interval 2`: `faceveil anonymize CLIP
/// --serve-rtsp PORT` at the served bitrate, restored with the password from the stream; face PSNR
/// over each recorded square's weight-1 ellipse, and PSNR outside every square, against the
/// original's decoded frames, RGB; one run each, each its own salt; 2-core AMD EPYC, 2026-12-06
/// 22:00-22:08 UTC), the same element with the offsets not applied against six steps:
///
/// | clip (served bitrate) | restored faces | background |
/// |---|---|---|
/// | 02_hamilton_whitehouse_360p (967 kbit/s) | 26.81 → 27.98 dB | 40.21 → 39.18 dB |
/// | 06_juggler_720p (3,097 kbit/s) | 26.30 → 29.95 dB | 31.52 → 31.46 dB |
///
/// At a set bitrate the faces' bits come from the rest of the picture, which Hamilton's many
/// faces (two fifths of its picture) make visible.
pub fn live(name: &str, rate: LiveRate, key_int: u32, faces_finer: bool) -> String {
    if faces_finer && gstfaceveil::libx264_loads() {
        let rate = match rate {
            LiveRate::Average => "rate-control=bitrate".to_string(),
            LiveRate::Quality(crf) => format!("rate-control=quality quantizer={crf} bitrate={LIVE_CEILING_KBPS}"),
        };
        return format!("faceveilx264enc name={name} coding=live {rate} faces-finer={FACES_FINER} key-int-max={key_int}");
    }
    let rate = match rate {
        LiveRate::Average => "pass=cbr".to_string(),
        LiveRate::Quality(crf) => format!("pass=qual quantizer={crf} bitrate={LIVE_CEILING_KBPS}"),
    };
    format!("x264enc name={name} tune=zerolatency speed-preset=superfast psy-tune=psnr {rate} key-int-max={key_int}")
}

/// The chain that codes a written video: videoconvert into a format x264 takes at the frame's
/// size, x264enc as `quality` asks, h264parse.
pub struct Encoder {
    /// Linked in this order after the frames to code, before the muxer.
    pub elements: Vec<gst::Element>,
    x264: gst::Element,
}

impl Encoder {
    /// x264 as `quality` asks, in a format it can encode at any frame size: faceveilx264enc for
    /// [`Quality::CrfFacesFiner`] where libx264 loads, x264enc otherwise.
    pub fn new(odd: bool, live: bool, quality: Quality) -> Result<Self> {
        let convert = make("videoconvert")?;
        // 4:2:0 needs even sizes; odd ones are encoded as 4:4:4 so no pixel is lost.
        let format = if odd { "Y444" } else { "I420" };
        let caps = gst::ElementFactory::make("capsfilter")
            .property("caps", gst::Caps::builder("video/x-raw").field("format", format).build())
            .build()?;
        let enc = match quality {
            // Where libx264 does not load as faceveilx264enc loads it, x264enc codes as before.
            Quality::CrfFacesFiner(crf, steps) if gstfaceveil::libx264_loads() => {
                let enc = make("faceveilx264enc")?;
                enc.set_property("quantizer", crf);
                enc.set_property("faces-finer", steps);
                if live {
                    enc.set_property_from_str("coding", "live-recording");
                }
                enc
            }
            quality => x264enc(live, quality)?,
        };
        if live && matches!(quality, Quality::Crf(_) | Quality::CrfFacesFiner(..)) {
            ceiling_follows_frames(&enc)?;
        }
        strictly_increasing_pts(&convert.static_pad("sink").context("videoconvert has no sink pad")?);
        Ok(Self { elements: vec![convert, caps, enc.clone(), make("h264parse")?], x264: enc })
    }

    /// Has x264enc write faceveil's SEI (attached to each frame by `faceveil`) into the coded
    /// pictures, signing each with `pictures` where given ([`streamdata::sei_through_encoder`]).
    pub fn write_sei(&self, pictures: Option<SigningKey>) -> Result<()> {
        Ok(streamdata::sei_through_encoder(&self.x264, pictures)?)
    }
}

/// x264enc coding as `quality` asks. Recordings of live inputs keep x264's lookahead too: its
/// live tuning (`zerolatency`, with `ultrafast`) cost 6.3 dB PSNR on the juggler clip at the same
/// quality setting. They use `superfast`, which measured 0.1 dB under `veryfast` there for 30%
/// less encoder time (6 against 8 ms a 720p frame), to keep up with the source.
fn x264enc(live: bool, quality: Quality) -> Result<gst::Element> {
    let enc = make("x264enc")?;
    match quality {
        // `CrfFacesFiner` here: where faceveilx264enc cannot code.
        Quality::Crf(crf) | Quality::CrfFacesFiner(crf, _) => {
            enc.set_property_from_str("pass", "qual");
            enc.set_property("quantizer", crf);
            if !live {
                enc.set_property("option-string", CRF_X264_OPTIONS);
                enc.set_property("bitrate", MAX_X264ENC_KBPS);
            }
        }
        Quality::CrfUncapped(crf) => {
            enc.set_property_from_str("pass", "qual");
            enc.set_property("quantizer", crf);
            enc.set_property("bitrate", MAX_X264ENC_KBPS);
            enc.set_property("mb-tree", false);
            enc.set_property("option-string", format!("chroma-qp-offset={SEALED_RESTORE_CHROMA_QP_OFFSET}"));
        }
        Quality::Lossless => {
            enc.set_property_from_str("pass", "quant");
            enc.set_property("quantizer", 0u32);
        }
    }
    let preset = match quality {
        _ if live => "superfast",
        Quality::CrfUncapped(_) => SEALED_RESTORE_PRESET,
        Quality::Crf(_) | Quality::CrfFacesFiner(..) | Quality::Lossless => "veryfast",
    };
    enc.set_property_from_str("speed-preset", preset);
    if live {
        // No B-frames: x264 derives each picture's decoding time from the spacing of the
        // stream's first frames, and a live source's first times are irregular (an RTSP
        // camera's jitter buffer settling). An MPEG-TS recording made under load had its
        // decoding times out of order and one picture with no presentation time, so that,
        // signed with --sign-with, it failed `verify` ("2 pictures between frames 5 and 7
        // are shown at other times than they were recorded"; CI, 2026-12-06, in
        // `sealed.rs::a_signed_live_recording_stopped_by_a_full_disk_…`). Without B-frames
        // every picture is decoded when it is shown. On 06_juggler_720p.mp4 at `superfast`,
        // CRF 23: 4.3% more bytes, 0.05 dB higher PSNR.
        enc.set_property("bframes", 0u32);
    }
    // Tuned for fidelity rather than looks: psychovisual tuning spends bits on texture that
    // restoring an anonymized face does not need. Measured on three clips with the same key:
    // restore +0.3 to +1.0 dB face PSNR for 4 to 20% larger files.
    enc.set_property_from_str("psy-tune", "psnr");
    Ok(enc)
}

/// Gives the encoder's frames strictly increasing timestamps ([`timestamps`]), as `faceveil`
/// and `faceunveil` give theirs, for any frame that reaches it another way. libav's decoder gives
/// two frames of 05_crowd_mot20-08_960x366.mp4 the same timestamp (0.28 s, and none 0.24 s); at
/// quantizer 0 x264enc then sent one frame out without a timestamp, and mp4mux stopped on it
/// ("Buffer has no PTS").
fn strictly_increasing_pts(pad: &gst::Pad) {
    let times = Mutex::new(timestamps::Increasing::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut probe.data
            && let Some(pts) = buffer.pts()
        {
            let next = times.lock().unwrap().next(pts);
            if next != pts {
                buffer.make_mut().set_pts(next);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

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
        let hd = live_bitrate(&caps(1280, 720, Some((24, 1))));
        assert_eq!(hd, 3096, "1280 x 720 x 24 fps x 0.14 bit");
        assert!(live_bitrate(&caps(1920, 1080, Some((30, 1)))) > 2 * hd);
        assert!(live_bitrate(&caps(640, 360, Some((25, 1)))) < hd / 3);
        // A live source without a stated rate counts as 30 fps; a tiny one keeps a usable floor.
        assert_eq!(live_bitrate(&caps(1280, 720, Some((0, 1)))), live_bitrate(&caps(1280, 720, Some((30, 1)))));
        assert_eq!(live_bitrate(&caps(1280, 720, None)), live_bitrate(&caps(1280, 720, Some((30, 1)))));
        assert_eq!(live_bitrate(&caps(64, 48, Some((15, 1)))), 256);
    }

    #[test]
    fn a_live_ceiling_follows_large_frames_and_keeps_x264encs_for_small_ones() {
        assert_eq!(live_ceiling(&caps(640, 360, Some((30, 1)))), 2048, "as x264enc had it");
        assert_eq!(live_ceiling(&caps(1280, 720, Some((24, 1)))), 3096);
        assert_eq!(live_ceiling(&caps(1920, 1080, Some((30, 1)))), 8709);
        // A live recording's encoder takes it from the frames that come, whichever x264 codes.
        crate::cli::media::elements::init().unwrap();
        for quality in [Quality::Crf(23), Quality::CrfFacesFiner(23, FACES_FINER)] {
            let encoder = Encoder::new(false, true, quality).unwrap();
            let src = gst::ElementFactory::make("videotestsrc").property("num-buffers", 3i32).build().unwrap();
            let filter = gst::ElementFactory::make("capsfilter")
                .property("caps", caps(1280, 720, Some((24, 1))).to_owned())
                .build()
                .unwrap();
            let mut chain = vec![src, filter];
            chain.extend(encoder.elements.iter().cloned());
            chain.push(make("fakesink").unwrap());
            let pipeline = gst::Pipeline::new();
            pipeline.add_many(&chain).unwrap();
            gst::Element::link_many(&chain).unwrap();
            pipeline.set_state(gst::State::Playing).unwrap();
            let bus = pipeline.bus().unwrap();
            let message =
                bus.timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos, gst::MessageType::Error]);
            pipeline.set_state(gst::State::Null).unwrap();
            assert!(matches!(message.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "{quality:?}: {message:?}");
            assert_eq!(encoder.x264.property::<u32>("bitrate"), 3096, "{quality:?}: the ceiling of 720p at 24 fps");
            assert_eq!(encoder.x264.property::<u32>("vbv-buf-capacity"), LIVE_CEILING_BUFFER_MS, "{quality:?}");
        }
    }

    /// Two frames with one timestamp, as libav's decoder gives two of the crowd clip's, still
    /// make a lossless MP4 (mp4mux stopped on "Buffer has no PTS").
    #[test]
    fn a_repeated_timestamp_still_makes_a_lossless_mp4() {
        crate::cli::media::elements::init().unwrap();
        let frame = gst::ClockTime::from_mseconds(40);
        let src = gst::ElementFactory::make("videotestsrc").property("num-buffers", 12i32).build().unwrap();
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", 64i32)
            .field("height", 48i32)
            .field("framerate", gst::Fraction::new(25, 1))
            .build();
        let filter = gst::ElementFactory::make("capsfilter").property("caps", caps).build().unwrap();
        let seen = AtomicU64::new(0);
        filter.static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &mut probe.data
                && seen.fetch_add(1, Ordering::SeqCst) == 6
            {
                buffer.make_mut().set_pts(frame * 5);
            }
            gst::PadProbeReturn::Ok
        });
        let path = std::env::temp_dir().join(format!("faceveil-repeated-pts-{}.mp4", std::process::id()));
        let sink = gst::ElementFactory::make("filesink").property("location", path.to_str().unwrap()).build().unwrap();
        let mut chain = vec![src, filter];
        chain.extend(Encoder::new(false, false, Quality::Lossless).unwrap().elements);
        chain.extend([make("mp4mux").unwrap(), sink]);
        let pipeline = gst::Pipeline::new();
        pipeline.add_many(&chain).unwrap();
        gst::Element::link_many(&chain).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let message = bus.timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos, gst::MessageType::Error]);
        pipeline.set_state(gst::State::Null).unwrap();
        let _ = std::fs::remove_file(&path);
        match message.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {}
            Some(gst::MessageView::Error(e)) => panic!("{}: {:?}", e.error(), e.debug()),
            _ => panic!("no end of stream within 30 s"),
        }
    }
}
