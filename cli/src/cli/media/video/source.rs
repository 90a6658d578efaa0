//! Where a video comes from: a file, a URL or a camera decoded, its first video stream linked,
//! turned upright, and what a file's own stream data says before it is decoded.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use gst::prelude::*;
use gstfaceveil::{cutmp4, outofband, streamdata};

use crate::cli::credentials::access;
use crate::cli::media::animation;
use crate::cli::media::colour;
use crate::cli::media::elements::{init, make};
use crate::cli::media::input::{self, StreamSource};
use crate::cli::media::mp4;

/// Turns each picture upright as its container's orientation tag says (phones store portrait
/// video sideways and tag it), and drops the tag: the detector and the model only know upright
/// faces, and the output is written upright, as players would show the input. Untagged video
/// passes through untouched.
fn upright() -> Result<gst::Element> {
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

/// The elements that bring decoded pictures to what a player shows, for every front end that
/// decodes video: progressive first ([`progressive`]), since turning woven fields would swap
/// them, then upright ([`upright`]).
pub fn as_shown() -> Result<[gst::Element; 2]> {
    Ok([progressive()?, upright()?])
}

/// Makes interlaced video (a broadcast recording, an analogue camera's encoder) progressive,
/// one picture a field: on woven fields a moving face is two combed half-pictures, which the
/// detector may miss, and a surrogate drawn across them would be torn apart by a player's
/// deinterlacer. Progressive video passes through untouched.
fn progressive() -> Result<gst::Element> {
    let deinterlace = make("deinterlace")?;
    deinterlace.set_property_from_str("mode", "auto");
    deinterlace.set_property_from_str("fields", "all");
    Ok(deinterlace)
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

/// How many frames of a file a restore decodes without a faceveil header before it stops: a
/// file's first frame carries the header and every `HEADER_EVERY`-th after it, so a file cut
/// anywhere has one within that many; one without any (a blur output, a stranger's video) is
/// said so at once instead of after every frame was decoded and encoded again.
pub(super) const HEADER_WAIT_FRAMES: u32 = 2 * faceveil::stream::HEADER_EVERY as u32;

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
