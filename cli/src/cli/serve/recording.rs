//! What a camera keeps on disk: MPEG-TS segments named by when their run began, the run's
//! signed end beside them, and no more segments than the retention allows.
//!
//! MPEG-TS keeps no comment tag, so a signed stream's end goes into a file of its own,
//! `RUN.faceveil-end`, which sorts after the run's segments (`RUN-00000.ts`, ...) and before the
//! next run's. A writer killed midway signs no end; while it runs, the file holds the last
//! checkpoint whose frames are all in closed segments, so `faceveil verify FOLDER` finds any cut
//! at the end of such a recording that reaches back past it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use faceveil::stream::end::{self, END_FILE_EXTENSION, StreamEnd};
use gstfaceveil::outofband;

/// Recording segments: MPEG-TS, which stays playable up to the last frame written however the
/// process ends (an MP4 needs its index written at the end).
const SEGMENT_EXTENSION: &str = "ts";

/// One run of a camera's recording (from a (re)connection to its end): its folder and the time
/// it began, which names its files.
pub struct Run {
    dir: PathBuf,
    stamp: String,
}

impl Run {
    /// A run that begins now, recording into `dir`.
    pub fn begin(dir: PathBuf) -> Result<Self> {
        Ok(Self { dir, stamp: stamp()? })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// splitmuxsink's file pattern: the run's start time then a counter, so that names sort by
    /// time across restarts and a restart never overwrites a segment.
    pub fn segment_pattern(&self) -> String {
        // The pattern goes through printf: a '%' in the folder's name is not a conversion.
        let dir = self.dir.display().to_string().replace('%', "%%");
        format!("{dir}/{}-%05d.{SEGMENT_EXTENSION}", self.stamp)
    }

    fn end_path(&self) -> PathBuf {
        self.dir.join(format!("{}.{END_FILE_EXTENSION}", self.stamp))
    }
}

/// The time now (UTC, to the millisecond), as file names in a camera's folder begin with it.
fn stamp() -> Result<String> {
    let now = gst::glib::DateTime::now_utc()?;
    Ok(format!("{}{:03}Z", now.format("%Y%m%dT%H%M%S.")?, now.microsecond() / 1000))
}

/// Keeps a run's signed end in its end file: the end itself when the stream ends, and until
/// then the newest checkpoint whose frames are surely on disk. A checkpoint is posted as its
/// last frame leaves `faceveil`, before that frame is coded and written, so it is kept only
/// once the segment after the one it came in has closed too.
pub struct SignedEnd<'a> {
    camera: &'a str,
    run: Option<&'a Run>,
    /// The newest checkpoint posted, and the newest posted before the last segment closed.
    posted: Option<StreamEnd>,
    closed: Option<StreamEnd>,
    /// The stream's own end was kept: no checkpoint replaces it.
    ended: bool,
}

impl<'a> SignedEnd<'a> {
    pub fn new(camera: &'a str, run: Option<&'a Run>) -> Self {
        Self { camera, run, posted: None, closed: None, ended: false }
    }

    /// Takes in a message from the camera's pipeline: a signed end or checkpoint, or a segment
    /// closed.
    pub fn message(&mut self, msg: &gst::Message) {
        if let Some(end) = outofband::stream_end_of(msg) {
            if end.open {
                self.posted = Some(end);
            } else {
                self.ended = true;
                self.keep(&end);
            }
        } else if is_segment_closed(msg)
            && let Some(checkpoint) = std::mem::replace(&mut self.closed, self.posted.clone())
        {
            self.keep(&checkpoint);
        }
    }

    fn keep(&self, end: &StreamEnd) {
        let Some(run) = self.run.filter(|_| !self.ended || !end.open) else { return };
        let path = run.end_path();
        let kept = end::write_file(&path, end).with_context(|| format!("cannot write {}", path.display()));
        if let Err(e) = kept {
            eprintln!("faceveil: camera {}: the recording's signed end is not kept: {e:#}", self.camera);
        }
    }
}

/// Whether `msg` says that splitmuxsink closed a segment.
pub fn is_segment_closed(msg: &gst::Message) -> bool {
    matches!(msg.view(), gst::MessageView::Element(e) if e.structure().is_some_and(|s| s.name() == "splitmuxsink-fragment-closed"))
}

/// Deletes the oldest segments in `dir` beyond `keep`, and the ends of runs older than the
/// oldest segment kept (their segments are gone, and an end with no stream fails `verify`).
pub fn prune(dir: &Path, keep: u32) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    let of_kind = |kind: &str| -> Vec<&PathBuf> {
        let mut found: Vec<&PathBuf> = files.iter().filter(|p| p.extension().is_some_and(|e| e == kind)).collect();
        found.sort();
        found
    };
    let segments = of_kind(SEGMENT_EXTENSION);
    let excess = segments.len().saturating_sub(keep as usize);
    for old in &segments[..excess] {
        if let Err(e) = std::fs::remove_file(old) {
            eprintln!("faceveil: cannot delete the old segment {}: {e}", old.display());
        }
    }
    let Some(oldest) = segments.get(excess).and_then(|p| p.file_name()) else { return };
    for end in of_kind(END_FILE_EXTENSION).into_iter().filter(|p| p.file_name().is_some_and(|n| n < oldest)) {
        let _ = std::fs::remove_file(end);
    }
}

#[cfg(test)]
mod tests {
    use faceveil::secrets::SigningKey;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faceveil-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        gst::init().unwrap();
        dir
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn retention_deletes_the_oldest_segments_and_the_ends_of_runs_gone() {
        let dir = scratch("prune");
        let pattern = Run::begin(dir.clone()).unwrap().segment_pattern();
        assert!(pattern.ends_with("Z-%05d.ts"), "{pattern}");
        // Two runs that each kept their end, and a third still recording: each end sorts after
        // its run's segments.
        let names = [
            "20261130T010000.000Z-00000.ts",
            "20261130T010000.000Z-00001.ts",
            "20261130T010000.000Z.faceveil-end",
            "20261130T020000.500Z-00000.ts",
            "20261130T020000.500Z.faceveil-end",
            "20261130T030000.000Z-00000.ts",
            "notes.txt",
        ];
        for n in names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        assert_eq!(names_in(&dir), names, "the names sort as listed");
        prune(&dir, 3);
        assert_eq!(names_in(&dir), names[1..], "the first run's end stays while a segment of it does");
        prune(&dir, 2);
        assert_eq!(names_in(&dir), names[3..], "its last segment gone, its end goes too");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn posted(name: &str, end: &StreamEnd) -> gst::Message {
        gst::message::Element::builder(gst::Structure::builder(name).field("end", end.encode()).build()).build()
    }

    #[test]
    fn a_checkpoint_is_kept_once_its_frames_are_in_closed_segments_and_the_end_replaces_it() {
        let dir = scratch("ends");
        let run = Run::begin(dir.clone()).unwrap();
        let (key, header) = (SigningKey::generate(), [3u8; 32]);
        let checkpoint =
            |frames| posted(outofband::STREAM_CHECKPOINT_MESSAGE, &StreamEnd::checkpoint_with(frames, None, &key, &header));
        let closed = gst::message::Element::builder(gst::Structure::new_empty("splitmuxsink-fragment-closed")).build();
        let kept = || std::fs::read_to_string(run.end_path()).ok().and_then(|t| StreamEnd::decode(t.trim_end()));
        let mut ends = SignedEnd::new("cam", Some(&run));

        ends.message(&checkpoint(30));
        ends.message(&closed);
        assert_eq!(kept(), None, "frames 0-29 may still be on their way to the segment that closed");
        ends.message(&checkpoint(60));
        ends.message(&checkpoint(90));
        ends.message(&closed);
        assert_eq!(kept().map(|e| (e.frames, e.open)), Some((30, true)), "posted before the segment before closed");
        ends.message(&closed);
        assert_eq!(kept().map(|e| e.frames), Some(90));

        let end = StreamEnd::signed_with(100, None, &key, &header);
        ends.message(&posted(outofband::STREAM_END_MESSAGE, &end));
        ends.message(&checkpoint(120));
        ends.message(&closed);
        ends.message(&closed);
        assert_eq!(kept(), Some(end), "the stream's end stays: no checkpoint replaces it");
        assert_eq!(names_in(&dir).len(), 1, "one file for the run: {:?}", names_in(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
