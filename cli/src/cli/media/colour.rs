//! Where GStreamer 1.22 reads or converts a source's colours wrongly, mended where faceveil's
//! front ends decode, so that the elements see, and the files written from them keep, the
//! source's own levels. Measured on 2 s of samples/faces_720p.mp4 made over by ffmpeg 9
//! (`-pix_fmt yuvj420p`, `-c:v mjpeg`, `-vf format=gray -c:v ffv1`), through `faceveil anonymize`
//! and `restore` in sdn mode, RGB PSNR of the whole restored picture against the source's, frame
//! by frame (2-core AMD EPYC, 2026-12-03; before / after): full-range H.264 in MP4 32.3 / 39.1 dB,
//! full-range MJPEG in MOV 32.6 / 38.0 dB, grey FFV1 18.9 / 38.3 dB; limited-range clips, which
//! nothing here changes, 40.6 to 40.9 dB. The anonymized files had the same faults: shadows and
//! highlights crushed, and grey 0-255 written as 53-200.

use gst::prelude::*;
use gstfaceveil::streamdata;

use crate::cli::media::mp4;

/// Mends the colours of what `decodebin` (a decodebin or uridecodebin) decodes; call before its
/// pads are linked.
pub fn mend(decodebin: &gst::Element) {
    bitstream_range_in_mp4(decodebin);
    grey_with_a_yuv_matrix(decodebin);
}

/// qtdemux (1.22) reads an MP4's `colr` box but not its full-range flag, and h264parse and
/// h265parse keep a demuxer's colorimetry over the bitstream's: full-range H.264 decoded tagged
/// limited range. Taking the demuxer's colorimetry off lets the parsers read it from the stream
/// (the VUI), as they do for the same stream in Matroska or as a raw stream.
fn bitstream_range_in_mp4(decodebin: &gst::Element) {
    mp4::at_its_parsers(decodebin, |probe| {
        rewrite_caps(probe, |s| {
            s.remove_field("colorimetry");
        });
    });
}

/// videoconvert (1.22) converts grey whose caps name no YUV matrix (FFV1's and PNG's decoders
/// say "unknown") as if it were RGB's green, with mid-grey chroma for red and blue: 0-255 came
/// out as 102-152 in I420. Grey has no chroma, so every YUV matrix gives it the same luma: such
/// caps are given BT.709's.
fn grey_with_a_yuv_matrix(decodebin: &gst::Element) {
    decodebin.connect_pad_added(|_, pad| {
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, probe| {
            rewrite_caps(probe, |s| {
                let grey = s.get::<&str>("format").is_ok_and(|f| f.starts_with("GRAY"));
                let Some(mut colorimetry) =
                    s.get::<&str>("colorimetry").ok().and_then(|c| c.parse::<gst_video::VideoColorimetry>().ok())
                else {
                    return;
                };
                if grey && matches!(colorimetry.matrix(), gst_video::VideoColorMatrix::Unknown | gst_video::VideoColorMatrix::Rgb)
                {
                    colorimetry = gst_video::VideoColorimetry::new(
                        colorimetry.range(),
                        gst_video::VideoColorMatrix::Bt709,
                        colorimetry.transfer(),
                        colorimetry.primaries(),
                    );
                    s.set("colorimetry", colorimetry.to_string());
                }
            });
            gst::PadProbeReturn::Ok
        });
    });
}

/// Replaces a caps event passing `probe` with one whose first structure `edit` has changed.
fn rewrite_caps(probe: &mut gst::PadProbeInfo, edit: impl FnOnce(&mut gst::StructureRef)) {
    let Some(gst::PadProbeData::Event(event)) = &probe.data else { return };
    let gst::EventView::Caps(c) = event.view() else { return };
    let mut caps = c.caps_owned();
    let Some(s) = caps.make_mut().structure_mut(0) else { return };
    edit(s);
    if caps != *c.caps() {
        probe.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(&caps)));
    }
}

/// How a full-range YUV (or grey) stream reaches the elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullRange {
    /// As RGB, which the elements read level for level: anonymizing without seals.
    AsRgb,
    /// In its own planes, read as limited range (a face's darkest and brightest levels clip in
    /// the effect; what it leaves alone keeps its levels and its full-range tag). Sealed faces
    /// are a frame's native planes and open only in the format and at the place they were sealed
    /// at, so a sealing anonymization stays in YUV, and so does every restore: an anonymized file
    /// is written in YUV either way.
    AsYuv,
}

impl FullRange {
    /// How an anonymization takes a full-range input, as it seals faces or not.
    pub fn for_anonymizing(sealing: bool) -> Self {
        if sealing { Self::AsYuv } else { Self::AsRgb }
    }
}

/// The raw format a decoded stream is processed in: I420, where the encoder and the elements
/// work fastest, unless its levels are full range and `full_range` says RGB. The elements read
/// YUV as limited range, and videoconvert (1.22) does not convert between the two ranges of one
/// YUV matrix (it copies the levels and changes the tag); through RGB it does. That costs time:
/// the sample clip made full range took 5.15 s against 4.82 s limited (`faceveil anonymize`,
/// mean of 3 runs each, alternated, 2-core AMD EPYC at a busy hour, 2026-12-03).
pub fn processing_caps(decoded: Option<&gst::CapsRef>, full_range: FullRange) -> gst::Caps {
    let full =
        decoded.and_then(|c| gst_video::VideoInfo::from_caps(c).ok()).is_some_and(|info| streamdata::is_full_range_yuv(&info));
    let format = if full && full_range == FullRange::AsRgb { "RGB" } else { "I420" };
    gst::Caps::builder("video/x-raw").field("format", format).build()
}
