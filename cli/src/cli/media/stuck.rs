//! The served RTSP media that outlets feed through an appsrc: the slots that hold it, and a
//! media that stopped sending, told from one that is only slow, and dropped.
//!
//! Debian 12's gst-rtsp-server 1.22.0 now and then stops a TCP client's stream after its first
//! packet and holds the whole media with it (about once in 30 connections on a loaded 2-core
//! machine, 2026-12-03; once in 77 to 266, 2026-12-05, the first packet sent when a DESCRIBE
//! prerolled the media, none after the PLAY; CI failed so twice, and the tests that play a
//! served stream now run once more where their server's log shows it): the media's pipeline
//! takes no more frames and its clients wait forever. A slow client does not do that (gst-rtsp-server keeps a backlog per client and drops
//! one that falls too far behind), and an encoder slower than the frames still takes some. So a
//! played media whose appsrc holds `limit` frames and has handed none on during the last `limit`
//! pushes is dropped: its clients are disconnected and it is unprepared, which takes it out of
//! its factory's cache, so that they connect again (`serve`'s cameras and a `--serve-rtsp` relay
//! do) and get a new media.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_rtsp_server::prelude::*;

/// A media as its outlet feeds it through an appsrc.
pub struct Served {
    media: gst_rtsp_server::RTSPMedia,
    /// Frames the appsrc has handed on.
    taken: Arc<AtomicU64>,
    /// The count of `taken` last seen, and the pushes since it last moved.
    still: (u64, u64),
}

impl Served {
    pub fn new(media: &gst_rtsp_server::RTSPMedia, src: &gst_app::AppSrc) -> Self {
        let taken = Arc::new(AtomicU64::new(0));
        if let Some(pad) = src.static_pad("src") {
            let count = taken.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                count.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        Self { media: media.clone(), taken, still: (0, 0) }
    }

    /// Empties `slot` if it still holds `media` (the unprepared signal comes late, when a newer
    /// media may hold the slot).
    pub fn forget(slot: &Mutex<Option<Served>>, media: &gst_rtsp_server::RTSPMedia) {
        let mut current = slot.lock().unwrap();
        if current.as_ref().is_some_and(|s| s.media == *media) {
            *current = None;
        }
    }
}

/// Empties `slot` when the media whose appsrc is `src` goes away, unless a newer media has
/// taken the slot: the signal comes late (from the server's own thread), and emptying the slot
/// then would send every later frame nowhere while the new media waits for one to describe
/// itself.
pub fn forget(slot: &Mutex<Option<gst_app::AppSrc>>, src: &gst_app::AppSrc) {
    let mut current = slot.lock().unwrap();
    if current.as_ref() == Some(src) {
        *current = None;
    }
}

/// Called after each push into `src`, the appsrc of the media in `served`: drops that media and
/// its clients if it is stuck (module docs). Empties both slots then.
pub fn drop_if_stuck(
    server: &gst_rtsp_server::RTSPServer,
    appsrc: &Mutex<Option<gst_app::AppSrc>>,
    served: &Mutex<Option<Served>>,
    src: &gst_app::AppSrc,
    limit: u64,
) {
    use gst_rtsp_server::RTSPFilterResult::{Keep, Ref, Remove};
    let waiting = src.current_level_buffers();
    let stuck = {
        let mut slot = served.lock().unwrap();
        let Some(s) = slot.as_mut() else { return };
        let taken = s.taken.load(Ordering::Relaxed);
        s.still = if taken == s.still.0 { (taken, s.still.1 + 1) } else { (taken, 0) };
        // Played: prepared, and its stream no longer held back for a client's PLAY.
        let played = s.media.status() == gst_rtsp_server::RTSPMediaStatus::Prepared
            && s.media.stream(0).is_some_and(|stream| !stream.is_blocking());
        if waiting < limit || s.still.1 < limit || !played {
            return;
        }
        slot.take().expect("checked above").media
    };
    forget(appsrc, src);
    eprintln!(
        "faceveil: warning: a served stream stopped sending ({waiting} frames waiting); its clients are disconnected so that they reconnect"
    );
    server.client_filter(Some(&mut |_, client| {
        let mut plays = false;
        client.session_filter(Some(&mut |_, session| {
            plays |=
                !session.filter(Some(&mut |_, part| if part.media().as_ref() == Some(&stuck) { Ref } else { Keep })).is_empty();
            Keep
        }));
        if plays { Remove } else { Keep }
    }));
    let _ = stuck.unprepare();
}
