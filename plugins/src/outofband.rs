//! faceveil's data that travels beside the frames rather than in them: the container's comment
//! tag (the stream header, and a signed stream's end once it has one), the element messages a
//! signed stream's end and checkpoints are posted in for applications, the event that carries
//! checkpoints to the file's writer, and the query by which a restore learns
//! whether, and against whom, its coded pictures are checked before the decoder.

use faceveil::secrets::Signer;
use faceveil::stream::TAG_PREFIX;
use faceveil::stream::end::StreamEnd;
use faceveil::stream::header::StreamHeader;
use gst::prelude::*;

/// The header as a container comment tag; in a signed stream, with the stream's signed end on
/// a second line. A muxer keeps the first value a tag is given (a tag setter's default merge
/// mode), so a signed stream's comment waits for its end.
pub fn header_tag(header: &StreamHeader, end: Option<&StreamEnd>) -> String {
    match end {
        Some(end) => format!("{TAG_PREFIX}{}\n{}", header.encode(), end.encode()),
        None => format!("{TAG_PREFIX}{}", header.encode()),
    }
}

/// The header text a comment tag carries, if it is faceveil's.
pub fn header_from_tag(comment: &str) -> Option<&str> {
    comment.strip_prefix(TAG_PREFIX).map(|text| text.split_once('\n').map_or(text, |(header, _)| header))
}

/// The signed end a faceveil comment tag carries, if it has one.
pub fn end_from_tag(comment: &str) -> Option<StreamEnd> {
    comment.strip_prefix(TAG_PREFIX)?.split_once('\n').and_then(|(_, end)| StreamEnd::decode(end))
}

/// The element message `faceveil` posts as a signed stream ends, its end's line in `end`, for an
/// application to keep where its container keeps none (serve's MPEG-TS segments).
pub const STREAM_END_MESSAGE: &str = "faceveil-stream-end";

/// The element message a signed stream's `faceveil` posts every so many frames while it goes
/// on, a checkpoint ([`StreamEnd::open`]) in `end`, for an application to keep where a writer
/// killed midway would leave no end (serve keeps the last whose frames are all on disk).
pub const STREAM_CHECKPOINT_MESSAGE: &str = "faceveil-stream-checkpoint";

/// The most pictures x264 codes ahead of the frames before them (its limit on B-frames): a
/// picture is written after every picture of a frame this many frames before it.
pub const CODED_AHEAD: u64 = 16;

/// The out-of-band event a signed stream's `faceveil` sends downstream with each checkpoint once
/// the frame [`CODED_AHEAD`] after the checkpoint's last has left it: the checkpoint in `end`, and
/// that frame's running time (ns) in `written-after`. Every picture of the checkpoint's frames is
/// coded before that frame's, so a file that holds a picture stamped at or past it holds them
/// all. Encoders, parsers, queues and muxers pass such an event on at once; `faceveilcheckpoint`,
/// before the file sink, keeps what the file holds of them.
const CHECKPOINT_EVENT: &str = "faceveil-checkpoint";

/// `CHECKPOINT_EVENT` of `checkpoint`, written once the file holds a picture stamped at or past
/// `written_after` (ns of running time).
pub fn checkpoint_event(checkpoint: &StreamEnd, written_after: u64) -> gst::Event {
    let s =
        gst::Structure::builder(CHECKPOINT_EVENT).field("end", checkpoint.encode()).field("written-after", written_after).build();
    gst::event::CustomDownstreamOob::new(s)
}

/// The checkpoint and its running time a `CHECKPOINT_EVENT` carries, if `event` is one.
pub fn checkpoint_of(event: &gst::EventRef) -> Option<(StreamEnd, u64)> {
    let s = event.structure().filter(|s| event.type_() == gst::EventType::CustomDownstreamOob && s.name() == CHECKPOINT_EVENT)?;
    Some((StreamEnd::decode(s.get::<&str>("end").ok()?)?, s.get::<u64>("written-after").ok()?))
}

/// The signed end or checkpoint a [`STREAM_END_MESSAGE`] or [`STREAM_CHECKPOINT_MESSAGE`]
/// carries, if `message` is one ([`StreamEnd::open`] tells them apart).
pub fn stream_end_of(message: &gst::Message) -> Option<StreamEnd> {
    let gst::MessageView::Element(element) = message.view() else { return None };
    let s = element.structure().filter(|s| [STREAM_END_MESSAGE, STREAM_CHECKPOINT_MESSAGE].contains(&s.name().as_str()))?;
    StreamEnd::decode(s.get::<&str>("end").ok()?)
}

/// The demuxers of containers that keep faceveil's comment tag (MP4 and QuickTime, Matroska
/// and WebM); MPEG-TS keeps none.
pub(crate) const TAGGED_CONTAINERS: &[&str] = &["qtdemux", "matroskademux"];

/// What a video's container holds of faceveil's tags.
#[derive(Debug, Default)]
pub struct ContainerTags {
    /// The container is of a kind that keeps faceveil's comment tag, whether or not it does.
    pub keeps_tags: bool,
    /// The stream's signed end, from the comment tag.
    pub end: Option<StreamEnd>,
}

/// The custom query by which a restore's `faceunveil` asks upstream who checks its coded
/// pictures before the decoder: `faceveilsei` with a `signer`, or a front end's parser probe
/// ([`crate::streamdata::sei_from_parser`]), answers with that signer; decoders, parsers and
/// queues pass it on.
const PICTURES_CHECKED_QUERY: &str = "faceveil-pictures-checked";

/// Answers `query` with `signer` where it is `PICTURES_CHECKED_QUERY`: whether it was.
pub fn answer_pictures_checked(query: &mut gst::QueryRef, signer: &Signer) -> bool {
    if query.type_() != gst::QueryType::Custom || query.structure().is_none_or(|s| s.name() != PICTURES_CHECKED_QUERY) {
        return false;
    }
    query.structure_mut().set("signer", signer.to_string());
    true
}

/// Who checks the coded pictures upstream of the sink pad `pad`, as answered.
pub fn pictures_checked_by(pad: &gst::Pad) -> Option<String> {
    let mut query = gst::query::Custom::new(gst::Structure::new_empty(PICTURES_CHECKED_QUERY));
    if !pad.peer_query(&mut query) {
        return None;
    }
    query.structure().and_then(|s| s.get::<String>("signer").ok())
}
