//! The newest signed checkpoint of a video being written, kept beside it.
//!
//! A signed stream's end is written as the stream ends (the sidecar's last line, the
//! container's comment tag), so a writer that is killed (a crash, a power cut, `kill -9`) leaves
//! none, and a cut at the end of what it left would not show. While a stream runs, `faceveil`
//! signs a checkpoint every 30 frames ([`faceveil::stream::end`]); the plugin's
//! `faceveilcheckpoint`, between the muxer and the file sink, keeps the newest whose frames are
//! all in the file in `OUTPUT.faceveil-end` ([`end::file_beside`]), where `faceveil verify`
//! finds it; gst-launch pipelines keep it the same way. The file goes when the run ends (the
//! stream's end is then in the video and its sidecar, or no video was kept), but where writing
//! failed midway (a full disk): the video is kept as it was written, without an end.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use faceveil::stream::end;
use gst::prelude::*;

use crate::cli::media::elements::make;

/// Deletes the end file when dropped, unless kept: drop it once the pipeline has stopped.
pub struct CheckpointFile {
    path: PathBuf,
    kept: bool,
}

impl CheckpointFile {
    /// Links `mux` to `sink` through `faceveilcheckpoint`, which keeps the checkpoints of the
    /// video that `sink` writes beside `output` (its final name); an end file left there by a
    /// run before goes as the pipeline starts.
    pub fn between(output: &Path, pipeline: &gst::Pipeline, mux: &gst::Element, sink: &gst::Element) -> Result<Self> {
        let path = end::file_beside(output);
        let keeper = make("faceveilcheckpoint")?;
        keeper.set_property("location", path.to_str().context("non-UTF-8 path")?);
        pipeline.add(&keeper)?;
        gst::Element::link_many([mux, &keeper, sink])?;
        Ok(Self { path, kept: false })
    }

    /// Leaves the end file as it is: the run stopped without the stream's end (its writing
    /// failed), so the newest checkpoint kept is what bounds a cut of what was written.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

/// The run ended (or failed): the stream's end, if it has one, is in the video and its sidecar.
impl Drop for CheckpointFile {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(e) = end::remove_file(&self.path) {
            eprintln!("faceveil: cannot delete {}: {e}", self.path.display());
        }
    }
}
