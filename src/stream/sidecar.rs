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
}

impl Sidecar {
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let first = lines.next().with_context(|| format!("sidecar {} is empty", path.display()))??;
        let header = StreamHeader::decode(&first).with_context(|| format!("sidecar {}", path.display()))?;
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
        Ok(Self { header, frames, by_pts })
    }

    /// The record of the frame at `pts`; by its number `index` where the timestamp is not one
    /// the sidecar knows (a stream without timestamps, or one whose timestamps were shifted).
    /// The timestamp comes first: a frame dropped or added on the way shifts every number after.
    pub fn record(&self, index: u64, pts: Option<u64>) -> Option<&FrameRecord> {
        let index = pts.and_then(|p| self.by_pts.get(&p)).copied().unwrap_or(index);
        self.frames.get(&index)
    }
}
