//! The sidecar file: where a container cannot carry faceveil's data, a JSON-lines file beside the
//! output does. Line 1 is the stream header, then one [`FrameRecord`] per frame with faces.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stream::header::{FrameRecord, StreamHeader};

/// The conventional sidecar path for an output file.
pub fn path_for(output: &Path) -> PathBuf {
    let mut s = output.as_os_str().to_owned();
    s.push(".faceveil");
    PathBuf::from(s)
}

pub struct SidecarWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl SidecarWriter {
    pub fn create(path: &Path, header: &StreamHeader) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("cannot create sidecar {}", path.display()))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{}", header.encode())?;
        Ok(Self { out, path: path.to_path_buf() })
    }

    pub fn write(&mut self, record: &FrameRecord) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        writeln!(self.out).with_context(|| format!("cannot write sidecar {}", self.path.display()))
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("cannot write sidecar {}", self.path.display()))
    }
}

/// A whole sidecar in memory, looked up by timestamp or frame number.
pub struct Sidecar {
    pub header: StreamHeader,
    /// The number of its last line where that line was cut short: the run that wrote it stopped
    /// while writing (a crash, a power cut). Its frame has no record; those before it are whole.
    pub cut_line: Option<usize>,
    frames: HashMap<u64, FrameRecord>,
    /// Frame numbers by presentation time, for records that carry one.
    by_pts: HashMap<u64, u64>,
    /// What to add to a restored frame's timestamp to find it here (ns), once known.
    shift: Option<i128>,
}

/// The header on a sidecar's first line, read without its records.
pub fn read_header(path: &Path) -> Result<StreamHeader> {
    let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
    let first =
        BufReader::new(file).lines().next().transpose().with_context(|| format!("cannot read sidecar {}", path.display()))?;
    header_of(first.as_deref(), path)
}

fn header_of(first: Option<&str>, path: &Path) -> Result<StreamHeader> {
    let first = first.with_context(|| format!("sidecar {} is empty", path.display()))?;
    StreamHeader::decode(first).with_context(|| format!("sidecar {}", path.display()))
}

impl Sidecar {
    /// Reads a sidecar whole. A damaged line is an error (the file was altered), but for a last
    /// line that never got its line end: the writer ends every record with one, so that line
    /// was cut short where writing stopped, and the frames before it still restore.
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let mut read_line = |line: &mut String| -> Result<bool> {
            line.clear();
            let n = reader.read_line(line).with_context(|| format!("cannot read sidecar {}", path.display()))?;
            Ok(n > 0)
        };
        let mut line = String::new();
        let header = header_of(read_line(&mut line)?.then(|| line.trim_end()), path)?;
        let (mut frames, mut by_pts, mut cut_line) = (HashMap::new(), HashMap::new(), None);
        let mut number = 1;
        while read_line(&mut line)? {
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            let rec: FrameRecord = match serde_json::from_str(&line) {
                Ok(rec) => rec,
                Err(_) if !line.ends_with('\n') => {
                    cut_line = Some(number);
                    break;
                }
                Err(e) => return Err(e).with_context(|| format!("sidecar {} line {number} is damaged", path.display())),
            };
            if let Some(pts) = rec.pts {
                by_pts.insert(pts, rec.frame);
            }
            frames.insert(rec.frame, rec);
        }
        Ok(Self { header, cut_line, frames, by_pts, shift: None })
    }

    /// The record of the frame at `pts`, the `index`-th restored; by that number where the
    /// stream has no timestamps. The timestamp comes first: a frame dropped or added on the way
    /// shifts every number after it. A file re-encoded or remuxed since may have moved every
    /// timestamp by the same amount (an MP4 that started at 80 ms, remuxed to Matroska, starts
    /// at 0: matched as they are, frame 2 would get frame 0's squares); the first frame looked
    /// up whose timestamp the sidecar does not know sets that shift, from the record of its
    /// number.
    pub fn record(&mut self, index: u64, pts: Option<u64>) -> Option<&FrameRecord> {
        let Some(pts) = pts else { return self.frames.get(&index) };
        let shift = *self.shift.get_or_insert_with(|| match (self.by_pts.contains_key(&pts), self.frames.get(&index)) {
            (false, Some(FrameRecord { pts: Some(recorded), .. })) => *recorded as i128 - pts as i128,
            _ => 0,
        });
        let index = u64::try_from(pts as i128 + shift).ok().and_then(|p| self.by_pts.get(&p)).copied().unwrap_or(index);
        self.frames.get(&index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(first_pts: u64, frames: u64) -> Sidecar {
        let records = (0..frames).map(|i| (i, FrameRecord::new(i, Some(first_pts + i * 40_000_000), Vec::new())));
        let frames: HashMap<u64, FrameRecord> = records.collect();
        let by_pts = frames.values().map(|r| (r.pts.unwrap(), r.frame)).collect();
        Sidecar { header: crate::stream::header::tests::sample(), cut_line: None, frames, by_pts, shift: None }
    }

    #[test]
    fn a_last_line_cut_short_leaves_the_records_before_it_and_a_damaged_one_inside_is_refused() {
        let dir = std::env::temp_dir().join(format!("faceveil-sidecar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.faceveil");
        let mut writer = SidecarWriter::create(&path, &crate::stream::header::tests::sample()).unwrap();
        for i in 0..3 {
            writer.write(&FrameRecord::new(i, Some(i * 40_000_000), Vec::new())).unwrap();
        }
        writer.finish().unwrap();
        let whole = std::fs::read(&path).unwrap();
        let read = Sidecar::read(&path).unwrap();
        assert_eq!((read.frames.len(), read.cut_line), (3, None), "the whole file");
        // Cut inside the last record, as a run stopped while writing it leaves the file.
        std::fs::write(&path, &whole[..whole.len() - 6]).unwrap();
        let mut read = Sidecar::read(&path).unwrap();
        assert_eq!((read.frames.len(), read.cut_line), (2, Some(4)), "two records and the cut line's number");
        assert_eq!(read.record(1, Some(40_000_000)).unwrap().frame, 1);
        // The same damage with a line end after it is not a cut: the file was altered.
        let mut altered = whole[..whole.len() - 6].to_vec();
        altered.push(b'\n');
        std::fs::write(&path, &altered).unwrap();
        let e = Sidecar::read(&path).err().expect("a damaged line is refused");
        assert!(format!("{e:#}").contains("line 4 is damaged"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_are_found_by_timestamp_even_when_the_file_moved_them_all() {
        // As recorded: by timestamp, also after a frame lost on the way (index 3 is frame 4).
        let mut same = sidecar(80_000_000, 10);
        assert_eq!(same.record(0, Some(80_000_000)).unwrap().frame, 0);
        assert_eq!(same.record(3, Some(240_000_000)).unwrap().frame, 4);
        // Remuxed to start at 0: frame 2 (now at 80 ms) is not frame 0.
        let mut moved = sidecar(80_000_000, 10);
        let found: Vec<u64> = (0..5).map(|i| moved.record(i, Some(i * 40_000_000)).unwrap().frame).collect();
        assert_eq!(found, vec![0, 1, 2, 3, 4]);
        assert_eq!(moved.record(5, Some(240_000_000)).unwrap().frame, 6, "and a frame lost after is still found");
        // Without timestamps, by number.
        assert_eq!(sidecar(80_000_000, 10).record(7, None).unwrap().frame, 7);
    }
}
