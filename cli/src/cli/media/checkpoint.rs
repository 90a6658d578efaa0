//! The newest signed checkpoint of a video being written, kept beside it.
//!
//! A signed stream's end is written as the stream ends (the sidecar's last line, the
//! container's comment tag), so a writer that is killed (a crash, a power cut, `kill -9`) leaves
//! none, and a cut at the end of what it left would not show. While a stream runs, `faceveil`
//! posts a signed checkpoint every 30 frames ([`faceveil::stream::end`]); the newest whose
//! frames are all in the file is kept in `OUTPUT.faceveil-end` ([`end::file_beside`]), where
//! `faceveil verify` finds it. The file goes when the run ends (the stream's end is then in the
//! video and its sidecar, or no video was kept), but where writing failed midway (a full disk):
//! the video is kept as it was written, without an end.
//!
//! All in the file: a checkpoint is posted as its last frame leaves `faceveil`, before that frame
//! is coded, muxed and written, so it waits until the file sink has written a buffer stamped at or
//! past the running time of the frame [`CODED_AHEAD`] after it (muxers stamp what they write with
//! their input's running time, Matroska's blocks with their frame's; x264 may write a frame after
//! pictures of later frames, never after that one), and what makes it readable: Matroska and
//! MPEG-TS are read as far as they are written, but mp4mux's fragments (a live recording's MP4)
//! write their pictures first and their index (a `moof`, the first a `moov`) after them, and
//! pictures without it are not read. The sink writes each buffer through to the file,
//! unbuffered, before it takes the next: a buffer that reaches it says that those before it are
//! in the file. All of it happens in the pipeline's own threads, as the checkpoints are posted
//! and the buffers pass.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use faceveil::stream::end::{self, StreamEnd};
use gst::prelude::*;
use gstfaceveil::{outofband, streamdata};

use crate::cli::media::encoder::CODED_AHEAD;

/// Frames whose running time is remembered: checkpoints come every 30 frames, each posted just
/// before its last frame leaves the stage, and wait for the frame [`CODED_AHEAD`] after it.
const FRAMES_REMEMBERED: usize = 300;

/// Deletes the end file when dropped, unless kept: drop it once the pipeline has stopped.
pub struct CheckpointFile {
    path: PathBuf,
    kept: bool,
}

struct Keeper {
    path: PathBuf,
    /// The frames that left the stage, newest last: how many had left with it, and its running
    /// time (ns).
    frames: Mutex<VecDeque<(u64, u64)>>,
    /// Checkpoints posted and not yet known to be all in the file, oldest first.
    posted: Mutex<VecDeque<StreamEnd>>,
    /// What the sink has written.
    sink: Mutex<Sink>,
    /// Whether the file is an MP4, readable only as far as the last index written.
    mp4: bool,
    /// Whether a failure to write the file was said.
    warned: AtomicBool,
}

impl CheckpointFile {
    /// Keeps the checkpoints `veil` posts on `pipeline`'s bus of the video that `sink` writes,
    /// beside `output` (its final name); an end file left there by a run before goes at once.
    pub fn start(output: &Path, mp4: bool, pipeline: &gst::Pipeline, veil: &gst::Element, sink: &gst::Element) -> Result<Self> {
        let path = end::file_beside(output);
        remove(&path)?;
        let keeper = Arc::new(Keeper {
            path: path.clone(),
            frames: Mutex::default(),
            posted: Mutex::default(),
            sink: Mutex::default(),
            mp4,
            warned: AtomicBool::new(false),
        });
        let bus = pipeline.bus().context("a pipeline without a bus")?;
        bus.enable_sync_message_emission();
        let posted = keeper.clone();
        bus.connect_sync_message(Some("element"), move |_, msg| {
            if let Some(checkpoint) = outofband::stream_end_of(msg).filter(|end| end.open) {
                posted.posted.lock().unwrap().push_back(checkpoint);
            }
        });
        let (left, count) = (keeper.clone(), AtomicU64::new(0));
        veil.static_pad("src").context("the anonymizer has no src pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, probe| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data {
                    let count = count.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(at) = streamdata::running_time(pad, buffer) {
                        let mut frames = left.frames.lock().unwrap();
                        if frames.len() == FRAMES_REMEMBERED {
                            frames.pop_front();
                        }
                        frames.push_back((count, at));
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        sink.set_property_from_str("buffer-mode", "unbuffered");
        let written = keeper;
        sink.static_pad("sink").context("the file sink has no sink pad")?.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, probe| {
                let buffers: Vec<&gst::BufferRef> = match &probe.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => vec![buffer.as_ref()],
                    Some(gst::PadProbeData::BufferList(list)) => list.iter().collect(),
                    _ => vec![],
                };
                for buffer in buffers {
                    written.buffer(buffer);
                }
                gst::PadProbeReturn::Ok
            },
        );
        Ok(Self { path, kept: false })
    }

    /// Leaves the end file as it is: the run stopped without the stream's end (its writing
    /// failed), so the newest checkpoint kept is what bounds a cut of what was written.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Keeper {
    /// `buffer` reached the sink: the one before it is written, and with it perhaps a
    /// checkpoint's last frame.
    fn buffer(&self, buffer: &gst::BufferRef) {
        let readable = !self.mp4 || mp4_index(buffer);
        let written = self.sink.lock().unwrap().take(buffer.dts_or_pts().map(|t| t.nseconds()), readable);
        let Some(checkpoint) = written.and_then(|written| self.newest_written(written)) else { return };
        if let Err(e) = end::write_file(&self.path, &checkpoint)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!("faceveil: warning: the recording's newest signed checkpoint is not kept in {}: {e}", self.path.display());
        }
    }

    /// The newest checkpoint not yet kept whose last frame is written, if any.
    fn newest_written(&self, written: u64) -> Option<StreamEnd> {
        let (mut posted, frames) = (self.posted.lock().unwrap(), self.frames.lock().unwrap());
        // The running time of the frame surely coded after its last frame, or of a later one
        // where that is no longer remembered.
        let oldest = frames.front()?.0;
        let after = |checkpoint: &StreamEnd| {
            let count = (checkpoint.frames + CODED_AHEAD + 1).max(oldest);
            frames.iter().find(|(c, _)| *c == count).map(|(_, at)| *at)
        };
        let mut newest = None;
        while posted.front().and_then(after).is_some_and(|at| at <= written) {
            newest = posted.pop_front();
        }
        newest
    }
}

/// What a file sink has written, in the running time its buffers are stamped with (ns).
#[derive(Default)]
struct Sink {
    /// The latest time of what is written and readable.
    readable: Option<u64>,
    /// The latest time of what it was given, and whether the last buffer makes that readable.
    given: Option<u64>,
    last_makes_readable: bool,
}

impl Sink {
    /// Takes in the next buffer, stamped `stamped`, which makes what came before it readable or
    /// not; what is now written and readable.
    fn take(&mut self, stamped: Option<u64>, makes_readable: bool) -> Option<u64> {
        if self.last_makes_readable {
            self.readable = self.given;
        }
        self.given = self.given.max(stamped);
        self.last_makes_readable = makes_readable;
        self.readable
    }
}

/// Whether `buffer` is an MP4 index: a `moov` or `moof` box.
fn mp4_index(buffer: &gst::BufferRef) -> bool {
    let mut kind = [0; 8];
    buffer.size() >= kind.len() && buffer.copy_to_slice(0, &mut kind).is_ok() && matches!(&kind[4..], b"moov" | b"moof")
}

/// The run ended (or failed): the stream's end, if it has one, is in the video and its sidecar.
impl Drop for CheckpointFile {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = remove(&self.path) {
            eprintln!("faceveil: {e:#}");
        }
    }
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("cannot delete {}", path.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_sink_has_written_counts_only_once_the_buffer_after_it_comes_and_an_mp4_only_to_its_last_index() {
        // Matroska, MPEG-TS: each buffer is readable once the next one comes.
        let mut sink = Sink::default();
        assert_eq!(sink.take(Some(10), true), None, "the first buffer is held, not written");
        assert_eq!(sink.take(None, true), Some(10));
        assert_eq!(sink.take(Some(30), true), Some(10), "an unstamped buffer moves nothing");
        assert_eq!(sink.take(Some(20), true), Some(30), "times only go forward");
        // A fragmented MP4: pictures are readable only once the index after them is written.
        let mut sink = Sink::default();
        assert_eq!(sink.take(Some(10), false), None);
        assert_eq!(sink.take(Some(20), false), None, "pictures without their index");
        assert_eq!(sink.take(None, true), None, "the index itself is not written yet");
        assert_eq!(sink.take(Some(30), false), Some(20));
        assert_eq!(sink.take(Some(40), false), Some(20));
    }

    #[test]
    fn an_mp4_index_is_told_by_its_box_and_a_short_buffer_is_none() {
        gst::init().unwrap();
        let boxed = |kind: &[u8]| gst::Buffer::from_slice([&[0, 0, 0, 16], kind, &[0; 8]].concat());
        assert!(mp4_index(&boxed(b"moof")) && mp4_index(&boxed(b"moov")));
        assert!(!mp4_index(&boxed(b"mdat")));
        assert!(!mp4_index(&gst::Buffer::from_slice([0u8, 0, 0, 8])), "4 bytes: no box type");
    }
}
