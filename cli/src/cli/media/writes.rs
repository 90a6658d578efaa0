//! Where a file sink's last write began, so that a write a full disk cut short can be taken off
//! again. A file sink in `unbuffered` mode writes each buffer (or list) it is given in one call;
//! a call that fails midway leaves the file ending inside that write: a picture cut short, which
//! fails its signature as an altered one does and which `verify` cannot tell from one. Once
//! nothing writes any more, the file is cut back to where that write began.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use gst::prelude::*;

/// The last writes given to a file sink: the file (the sink's location, which splitmuxsink
/// changes with each segment) and where each lies in it. A few are kept, not only the last: a
/// muxer may still give the sink buffers after the one whose write failed (writes that then
/// fail too, at a file that no longer grows), and one that seeks (Matroska, MP4) writes some
/// back over what it wrote before.
#[derive(Default)]
pub struct LastWrite {
    file: Option<PathBuf>,
    /// Where the sink writes next: after its last write, or where the muxer moved it.
    position: u64,
    writes: VecDeque<Range<u64>>,
}

/// How many of the last writes are kept.
const KEPT_WRITES: usize = 32;

/// A file cut back: which, and how many bytes were taken off its end.
pub struct Cut {
    pub file: PathBuf,
    pub bytes: u64,
}

impl LastWrite {
    /// A buffer (or a list, written in one call) of `size` bytes given to the sink writing `file`.
    pub fn given(&mut self, file: PathBuf, size: u64) {
        if self.file.as_ref() != Some(&file) {
            *self = Self { file: Some(file), ..Self::default() };
        }
        if self.writes.len() == KEPT_WRITES {
            self.writes.pop_front();
        }
        self.writes.push_back(self.position..self.position + size);
        self.position += size;
    }

    /// The muxer moved the sink to `offset` (a byte segment) before its next write.
    pub fn moved(&mut self, offset: u64) {
        self.position = offset;
    }

    /// Cuts the file back to where a write began if the file ends inside it (the newest such
    /// write). `None` where it ends between writes (nothing to take off), or where nothing was
    /// written.
    pub fn cut_back(&self) -> Result<Option<Cut>> {
        let Some(file) = &self.file else { return Ok(None) };
        let Ok(len) = std::fs::metadata(file).map(|m| m.len()) else { return Ok(None) };
        let Some(within) = self.writes.iter().rev().find(|w| w.start < len && len < w.end) else { return Ok(None) };
        let cut = std::fs::OpenOptions::new().write(true).open(file).and_then(|f| f.set_len(within.start));
        cut.with_context(|| format!("{} ends in a write cut short, which cannot be taken off", file.display()))?;
        Ok(Some(Cut { file: file.clone(), bytes: len - within.start }))
    }
}

/// Makes `sink` (a `filesink`) write each buffer through in one call, and notes each write in
/// `last`. Unbuffered, a write that fails (a full disk) fails as it is made and leaves at most
/// that one write cut short; a buffered sink flushes many buffers at once, and may meet the
/// failure only when it closes the file.
pub fn watch(sink: &gst::Element, last: &Arc<Mutex<LastWrite>>) {
    sink.set_property_from_str("buffer-mode", "unbuffered");
    let (noted, file_sink) = (last.clone(), sink.downgrade());
    let pad = sink.static_pad("sink").expect("a file sink has a sink pad");
    let kinds = gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST | gst::PadProbeType::EVENT_DOWNSTREAM;
    pad.add_probe(kinds, move |_, probe| {
        let noted = || noted.lock().unwrap_or_else(PoisonError::into_inner);
        let size = match &probe.data {
            Some(gst::PadProbeData::Buffer(buffer)) => buffer.size(),
            Some(gst::PadProbeData::BufferList(list)) => list.calculate_size(),
            // The file sink seeks to where a byte segment starts.
            Some(gst::PadProbeData::Event(event)) => {
                if let gst::EventView::Segment(segment) = event.view()
                    && let Some(bytes) = segment.segment().downcast_ref::<gst::format::Bytes>()
                    && let Some(start) = bytes.start()
                {
                    noted().moved(*start);
                }
                return gst::PadProbeReturn::Ok;
            }
            _ => return gst::PadProbeReturn::Ok,
        };
        if let Some(location) = file_sink.upgrade().and_then(|sink| sink.property::<Option<String>>("location")) {
            noted().given(PathBuf::from(location), size as u64);
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("faceveil-writes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn len(file: &std::path::Path) -> u64 {
        std::fs::metadata(file).unwrap().len()
    }

    #[test]
    fn a_file_that_holds_part_of_its_last_write_is_cut_back_to_where_that_write_began() {
        let dir = scratch("cut-back");
        let (first, second) = (dir.join("a-00000.ts"), dir.join("a-00001.ts"));
        let mut last = LastWrite::default();
        // The first segment, whole: three buffers of 188 bytes, all written.
        for _ in 0..3 {
            last.given(first.clone(), 188);
        }
        std::fs::write(&first, [1u8; 3 * 188]).unwrap();
        // The next: two buffers given, the second written in part (the disk filled).
        last.given(second.clone(), 376);
        last.given(second.clone(), 376);
        std::fs::write(&second, [2u8; 376 + 100]).unwrap();
        let cut = last.cut_back().unwrap().expect("a write cut short");
        assert_eq!((cut.file, cut.bytes), (second.clone(), 100));
        assert_eq!(len(&second), 376, "cut back to where the last write began");
        assert_eq!(len(&first), 3 * 188, "a segment before is not touched");
        // A last write that is whole, or that wrote nothing, leaves its file as it is.
        let third = dir.join("a-00002.ts");
        let mut last = LastWrite::default();
        last.given(third.clone(), 188);
        last.given(third.clone(), 188);
        std::fs::write(&third, [3u8; 376]).unwrap();
        assert!(last.cut_back().unwrap().is_none());
        assert_eq!(len(&third), 376, "whole");
        std::fs::write(&third, [3u8; 188]).unwrap();
        assert!(last.cut_back().unwrap().is_none());
        assert_eq!(len(&third), 188, "nothing of the last write");
        // Nothing written at all: nothing to cut.
        assert!(LastWrite::default().cut_back().unwrap().is_none());
        // A muxer that seeks back to rewrite a header, then on at the end: the cut is at the
        // start of the write the file ends in, not where the writes would lie end to end; and a
        // write given after the one that failed (which wrote nothing) does not hide it.
        let fourth = dir.join("b.mkv");
        let mut last = LastWrite::default();
        last.given(fourth.clone(), 100);
        last.given(fourth.clone(), 100);
        last.moved(10);
        last.given(fourth.clone(), 8);
        last.moved(200);
        last.given(fourth.clone(), 100);
        last.given(fourth.clone(), 100);
        std::fs::write(&fourth, [4u8; 250]).unwrap();
        let cut = last.cut_back().unwrap().expect("a write cut short");
        assert_eq!((len(&fourth), cut.bytes), (200, 50));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
