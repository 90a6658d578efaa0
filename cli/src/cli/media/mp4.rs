//! Where GStreamer 1.22's MP4 reader (qtdemux) is mended: on the events that reach the H.264
//! and H.265 parsers after it, inside a decodebin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;
use gstfaceveil::streamdata;

/// Calls `mend` on each event that reaches an H.264 or H.265 parser of `decodebin` (a decodebin
/// or uridecodebin) when the stream comes from an MP4; call before its pads are linked.
pub fn at_its_parsers(decodebin: &gst::Element, mend: impl Fn(&mut gst::PadProbeInfo) + Clone + Send + Sync + 'static) {
    let Some(bin) = decodebin.downcast_ref::<gst::Bin>() else { return };
    let from_mp4 = Arc::new(AtomicBool::new(false));
    bin.connect_deep_element_added(move |_, _, element| {
        let Some(factory) = element.factory() else { return };
        match factory.name().as_str() {
            "qtdemux" => from_mp4.store(true, Ordering::Relaxed),
            "h264parse" | "h265parse" => {
                let Some(sink) = element.static_pad("sink") else { return };
                let (from_mp4, mend) = (from_mp4.clone(), mend.clone());
                sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, probe| {
                    if from_mp4.load(Ordering::Relaxed) {
                        mend(probe);
                    }
                    gst::PadProbeReturn::Ok
                });
            }
            _ => {}
        }
    });
}

/// An MP4's video is decoded to its last picture, where a writer killed before it finished
/// the file left the segment stopping short of the pictures shown last in each fragment
/// ([`streamdata::open_ended`]): what a killed run wrote is read, and restores, whole.
pub fn every_picture_of_an_unfinished_file(decodebin: &gst::Element) {
    at_its_parsers(decodebin, |probe| {
        if let Some(gst::PadProbeData::Event(event)) = &mut probe.data
            && let Some(open) = streamdata::open_ended(event)
        {
            *event = open;
        }
    });
}
