//! Playing a pipeline to its end while reading its bus: stops, stalls, failures and what the
//! elements have to say, as the user reads them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use gst::prelude::*;
use gstfaceveil::streamdata;

use super::transcode::Entries;
use super::watch::Progress;
use crate::cli::credentials::login;
use crate::cli::media::input::{self};

/// Plays the pipeline to its end, or until it is stopped; `stall`, for a live input: how long
/// it may send no frame before it is ended as hung.
pub(super) fn run_to_eos(
    pipeline: &gst::Pipeline,
    input: &gst::Element,
    entries: &Entries,
    stage: &[gst::Element],
    progress: &Progress,
    bar: &indicatif::ProgressBar,
    stall: Option<Duration>,
) -> Result<()> {
    let live = stall.is_some();
    let ours = |msg: &gst::Message| msg.src().is_some_and(|s| stage.iter().any(|e| e.upcast_ref::<gst::Object>() == s));
    let bus = pipeline.bus().expect("pipelines have a bus");
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The element that refused to start said why on the bus (a folder that does not exist, a
        // camera that is not there); the state change alone says only that one failed.
        let why = bus.pop_filtered(&[gst::MessageType::Error]).map(|msg| error_text(&msg, ours(&msg)));
        let _ = pipeline.set_state(gst::State::Null);
        return Err(match why {
            Some(text) => anyhow!(text),
            None => anyhow::Error::from(e).context("cannot start the pipeline"),
        });
    }
    let started = std::time::Instant::now();
    // How many of the entries have been sent the end: branches may still be linked after it.
    let mut ended = 0;
    let mut stopping = false;
    let mut said = std::collections::HashSet::new();
    let (mut seen, mut since) = (0, std::time::Instant::now());
    let mut closing = input::Closing::default();
    loop {
        let msg = bus.timed_pop(gst::ClockTime::from_mseconds(250));
        let frames = progress.frames.load(Ordering::SeqCst);
        if frames != seen {
            (seen, since) = (frames, std::time::Instant::now());
        }
        // A live source that sends nothing (a camera that hangs; an RTSP server that closed the
        // connection, after which rtspsrc may wait on without an end) would hold the recording
        // open for ever: it is ended as Ctrl-C ends it, its frames kept.
        if stall.is_some_and(|stall| since.elapsed() > stall) {
            progress.stalled.store(true, Ordering::SeqCst);
        }
        if closing.over(since) {
            progress.closed.store(true, Ordering::SeqCst);
        }
        stopping |= crate::cli::stop::requested()
            || progress.size_change.lock().unwrap().is_some()
            || progress.stalled.load(Ordering::SeqCst)
            || progress.closed.load(Ordering::SeqCst);
        if stopping {
            let entries = entries.lock().unwrap();
            if entries.is_empty() {
                // Stopped while still connecting: there is nothing to finish.
                return Ok(());
            }
            // The end goes in where our branches begin, not into the input: an RTSP source
            // passes an EOS through its jitter buffer and depayloader, which may hold it back
            // for as long as the server sends nothing. The input then sees EOS on its pushes.
            for entry in &entries[ended..] {
                entry.send_event(gst::event::Eos::new());
            }
            ended = entries.len();
        }
        if bar.length() == Some(0)
            && let Some(d) = pipeline.query_duration::<gst::ClockTime>()
        {
            bar.set_length(d.mseconds());
        }
        if let Some(pos) = pipeline.query_position::<gst::ClockTime>() {
            bar.set_position(pos.mseconds());
        }
        bar.set_message(format!("{frames} frames, {:.1} fps", frames as f64 / started.elapsed().as_secs_f64().max(1e-3)));
        let Some(msg) = msg else { continue };
        // A close after the server said that the stream ends is its end.
        if !progress.said_bye.load(Ordering::SeqCst) {
            closing.message(&msg);
        }
        match msg.view() {
            gst::MessageView::Eos(_) => {
                if closing.pending() {
                    progress.closed.store(true, Ordering::SeqCst);
                }
                return Ok(());
            }
            // Once the input has been cut, its complaints about that are expected.
            gst::MessageView::Error(_) if stopping && msg.src().is_some_and(|s| s.has_as_ancestor(input)) => {}
            // A live source that fails midway (a camera or server gone, over UDP rtspsrc's
            // reconnection refused) ends the recording as a stall does: what it sent is kept.
            gst::MessageView::Error(_) if live && frames > 0 && msg.src().is_some_and(|s| s.has_as_ancestor(input)) => {
                *progress.failed.lock().unwrap() = Some(error_text(&msg, false));
                stopping = true;
            }
            // A live recording that cannot be written further (a full disk, the file or its
            // sidecar) stops there: nothing more can be written to end it, and what was is all
            // there is of what the camera saw, so it is kept as it is rather than deleted.
            gst::MessageView::Error(e)
                if live
                    && frames > 0
                    && (e.error().matches(gst::ResourceError::NoSpaceLeft) || e.error().matches(gst::ResourceError::Write)) =>
            {
                *progress.unwritten.lock().unwrap() = Some(error_text(&msg, ours(&msg)));
                return Ok(());
            }
            // The elements' own messages say all there is to say; others name where they came
            // from. Their warnings (frames that passed unrestored before the stream's header, a
            // fallback that covered faces) are the user's to know; a note (the small faces a
            // large frame's detection misses) once, though both elements may say it.
            gst::MessageView::Warning(_) => {
                if let Some(words) = element_words(&msg).filter(|w| !w.starts_with("note: ") || said.insert(w.clone())) {
                    bar.suspend(|| eprintln!("faceveil: {words}"));
                }
            }
            gst::MessageView::Info(_) => {
                if let Some(words) = element_words(&msg).filter(|w| said.insert(w.clone())) {
                    bar.suspend(|| eprintln!("faceveil: {words}"));
                }
            }
            gst::MessageView::Error(_) => bail!(error_text(&msg, ours(&msg))),
            _ => {}
        }
    }
}

/// An error message as the user reads it: faceveil's own elements' say all there is to say;
/// another element's gets the details GStreamer keeps under the place in its source ("system
/// error: No such file or directory") and the element's name.
fn error_text(msg: &gst::Message, ours: bool) -> String {
    let gst::MessageView::Error(err) = msg.view() else { return String::new() };
    if ours {
        return err.error().to_string();
    }
    let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
    let details: Vec<&str> = debug.lines().skip(1).map(str::trim).filter(|l| !l.is_empty()).collect();
    let details = if details.is_empty() { String::new() } else { format!(": {}", details.join("; ")) };
    let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
    let said = err.error().to_string();
    // filesink says "No space left on the resource." and nothing of which file: name it.
    let file = msg
        .src()
        .and_then(|s| s.downcast_ref::<gst::Element>())
        .filter(|e| e.find_property("location").is_some_and(|p| p.value_type() == String::static_type()))
        .and_then(|e| e.property::<Option<String>>("location"))
        .filter(|location| !said.contains(location.as_str()))
        .map(|location| format!(" ({location})"))
        .unwrap_or_default();
    let hint = if err.error().matches(gst::ResourceError::NotAuthorized) {
        "; the source plays only to a valid login: give its user with --source-user and its password with \
         --source-password-file or $FACEVEIL_SOURCE_PASSWORD"
    } else {
        ""
    };
    // A source's location and its details can hold a URL with its password.
    login::hide_passwords(&format!("{}{file}{details} ({src}){hint}", said.trim_end_matches('.')))
}

/// What faceveil's own elements say to the user, as they should read it: their warnings (a
/// fallback that covered faces, a stream stored turned) and notes (the small faces a large
/// frame's detection misses). None for other messages and other elements.
pub fn element_words(msg: &gst::Message) -> Option<String> {
    let ours = msg
        .src()
        .and_then(|s| s.downcast_ref::<gst::Element>())
        .and_then(gst::Element::factory)
        .and_then(|f| f.plugin_name())
        .is_some_and(|plugin| plugin == "faceveil");
    match msg.view() {
        // Given full-range YUV on purpose (colour::FullRange::AsYuv): said once, as what it means
        // here, rather than as the cure a pipeline of one's own would need.
        gst::MessageView::Warning(w) if ours && w.error().to_string().contains(streamdata::FULL_RANGE_WARNING_MARK) => Some(
            "note: this video is full range (0-255); with sealed faces it stays in its own YUV planes, which the model reads as limited range (16-235): a surrogate's darkest and brightest levels clip, and the sealed faces come back exact".into(),
        ),
        gst::MessageView::Warning(w) if ours || w.error().to_string().ends_with(streamdata::LAST_PICTURE_LEFT_OUT) => {
            Some(format!("warning: {}", w.error()))
        }
        gst::MessageView::Info(i) if ours => Some(format!("note: {}", i.error())),
        _ => None,
    }
}

/// The message types [`element_words`] reads, with those a run ends on.
pub const WATCHED: [gst::MessageType; 4] =
    [gst::MessageType::Error, gst::MessageType::Eos, gst::MessageType::Warning, gst::MessageType::Info];
