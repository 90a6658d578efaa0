//! The signed end of a stream. Each frame's record is signed, so records cut out of the middle
//! show as a gap in their numbers; records cut off the end leave none. A signed stream's writer
//! therefore signs, when the stream ends, how many frames it had, and a check that finds that
//! end finds a recording cut short, and one that does not find it says the end is unproven.
//! It travels as the sidecar's last line and in the container's faceveil comment tag, both
//! written when the stream ends, and in a file of its own beside `faceveil serve`'s MPEG-TS
//! segments; SEI cannot carry it (no frame follows the last).
//!
//! A writer that is killed, or still writing, has signed no end. While it writes, it signs
//! checkpoints: open ends that say the stream had at least so many frames. `faceveil serve`
//! keeps the last checkpoint whose frames are all in closed segments, and `faceveil anonymize`
//! the last whose frames are all in its file, each in an end file, so a recording whose writer
//! died can still be cut at its end by no more than what followed that checkpoint.

use serde::{Deserialize, Serialize};

/// The extension of a file that holds a stream's end, or its newest checkpoint, beside its
/// recording: `faceveil serve` keeps one in a camera's segment folder for each run, and
/// `faceveil anonymize` one beside a signed video while it writes it ([`file_beside`]).
pub const END_FILE_EXTENSION: &str = "faceveil-end";

use std::path::{Path, PathBuf};

use crate::secrets::{Signer, SigningKey};

/// The end file of the video at `video`, beside it under its name.
pub fn file_beside(video: &Path) -> PathBuf {
    let mut name = video.as_os_str().to_owned();
    name.push(format!(".{END_FILE_EXTENSION}"));
    PathBuf::from(name)
}

/// Writes `end` into the end file `path`, replacing the file whole (written beside it, then
/// renamed over it), so that a writer killed meanwhile leaves the end kept before. Where it
/// cannot be written (a full disk), the part written is deleted and the end kept before stays.
pub fn write_file(path: &Path, end: &StreamEnd) -> std::io::Result<()> {
    let part = path.with_extension(format!("{END_FILE_EXTENSION}.part"));
    let written = std::fs::write(&part, end.encode() + "\n").and_then(|()| std::fs::rename(&part, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// Deletes the end file `path`; one that is not there is no error.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The end an end file holds; `None` where its first line is none.
pub fn read_file(path: &Path) -> std::io::Result<Option<StreamEnd>> {
    Ok(std::fs::read_to_string(path)?.lines().next().and_then(StreamEnd::decode))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// How many frames the stream had: its records are numbered 0 to `frames - 1`.
    pub frames: u64,
    /// The last frame's presentation time (ns), where it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pts: Option<u64>,
    /// Signed while the stream was still being written (a checkpoint): it had at least
    /// `frames` frames, and more may have followed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
    /// The signer's signature of the fields above, bound to the stream's header.
    pub signed: String,
}

/// How the end stands against the records a check met.
#[derive(Debug, PartialEq, Eq)]
pub enum EndCheck {
    /// The last record met is the last frame the end names.
    Whole,
    /// The records stop at `last` (none where no record was met), before the end's last frame.
    Cut { last: Option<u64>, frames: u64 },
    /// Records numbered past the end: `last` is the highest.
    PastEnd { last: u64, frames: u64 },
    /// The records reach a checkpoint of `frames` frames; whether any were cut after it, it
    /// cannot tell.
    Checkpoint { frames: u64 },
    /// The end does not carry the signature of the stream's signer.
    Unsigned,
}

impl StreamEnd {
    /// The end of a stream of `frames` frames, the last at `last_pts`, signed with `key` in the
    /// stream whose signed header has digest `header`.
    pub fn signed_with(frames: u64, last_pts: Option<u64>, key: &SigningKey, header: &[u8; 32]) -> Self {
        Self::signed(frames, last_pts, false, key, header)
    }

    /// A checkpoint of a stream still being written, which has had `frames` frames so far.
    pub fn checkpoint_with(frames: u64, last_pts: Option<u64>, key: &SigningKey, header: &[u8; 32]) -> Self {
        Self::signed(frames, last_pts, true, key, header)
    }

    fn signed(frames: u64, last_pts: Option<u64>, open: bool, key: &SigningKey, header: &[u8; 32]) -> Self {
        let signed = key.sign_end(header, &Self::signed_bytes(frames, last_pts, open));
        Self { frames, last_pts, open, signed }
    }

    /// What is signed. A checkpoint's bytes differ from any end's, so that a checkpoint cannot
    /// be passed off as the end of a stream cut right after it.
    fn signed_bytes(frames: u64, last_pts: Option<u64>, open: bool) -> Vec<u8> {
        match open {
            false => serde_json::to_vec(&(frames, last_pts)),
            true => serde_json::to_vec(&(frames, last_pts, "open")),
        }
        .expect("numbers serialize")
    }

    /// How this end stands against the highest record number met, `last`, in the stream whose
    /// header has digest `header` and was signed by `signer`.
    pub fn check(&self, signer: &Signer, header: &[u8; 32], last: Option<u64>) -> EndCheck {
        if !signer.signed_end(header, &Self::signed_bytes(self.frames, self.last_pts, self.open), &self.signed) {
            return EndCheck::Unsigned;
        }
        let (frames, expected) = (self.frames, self.frames.checked_sub(1));
        match last {
            _ if self.open && last >= expected => EndCheck::Checkpoint { frames },
            _ if last == expected => EndCheck::Whole,
            Some(last) if expected.is_none_or(|e| last > e) => EndCheck::PastEnd { last, frames },
            _ => EndCheck::Cut { last, frames },
        }
    }

    /// The end as a line of text (the sidecar's last line, the tag's second).
    pub fn encode(&self) -> String {
        serde_json::to_string(&EndLine { end: self.clone() }).expect("an end serializes")
    }

    /// An end from [`Self::encode`]'s line; `None` for any other line (a frame's record).
    pub fn decode(line: &str) -> Option<Self> {
        serde_json::from_str::<EndLine>(line).ok().map(|l| l.end)
    }
}

/// The end as written: under its own key, so that no frame record reads as one.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndLine {
    end: StreamEnd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_file_is_replaced_whole_and_one_that_cannot_be_written_leaves_no_part_behind() {
        let dir = std::env::temp_dir().join(format!("faceveil-end-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (key, header) = (SigningKey::generate(), [7u8; 32]);
        let path = dir.join(format!("run.{END_FILE_EXTENSION}"));
        let first = StreamEnd::checkpoint_with(30, None, &key, &header);
        write_file(&path, &first).unwrap();
        assert_eq!(read_file(&path).unwrap(), Some(first.clone()));
        // A folder where the file goes (as a full disk, the write fails): the end kept before
        // stays, and the part written beside it is deleted.
        let blocked = dir.join(format!("blocked.{END_FILE_EXTENSION}"));
        std::fs::create_dir_all(blocked.join("in the way")).unwrap();
        assert!(write_file(&blocked, &first).is_err());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no part left: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_end_tells_a_whole_stream_from_one_cut_short_or_run_past_and_from_a_forged_end() {
        let key = SigningKey::generate();
        let header = [7u8; 32];
        let end = StreamEnd::signed_with(100, Some(3_300_000_000), &key, &header);
        let read = StreamEnd::decode(&end.encode()).expect("reads back");
        assert_eq!(read, end);
        let signer = key.signer();
        assert_eq!(end.check(&signer, &header, Some(99)), EndCheck::Whole);
        assert_eq!(end.check(&signer, &header, Some(89)), EndCheck::Cut { last: Some(89), frames: 100 });
        assert_eq!(end.check(&signer, &header, None), EndCheck::Cut { last: None, frames: 100 });
        assert_eq!(end.check(&signer, &header, Some(120)), EndCheck::PastEnd { last: 120, frames: 100 });
        // Another stream's header, another signer, or a frame count moved: not this signer's end.
        assert_eq!(end.check(&signer, &[8u8; 32], Some(99)), EndCheck::Unsigned);
        assert_eq!(end.check(&SigningKey::generate().signer(), &header, Some(99)), EndCheck::Unsigned);
        let moved = StreamEnd { frames: 90, ..end.clone() };
        assert_eq!(moved.check(&signer, &header, Some(89)), EndCheck::Unsigned);
        // An empty stream ends before any record; a frame's record is not an end.
        let empty = StreamEnd::signed_with(0, None, &key, &header);
        assert_eq!(empty.check(&signer, &header, None), EndCheck::Whole);
        assert_eq!(empty.check(&signer, &header, Some(0)), EndCheck::PastEnd { last: 0, frames: 0 });
        assert_eq!(StreamEnd::decode(r#"{"frame":3,"faces":[]}"#), None);
    }

    #[test]
    fn a_checkpoint_bounds_a_cut_and_cannot_pass_for_an_end() {
        let key = SigningKey::generate();
        let header = [7u8; 32];
        let signer = key.signer();
        let checkpoint = StreamEnd::checkpoint_with(60, Some(2_000_000_000), &key, &header);
        let read = StreamEnd::decode(&checkpoint.encode()).expect("reads back");
        assert_eq!(read, checkpoint);
        assert!(read.open);
        // Records that reach it, or go past it (the stream went on), are all it can vouch for.
        assert_eq!(checkpoint.check(&signer, &header, Some(59)), EndCheck::Checkpoint { frames: 60 });
        assert_eq!(checkpoint.check(&signer, &header, Some(75)), EndCheck::Checkpoint { frames: 60 });
        assert_eq!(checkpoint.check(&signer, &header, Some(40)), EndCheck::Cut { last: Some(40), frames: 60 });
        // Its signature does not make an end, nor an end's a checkpoint.
        let posing = StreamEnd { open: false, ..checkpoint.clone() };
        assert_eq!(posing.check(&signer, &header, Some(59)), EndCheck::Unsigned);
        let end = StreamEnd::signed_with(60, Some(2_000_000_000), &key, &header);
        assert!(!end.encode().contains("open"), "an end reads as before: {}", end.encode());
        let opened = StreamEnd { open: true, ..end };
        assert_eq!(opened.check(&signer, &header, Some(59)), EndCheck::Unsigned);
    }
}
