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

/// A whole sidecar in memory, looked up by frame number.
pub struct Sidecar {
    pub header: StreamHeader,
    frames: HashMap<u64, FrameRecord>,
}

impl Sidecar {
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
        let mut lines = BufReader::new(file).lines();
        let first = lines.next().with_context(|| format!("sidecar {} is empty", path.display()))??;
        let header = StreamHeader::decode(&first).with_context(|| format!("sidecar {}", path.display()))?;
        let mut frames = HashMap::new();
        for (i, line) in lines.enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let rec: FrameRecord =
                serde_json::from_str(&line).with_context(|| format!("sidecar {} line {} is damaged", path.display(), i + 2))?;
            frames.insert(rec.frame, rec);
        }
        Ok(Self { header, frames })
    }

    pub fn frame(&self, index: u64) -> Option<&FrameRecord> {
        self.frames.get(&index)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}
