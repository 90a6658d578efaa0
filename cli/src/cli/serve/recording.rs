//! What a camera keeps on disk: MPEG-TS segments named by when their run began, the run's
//! signed end beside them, and no more segments than the retention allows: a number of segments
//! per camera, and free space on the disk.
//!
//! MPEG-TS keeps no comment tag, so a signed stream's end goes into a file of its own,
//! `RUN.faceveil-end`, which sorts after the run's segments (`RUN-00000.ts`, ...) and before the
//! next run's. A writer killed midway signs no end; while it runs, the file holds the last
//! checkpoint whose frames are all in closed segments, so `faceveil verify FOLDER` finds any cut
//! at the end of such a recording that reaches back past it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use faceveil::stream::end::{self, END_FILE_EXTENSION, StreamEnd};
use gstfaceveil::outofband;

use crate::cli::media::writes::LastWrite;

use super::config::Record;
use super::space::{self, Bytes, FreeSpace};

/// Recording segments: MPEG-TS, which stays playable up to the last frame written however the
/// process ends (an MP4 needs its index written at the end).
const SEGMENT_EXTENSION: &str = "ts";

/// One run of a camera's recording (from a (re)connection to its end): its folder and the time
/// it began, which names its files.
pub struct Run {
    dir: PathBuf,
    stamp: String,
    /// Its file sink's last write, as the sink's pad saw it: where a full disk may have cut
    /// it short.
    pub last_write: Arc<Mutex<LastWrite>>,
}

impl Run {
    /// A run that begins now, recording into `dir`.
    pub fn begin(dir: PathBuf) -> Result<Self> {
        Ok(Self { dir, stamp: stamp()?, last_write: Arc::default() })
    }

    /// splitmuxsink's file pattern: the run's start time then a counter, so that names sort by
    /// time across restarts and a restart never overwrites a segment.
    pub fn segment_pattern(&self) -> String {
        // The pattern goes through printf: a '%' in the folder's name is not a conversion.
        let dir = self.dir.display().to_string().replace('%', "%%");
        format!("{dir}/{}-%05d.{SEGMENT_EXTENSION}", self.stamp)
    }

    /// Once the run's pipeline has stopped: a segment that holds only part of its last write (a
    /// disk that filled within it) is cut back to where that write began, so that it ends on a
    /// whole picture; said on standard error.
    pub fn cut_back(&self, camera: &str) {
        match self.last_write.lock().unwrap_or_else(PoisonError::into_inner).cut_back() {
            Ok(Some(cut)) => eprintln!(
                "faceveil: camera {camera}: {} ends in a write cut short (a full disk): its {} bytes are taken off",
                cut.file.display(),
                cut.bytes
            ),
            Ok(None) => {}
            Err(e) => eprintln!("faceveil: camera {camera}: {e:#}"),
        }
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

/// A camera's retention: at most `record.keep` segments in its folder, and `record.min_free`
/// left on the disk, applied as each segment closes. What it deleted for space, or could not
/// free, is said once each time it starts.
pub struct Retention<'a> {
    camera: &'a str,
    record: &'a Record,
    folder: PathBuf,
    /// Said so already: segments deleted for space, or the disk still short of `min_free`.
    said_deleting: bool,
    said_short: bool,
}

impl<'a> Retention<'a> {
    pub fn new(camera: &'a str, record: &'a Record) -> Self {
        Self { camera, record, folder: record.dir.join(camera), said_deleting: false, said_short: false }
    }

    /// The camera's folder, where its segments go.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn apply(&mut self) {
        prune(&self.folder, self.record.keep);
        let Some(min_free) = self.record.min_free else { return };
        let room = match make_room(&self.record.dir, min_free) {
            Ok(room) => room,
            Err(e) => return eprintln!("faceveil: camera {}: {e:#}", self.camera),
        };
        let dir = self.record.dir.display();
        if room.deleted > 0 && !self.said_deleting {
            eprintln!(
                "faceveil: camera {}: the disk that holds {dir} has under {min_free} free (record.min_free): the oldest segments there are deleted as new ones are written ({} now)",
                self.camera, room.deleted
            );
        }
        self.said_deleting |= room.deleted > 0;
        let short = room.free < room.wanted;
        if short && !self.said_short {
            eprintln!(
                "faceveil: camera {}: the disk that holds {dir} has {} free, under record.min_free ({min_free}), with each camera's newest segment alone left there: something else fills it",
                self.camera,
                Bytes(room.free)
            );
        }
        self.said_short = short;
    }
}

/// Deletes the empty segments in a camera's folder once nothing records there: splitmuxsink
/// opens each segment before it writes to it, so a disk that filled as a segment opened leaves
/// a file of no bytes, which `verify` cannot read.
pub fn drop_empty_segments(folder: &Path) {
    for segment in segments_in(folder) {
        if segment.metadata().is_ok_and(|m| m.len() == 0) {
            delete(&segment);
        }
    }
}

/// The segments in a camera's folder, oldest first (their names begin with their run's start).
fn segments_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_segment_name))
        .collect();
    found.sort();
    found
}

/// Whether `name` is a segment's as [`Run::segment_pattern`] makes them:
/// `20261130T010000.000Z-00000.ts` (the counter may grow past five digits).
fn is_segment_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXTENSION}")) else { return false };
    let (stamp, counter) = stem.split_at(stem.len().min(21));
    let shape = stamp.bytes().enumerate().all(|(i, c)| match i {
        8 => c == b'T',
        15 => c == b'.',
        19 => c == b'Z',
        20 => c == b'-',
        _ => c.is_ascii_digit(),
    });
    stamp.len() == 21 && shape && counter.len() >= 5 && counter.bytes().all(|c| c.is_ascii_digit())
}

/// Deletes an old segment; whether it was there to delete.
fn delete(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        // Another serve process making room on the same disk was first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            eprintln!("faceveil: cannot delete the old segment {}: {e}", path.display());
            false
        }
    }
}

/// Deletes the oldest segments in `dir` beyond `keep`, and the ends of runs older than the
/// oldest segment kept (their segments are gone, and an end with no stream fails `verify`).
pub fn prune(dir: &Path, keep: u32) {
    let segments = segments_in(dir);
    for old in &segments[..segments.len().saturating_sub(keep as usize)] {
        delete(old);
    }
    drop_ends_gone(dir);
}

/// Deletes the end files of runs older than the oldest segment in `dir`.
fn drop_ends_gone(dir: &Path) {
    let Some(oldest) = segments_in(dir).first().and_then(|p| p.file_name().map(ToOwned::to_owned)) else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let (path, name) = (entry.path(), entry.file_name());
        if path.extension().is_some_and(|e| e == END_FILE_EXTENSION) && name < oldest {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Two cameras recording to one disk make room one at a time: each would otherwise delete a
/// segment for the same shortfall.
static MAKING_ROOM: Mutex<()> = Mutex::new(());

/// What [`make_room`] left: the bytes free, the bytes wanted free, and the segments it deleted.
#[derive(Debug, PartialEq)]
pub struct Room {
    pub free: u64,
    pub wanted: u64,
    pub deleted: usize,
}

/// Deletes the oldest segments recorded under `root` (a `record.dir`: the folders of all its
/// cameras, those no longer configured included), oldest first by the time in their names, until
/// the disk holding it has `min_free` free. Each folder's newest segment stays: it may be the
/// one being written. A disk that still has less free then is filled by something else.
pub fn make_room(root: &Path, min_free: FreeSpace) -> Result<Room> {
    let _one_at_a_time = MAKING_ROOM.lock().unwrap_or_else(PoisonError::into_inner);
    let (_, size) = space::of_disk(root)?;
    make_room_with(root, min_free.bytes_of(size), || space::of_disk(root).map(|(free, _)| free))
}

/// [`make_room`] with the free space told by `free`.
fn make_room_with(root: &Path, wanted: u64, mut free: impl FnMut() -> Result<u64>) -> Result<Room> {
    let mut room = Room { free: free()?, wanted, deleted: 0 };
    if room.free >= wanted {
        return Ok(room);
    }
    let folders: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot read {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    let mut old: Vec<PathBuf> = Vec::new();
    for folder in &folders {
        let mut segments = segments_in(folder);
        segments.pop();
        old.extend(segments);
    }
    old.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for path in &old {
        if room.free >= wanted {
            break;
        }
        if delete(path) {
            room.deleted += 1;
        }
        room.free = free()?;
    }
    for folder in &folders {
        drop_ends_gone(folder);
    }
    room.free = free()?;
    Ok(room)
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

    #[test]
    fn empty_segments_are_dropped_and_the_others_kept() {
        let dir = scratch("empty");
        let (full, empty) = ("20261130T010000.000Z-00000.ts", "20261130T010000.000Z-00001.ts");
        std::fs::write(dir.join(full), b"x").unwrap();
        std::fs::write(dir.join(empty), b"").unwrap();
        std::fs::write(dir.join("empty.ts"), b"").unwrap();
        drop_empty_segments(&dir);
        assert_eq!(names_in(&dir), ["20261130T010000.000Z-00000.ts", "empty.ts"], "only serve's empty segment goes");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn room_is_made_from_the_oldest_segments_of_every_camera_but_each_ones_newest() {
        let root = scratch("room");
        // Two cameras and one no longer configured; 100 bytes a segment, each camera's newest
        // perhaps being written; a disk of 1,000 bytes, on which the files are all that is kept.
        let files = [
            ("gate", "20261130T010000.000Z-00000.ts"),
            ("gate", "20261130T010000.000Z-00001.ts"),
            ("gate", "20261130T010000.000Z.faceveil-end"),
            ("gate", "20261130T040000.000Z-00000.ts"),
            ("yard", "20261130T020000.000Z-00000.ts"),
            ("yard", "20261130T020000.000Z-00001.ts"),
            ("gone", "20261130T003000.000Z-00000.ts"),
            ("gone", "20261130T003000.000Z-00001.ts"),
            ("gone", "notes.ts"),
        ];
        for (camera, name) in files {
            std::fs::create_dir_all(root.join(camera)).unwrap();
            std::fs::write(root.join(camera).join(name), [0u8; 100]).unwrap();
        }
        let used = |dir: &Path| -> u64 {
            std::fs::read_dir(dir)
                .unwrap()
                .flat_map(|c| std::fs::read_dir(c.unwrap().path()).unwrap())
                .map(|f| f.unwrap().metadata().unwrap().len())
                .sum()
        };
        let free = || Ok(1_000u64.saturating_sub(used(&root)));
        assert_eq!(make_room_with(&root, 100, free).unwrap(), Room { free: 100, wanted: 100, deleted: 0 });
        // 300 free: two more segments go, the oldest of all (the camera no longer configured's
        // first; then gate's first, its newest kept), and gate's first run's end with them.
        let room = make_room_with(&root, 300, free).unwrap();
        assert_eq!(room, Room { free: 300, wanted: 300, deleted: 2 });
        let left = |camera: &str| names_in(&root.join(camera));
        assert_eq!(left("gone"), ["20261130T003000.000Z-00001.ts", "notes.ts"]);
        assert_eq!(
            left("gate"),
            ["20261130T010000.000Z-00001.ts", "20261130T010000.000Z.faceveil-end", "20261130T040000.000Z-00000.ts"]
        );
        // More than can be had: every segment but each folder's newest goes, and what is left says so.
        let room = make_room_with(&root, 900, free).unwrap();
        assert_eq!(room, Room { free: 600, wanted: 900, deleted: 2 });
        assert_eq!(left("gate"), ["20261130T040000.000Z-00000.ts"], "the end of a run with no segment left goes");
        assert_eq!(left("yard"), ["20261130T020000.000Z-00001.ts"]);
        assert_eq!(left("gone"), ["20261130T003000.000Z-00001.ts", "notes.ts"], "nothing but segments is touched");
        std::fs::remove_dir_all(&root).unwrap();
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
