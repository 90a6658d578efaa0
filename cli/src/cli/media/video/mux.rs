//! The container an output is written in, and the branches (video, sound) that go into it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gst::prelude::*;
use gstfaceveil::outofband;

use super::transcode::{Entries, Sei};
use crate::cli::media::containers::{MuxerKind, muxer_kind};
use crate::cli::media::elements::make;

/// Chains `elements`, adds them to `pipeline` and brings them to its state.
pub(super) fn add_chain(pipeline: &gst::Pipeline, elements: &[gst::Element]) -> Result<()> {
    pipeline.add_many(elements)?;
    gst::Element::link_many(elements)?;
    for e in elements {
        e.sync_state_with_parent()?;
    }
    Ok(())
}

/// The container an output is written in.
pub(super) struct Container {
    pub(super) muxer: gst::Element,
    /// MPEG-TS carries a change of resolution midway; MP4 and Matroska (in GStreamer) cannot.
    pub(super) holds_size_changes: bool,
}

/// How long each fragment of an MP4 being written is (ms), see [`container_for`].
const MP4_FRAGMENT_MS: u32 = 1000;

/// The muxer for `output`, by its extension. An MP4 is written in fragments of
/// [`MP4_FRAGMENT_MS`] and made a plain MP4 again when the stream ends: a plain MP4 says where
/// its frames are only at its end, so a writer killed or cut off from power left hours of a
/// camera, or of a long file's anonymization, unreadable (and a signed one without a checkpoint
/// that could show a cut), where fragments keep all but the last second or so.
pub(super) fn container_for(output: &Path) -> Result<Container> {
    let (muxer, holds_size_changes) = match muxer_kind(output) {
        Some(MuxerKind::Mp4) => {
            let mux = make("mp4mux")?;
            mux.set_property("fragment-duration", MP4_FRAGMENT_MS);
            mux.set_property_from_str("fragment-mode", "first-moov-then-finalise");
            (mux, false)
        }
        Some(MuxerKind::Matroska) => (make("matroskamux")?, false),
        Some(MuxerKind::MpegTs) => (make("mpegtsmux")?, true),
        None => bail!(
            "output {} must be .mp4, .mov, .mkv or .ts: the input is a video (an animated GIF or WebP is one too)",
            output.display()
        ),
    };
    Ok(Container { muxer, holds_size_changes })
}

/// Puts `chain` (a queue first) between the decoder's `pad` and the muxer, and records its entry,
/// where a stop sends the end. An anonymized output's chain lets only faceveil's tags through.
pub(super) fn into_muxer(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    chain: &[gst::Element],
    mux: &gst::Element,
    entries: &Entries,
    sei: Sei,
) -> Result<()> {
    let last = chain.last().context("an empty chain")?;
    if sei == Sei::Write {
        faceveil_tags_only(&last.static_pad("src").context("the chain's last element has no src pad")?);
    }
    add_chain(pipeline, chain)?;
    last.link(mux)?;
    let entry = chain[0].static_pad("sink").expect("queue has sink");
    pad.link(&entry)?;
    entries.lock().unwrap().push(entry);
    Ok(())
}

/// Lets only faceveil's own header comment through to the muxer of an anonymized file: the
/// input's tags would be written into it otherwise, and a title that names the people in a
/// clip, or a phone's position, make and model, say who and where as a face does. Each tag event
/// is emptied of all else rather than dropped: a tag event is sticky, and a pad sends a dropped
/// one again before every buffer.
pub(super) fn faceveil_tags_only(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, probe| {
        let Some(gst::PadProbeData::Event(event)) = &mut probe.data else { return gst::PadProbeReturn::Ok };
        let gst::EventView::Tag(tag) = event.view() else { return gst::PadProbeReturn::Ok };
        let ours = tag
            .tag()
            .iter_tag::<gst::tags::Comment>()
            .map(|c| c.get().to_owned())
            .find(|c| outofband::header_from_tag(c).is_some());
        let mut tags = gst::TagList::new();
        let list = tags.get_mut().expect("a new tag list is writable");
        if let Some(comment) = ours {
            list.add::<gst::tags::Comment>(&comment.as_str(), gst::TagMergeMode::Replace);
        }
        list.set_scope(tag.tag().scope());
        *event = gst::event::Tag::builder(tags).seqnum(event.seqnum()).build();
        gst::PadProbeReturn::Ok
    });
}

/// Has `dec` (a decodebin) hand out AAC sound as it is coded, to be written as it came: decoding
/// and coding it again took 6% of the CPU of `faceveil anonymize samples/faces_720p.mp4` (4.40
/// against 4.13 CPU-seconds, 2.42 against 2.33 s, 4 runs each with and without its sound track,
/// 2026-12-06, 08:37 UTC) and lost a generation of the sound's quality. Other sound is decoded and coded as
/// AAC, which every container written here takes.
pub(super) fn pass_aac_through(dec: &gst::Element) {
    if dec.find_property("caps").is_none() {
        return;
    }
    let mut caps = dec.property::<Option<gst::Caps>>("caps").unwrap_or_else(gst::Caps::new_empty);
    caps.make_mut().append(gst::Caps::builder("audio/mpeg").field("mpegversion", 4i32).build());
    dec.set_property("caps", caps);
}
