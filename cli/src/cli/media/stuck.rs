//! The served RTSP media that outlets feed through an appsrc: the slots that hold it, the
//! timestamps its frames take, the clients that start to play it, and a media that stopped
//! sending, told from one that is only slow, and dropped.
//!
//! A served stream used to stop after its first packet now and then (one connection in 30 to
//! 270 under load, 2026-12-03 to 12-05; CI failed so twice): the first frame, pushed while a
//! DESCRIBE prerolled the media, could be stamped with the clock's absolute time (hours, the
//! machine's uptime) instead of the media's running time, and gst-rtsp-server's TCP sink, which
//! waits on the clock for each packet, then waited hours for it and held the whole media behind
//! it. [`running_time`] now refuses to stamp a frame until the appsrc plays (below). A media may
//! still stop for reasons of its own; a slow client does not do that (gst-rtsp-server keeps a
//! backlog per client and drops one that falls too far behind), and an encoder slower than the
//! frames still takes some. So a played media whose appsrc holds `limit` frames and has handed
//! none on during the last `limit` pushes is dropped, saying where its pipeline waits: its
//! clients are disconnected and it is unprepared, which takes it out of its factory's cache, so
//! that they connect again (`serve`'s cameras and a `--serve-rtsp` relay do) and get a new media.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_rtsp_server::prelude::*;

/// The running time of the media whose appsrc is `src`: what a frame pushed now is stamped with;
/// `None` until the appsrc plays. A pipeline going to PLAYING hands its elements the clock first
/// and each its base time just before that element changes state, sources last, so an appsrc can
/// have a clock and the base time of 0 it started with while the elements after it change state;
/// a frame stamped then carried the clock's absolute time. Once the appsrc plays, its base time is
/// the media's.
pub fn running_time(src: &gst_app::AppSrc) -> Option<gst::ClockTime> {
    if src.current_state() != gst::State::Playing {
        return None;
    }
    let (clock, base) = (src.clock()?, src.base_time()?);
    Some(clock.time().saturating_sub(base))
}

/// Calls `played` with the request of each client of `server` that starts to play (an RTSP
/// PLAY): where a served stream asks its encoder for a keyframe.
pub fn on_each_play(
    server: &gst_rtsp_server::RTSPServer,
    played: impl Fn(&gst_rtsp_server::RTSPContext) + Clone + Send + Sync + 'static,
) {
    server.connect_client_connected(move |_, client| {
        let played = played.clone();
        client.connect_play_request(move |_, context| played(context));
    });
}

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
        "faceveil: warning: a served stream stopped sending ({waiting} frames waiting; {}); its clients are disconnected so that they reconnect",
        where_it_waits(&stuck)
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

/// Where a stuck media's pipeline holds its data, for the warning: its state and running time,
/// the elements whose state differs from it, each queue's level, and each sink's last buffer in
/// running time (a sink waiting on the clock for a buffer stamped hours ahead is how the stall
/// that [`running_time`] ended was found: "appsink1 last 38904395 ms" at 3717 ms).
fn where_it_waits(media: &gst_rtsp_server::RTSPMedia) -> String {
    let element = media.element();
    let Some(pipeline) = element.parent().and_then(|p| p.downcast::<gst::Element>().ok()) else {
        return "no pipeline".into();
    };
    let (state, pending) = (pipeline.current_state(), pipeline.pending_state());
    let now = pipeline.current_running_time();
    let mut parts = vec![format!("pipeline {state:?}/{pending:?} at {}", ms(now))];
    let Some(bin) = pipeline.downcast_ref::<gst::Bin>() else { return parts.join(", ") };
    for e in bin.iterate_recurse().into_iter().flatten() {
        let name = e.name();
        if e.current_state() != state || e.pending_state() != gst::State::VoidPending {
            parts.push(format!("{name} {:?}/{:?}", e.current_state(), e.pending_state()));
        }
        if e.has_property("current-level-buffers") {
            let value = e.property_value("current-level-buffers");
            let level = value.get::<u32>().map(u64::from).or_else(|_| value.get::<u64>()).unwrap_or(0);
            if level > 0 {
                parts.push(format!("{name} holds {level}"));
            }
        }
        if e.has_property("last-sample") {
            let sample = e.property::<Option<gst::Sample>>("last-sample");
            let last = sample.as_ref().and_then(|s| {
                let segment = s.segment()?.downcast_ref::<gst::ClockTime>()?;
                segment.to_running_time(s.buffer()?.pts()?)
            });
            parts.push(format!("{name} last {}", ms(last)));
        }
    }
    parts.join(", ")
}

/// A running time as the warning writes it.
fn ms(t: Option<gst::ClockTime>) -> String {
    t.map_or("none".into(), |t| format!("{} ms", t.mseconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_stamped_with_the_running_time_only_once_its_appsrc_plays() {
        gst::init().unwrap();
        let src = gst_app::AppSrc::builder().is_live(true).format(gst::Format::Time).build();
        let pipeline = gst::Pipeline::new();
        let sink = gst::ElementFactory::make("fakesink").property("async", false).build().unwrap();
        pipeline.add_many([src.upcast_ref(), &sink]).unwrap();
        src.link(&sink).unwrap();
        // Halfway into PLAYING: the clock handed down, the base time not yet (it is still 0).
        let clock = gst::SystemClock::obtain();
        src.set_clock(Some(&clock)).unwrap();
        assert_eq!(src.base_time(), Some(gst::ClockTime::ZERO));
        assert_eq!(running_time(&src), None, "a frame would carry the clock's absolute time");
        pipeline.set_state(gst::State::Playing).unwrap();
        let (result, state, _) = pipeline.state(gst::ClockTime::from_seconds(5));
        assert!(result.is_ok() && state == gst::State::Playing);
        let now = running_time(&src).expect("a playing appsrc stamps its frames");
        // Its running time: since the pipeline started, not the clock's absolute time.
        assert!(now < gst::ClockTime::from_seconds(5), "{now} is not the media's running time");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
