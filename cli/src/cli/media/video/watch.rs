//! What the probes of a running transcode follow: frames, how far the input reaches, an RTSP
//! server's goodbye and a change of resolution the container cannot hold.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gstfaceveil::streamdata;

/// What the probes count while a transcode runs.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) frames: AtomicU64,
    /// End (running time + duration) of the latest frame seen, in ns.
    pub(super) end_ns: AtomicU64,
    /// End of the latest buffer the input gave on any of its streams, in ns: a file whose audio
    /// runs on after its last picture is whole, though its video ends before its duration.
    pub(super) input_end_ns: AtomicU64,
    /// Set when the video changed resolution and the container cannot hold that: the input is
    /// then ended early, as with Ctrl-C, and what came before is kept.
    pub(super) size_change: Mutex<Option<String>>,
    /// Set when a live source sent no frame for its stall timeout
    /// ([`StreamSource::stall`](crate::cli::media::input::StreamSource::stall)): ended likewise.
    pub(super) stalled: AtomicBool,
    /// Set when an RTSP server closed the connection without ending the stream
    /// ([`input::Closing`](crate::cli::media::input::Closing)) and no frame came after it: ended
    /// likewise.
    pub(super) closed: AtomicBool,
    /// Why a live source failed after it had sent frames: ended likewise, its frames kept.
    pub(super) failed: Mutex<Option<String>>,
    /// Why writing a live recording failed midway (a full disk): it stopped there, and what
    /// was written is kept as it is.
    pub(super) unwritten: Mutex<Option<String>>,
    /// Set when an RTSP server said that its stream ends (an RTCP BYE): a connection it closes
    /// after that is closed at the end, not midway.
    pub(super) said_bye: AtomicBool,
}

/// Counts the frames leaving the stage.
pub(super) fn count_frames(pad: &gst::Pad, progress: Arc<Progress>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data {
            let start = streamdata::running_time(pad, buffer).unwrap_or(0);
            progress.end_ns.fetch_max(start + buffer.duration().map_or(0, |d| d.nseconds()), Ordering::SeqCst);
            progress.frames.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Follows how far the input's stream on `pad` reaches (video, audio or other).
pub(super) fn follow_input_end(pad: &gst::Pad, progress: Arc<Progress>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data
            && let Some(start) = streamdata::running_time(pad, buffer)
        {
            progress.input_end_ns.fetch_max(start + buffer.duration().map_or(0, |d| d.nseconds()), Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Notes in `progress` an RTSP server's word that its stream ends (an RTCP BYE, which rtspsrc
/// turns into the end of its pads); `dec` is the uridecodebin of a URI input. Over TCP the BYE
/// is read from the connection before the connection's close, so it is noted before rtspsrc
/// warns of the close.
pub(super) fn follow_goodbye(dec: &gst::Element, progress: Arc<Progress>) {
    dec.connect("source-setup", false, move |args| {
        let src = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
        if src.factory().is_some_and(|f| f.name() == "rtspsrc") {
            let progress = progress.clone();
            src.connect("new-manager", false, move |args| {
                let manager = args.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
                let progress = progress.clone();
                manager.connect("on-bye-ssrc", false, move |_| {
                    progress.said_bye.store(true, Ordering::SeqCst);
                    None
                });
                None
            });
        }
        None
    });
}

/// Watches the decoded video's caps: where the container cannot take a new resolution, the
/// change is not let through; it is recorded and the input is ended there.
pub(super) fn guard_size_changes(pad: &gst::Pad, progress: Arc<Progress>) {
    let first: Mutex<Option<(i32, i32)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::BUFFER, move |_, probe| {
        let stopped = progress.size_change.lock().unwrap().is_some();
        match &probe.data {
            Some(gst::PadProbeData::Buffer(_)) if stopped => gst::PadProbeReturn::Handled,
            Some(gst::PadProbeData::Event(ev)) => {
                let gst::EventView::Caps(c) = ev.view() else { return gst::PadProbeReturn::Ok };
                let Some(st) = c.caps().structure(0) else { return gst::PadProbeReturn::Ok };
                let size = (st.get::<i32>("width").unwrap_or(0), st.get::<i32>("height").unwrap_or(0));
                let mut first = first.lock().unwrap();
                match *first {
                    None => {
                        *first = Some(size);
                        gst::PadProbeReturn::Ok
                    }
                    Some(f) if f == size => gst::PadProbeReturn::Ok,
                    Some(f) => {
                        if !stopped {
                            // How many frames came before is said where the run ends: frames
                            // still on their way count too.
                            *progress.size_change.lock().unwrap() = Some(format!(
                                "the video changes resolution from {}x{} to {}x{}, which this container cannot hold (write to .ts to keep the whole stream)",
                                f.0, f.1, size.0, size.1
                            ));
                        }
                        gst::PadProbeReturn::Handled
                    }
                }
            }
            _ => gst::PadProbeReturn::Ok,
        }
    });
}
