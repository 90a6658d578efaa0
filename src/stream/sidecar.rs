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
    frames: HashMap<u64, FrameRecord>,
    /// Frame numbers by presentation time, for records that carry one.
    by_pts: HashMap<u64, u64>,
    /// What to add to a restored frame's timestamp to find it here (ns), once known.
    shift: Option<i128>,
}

/// The header on a sidecar's first line, read without its records.
pub fn read_header(path: &Path) -> Result<StreamHeader> {
    header_of(
        &mut BufReader::new(File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?).lines(),
        path,
    )
}

fn header_of(lines: &mut impl Iterator<Item = std::io::Result<String>>, path: &Path) -> Result<StreamHeader> {
    let first = lines.next().with_context(|| format!("sidecar {} is empty", path.display()))??;
    StreamHeader::decode(&first).with_context(|| format!("sidecar {}", path.display()))
}

impl Sidecar {
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let header = header_of(&mut lines, path)?;
        let (mut frames, mut by_pts) = (HashMap::new(), HashMap::new());
        for (i, line) in lines.enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let rec: FrameRecord =
                serde_json::from_str(&line).with_context(|| format!("sidecar {} line {} is damaged", path.display(), i + 2))?;
            if let Some(pts) = rec.pts {
                by_pts.insert(pts, rec.frame);
            }
            frames.insert(rec.frame, rec);
        }
        Ok(Self { header, frames, by_pts, shift: None })
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
        Sidecar { header: crate::stream::header::tests::sample(), frames, by_pts, shift: None }
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
