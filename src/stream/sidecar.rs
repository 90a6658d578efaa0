//! The sidecar file: where a container cannot carry faceveil's data, a JSON-lines file beside the
//! output does. Line 1 is the stream header, then one [`FrameRecord`] per frame, and last, in a
//! signed stream that ended, its signed end ([`StreamEnd`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::stream::end::StreamEnd;
use crate::stream::header::{FrameRecord, StreamHeader};
use crate::stream::look::{self, Look, SAME_PICTURE};

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

    /// Writes one frame's record through to the file, so that a full disk is said at the frame it
    /// struck, naming the file, and a run killed midway leaves every record before it whole.
    pub fn write(&mut self, record: &FrameRecord) -> Result<()> {
        serde_json::to_writer(&mut self.out, record)
            .map_err(anyhow::Error::from)
            .and_then(|()| Ok(writeln!(self.out).and_then(|()| self.out.flush())?))
            .with_context(|| format!("cannot write sidecar {}", self.path.display()))
    }

    /// Writes the stream's signed end after its last record.
    pub fn end(&mut self, end: &StreamEnd) -> Result<()> {
        writeln!(self.out, "{}", end.encode())
            .and_then(|()| self.out.flush())
            .with_context(|| format!("cannot write sidecar {}", self.path.display()))
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("cannot write sidecar {}", self.path.display()))
    }
}

/// A sidecar, looked up by timestamp or frame number. Its records are read from the file as they
/// are looked up: a long recording's sealed faces run to gigabytes (07_selfie_portrait sealed to
/// its password writes about 1 MB a second), which a restore need not hold.
pub struct Sidecar {
    pub header: StreamHeader,
    /// The number of its last line where that line was cut short: the run that wrote it stopped
    /// while writing (a crash, a power cut). Its frame has no record; those before it are whole.
    pub cut_line: Option<usize>,
    /// The stream's signed end, where its writer ended it.
    pub end: Option<StreamEnd>,
    frames: HashMap<u64, Entry>,
    /// Frame numbers by presentation time, for records that carry one.
    by_pts: HashMap<u64, u64>,
    /// What to add to a restored frame's timestamp to find it here (ns), once known.
    shift: Option<i128>,
    /// The records' looks (the frame's size and [`Look::cells`]; the records themselves keep
    /// none), by frame number; none in sidecars written before looks were.
    looks: HashMap<u64, ((u16, u16), Vec<i8>)>,
    file: File,
    path: PathBuf,
}

/// Where a frame's record lies in the file, and its timestamp.
struct Entry {
    pts: Option<u64>,
    offset: u64,
    len: usize,
}

/// What a sidecar holds for one frame of the stream being restored.
#[derive(Debug)]
pub enum Lookup {
    /// The frame's record.
    Found(FrameRecord),
    /// The sidecar has no record for the frame.
    Missing,
    /// The records carry looks and none is this frame's picture: the video was cut, edited or
    /// re-timed since the sidecar was written, or the frame is not of that video.
    Unmatched,
    /// No record is of a frame of this size: the video was scaled or cropped since it was
    /// anonymized, and its faces are not where the records' squares are.
    OtherSize { recorded: (u16, u16) },
}

/// The header on a sidecar's first line, read without its records.
pub fn read_header(path: &Path) -> Result<StreamHeader> {
    let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
    let first =
        BufReader::new(file).lines().next().transpose().with_context(|| format!("cannot read sidecar {}", path.display()))?;
    header_of(first.as_deref(), path)
}

/// The signed end on a sidecar's last line, read without its records (which run to gigabytes
/// where faces are sealed); none where its last line is a record (a stream that did not end, or
/// an unsigned one).
pub fn end_of(path: &Path) -> Result<Option<StreamEnd>> {
    // An end's line is a few hundred bytes.
    const TAIL: u64 = 4096;
    let mut file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
    let len = file.metadata().with_context(|| format!("cannot read sidecar {}", path.display()))?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).with_context(|| format!("cannot read sidecar {}", path.display()))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).with_context(|| format!("cannot read sidecar {}", path.display()))?;
    let tail = String::from_utf8_lossy(&tail);
    Ok(tail.lines().rev().find(|line| !line.trim().is_empty()).and_then(StreamEnd::decode))
}

/// What a sidecar holds after its records.
#[derive(Debug, Default)]
pub struct Tail {
    /// The number of a last line cut short, as `scan` finds it.
    pub cut_line: Option<usize>,
    /// The stream's signed end, where its writer ended it.
    pub end: Option<StreamEnd>,
}

/// A sidecar's header, then each of its records in the order written, without looks, to
/// `visit` (for checking a whole recording: a restore looks its records up instead); then what
/// follows them.
pub fn each_record(path: &Path, mut visit: impl FnMut(&StreamHeader, FrameRecord) -> Result<()>) -> Result<Tail> {
    let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
    let (_, tail) = scan(path, file, |header, record, _| visit(header, FrameRecord { look: None, ..record }))?;
    Ok(tail)
}

/// Reads the sidecar `file` (at `path`) line by line: its header, then each record, with where
/// its line lies in the file, to `visit`. A damaged line is an error (the file was altered), but
/// for a last line that never got its line end: the writer ends every record with one, so that
/// line was cut short where writing stopped, and the records before it stand. A line after the
/// stream's end is an error too. Returns the header, the number of such a cut line and the end.
fn scan(
    path: &Path,
    file: File,
    mut visit: impl FnMut(&StreamHeader, FrameRecord, Entry) -> Result<()>,
) -> Result<(StreamHeader, Tail)> {
    let mut reader = BufReader::new(file);
    let mut offset = 0u64;
    let mut read_line = |line: &mut String| -> Result<Option<u64>> {
        line.clear();
        let n = reader.read_line(line).with_context(|| format!("cannot read sidecar {}", path.display()))?;
        let at = offset;
        offset += n as u64;
        Ok((n > 0).then_some(at))
    };
    let mut line = String::new();
    let header = header_of(read_line(&mut line)?.map(|_| line.trim_end()), path)?;
    let mut number = 1;
    let mut tail = Tail::default();
    while let Some(at) = read_line(&mut line)? {
        number += 1;
        if line.trim().is_empty() {
            continue;
        }
        anyhow::ensure!(tail.end.is_none(), "sidecar {} line {number} comes after the stream's end", path.display());
        if let Some(end) = StreamEnd::decode(&line) {
            tail.end = Some(end);
            continue;
        }
        match serde_json::from_str::<FrameRecord>(&line) {
            Ok(record) => {
                let entry = Entry { pts: record.pts, offset: at, len: line.len() };
                visit(&header, record, entry)?;
            }
            Err(_) if !line.ends_with('\n') => return Ok((header, Tail { cut_line: Some(number), ..tail })),
            Err(e) => return Err(e).with_context(|| format!("sidecar {} line {number} is damaged", path.display())),
        }
    }
    Ok((header, tail))
}

fn header_of(first: Option<&str>, path: &Path) -> Result<StreamHeader> {
    let first = first.with_context(|| format!("sidecar {} is empty", path.display()))?;
    StreamHeader::decode(first).with_context(|| format!("sidecar {}", path.display()))
}

impl Sidecar {
    /// Reads a sidecar's header and where each record lies, with its timestamp and look; the
    /// frames before a last line cut short still restore (`scan`).
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open sidecar {}", path.display()))?;
        let lines = file.try_clone().with_context(|| format!("cannot open sidecar {}", path.display()))?;
        let (mut frames, mut by_pts, mut looks) = (HashMap::new(), HashMap::new(), HashMap::new());
        let (header, Tail { cut_line, end }) = scan(path, lines, |_, rec, entry| {
            if let Some(pts) = rec.pts {
                by_pts.insert(pts, rec.frame);
            }
            if let Some(look) = &rec.look {
                looks.insert(rec.frame, (look.size(), look.cells()));
            }
            frames.insert(rec.frame, entry);
            Ok(())
        })?;
        Ok(Self { header, cut_line, end, frames, by_pts, shift: None, looks, file, path: path.to_path_buf() })
    }

    /// Frame `frame`'s record, from the file, without its look.
    fn record(&self, frame: u64) -> Result<FrameRecord> {
        use std::os::unix::fs::FileExt;
        let entry = &self.frames[&frame];
        let mut bytes = vec![0; entry.len];
        self.file
            .read_exact_at(&mut bytes, entry.offset)
            .with_context(|| format!("cannot read sidecar {}", self.path.display()))?;
        let record: FrameRecord = serde_json::from_slice(&bytes)
            .with_context(|| format!("sidecar {} changed while it was read: frame {frame}'s record", self.path.display()))?;
        Ok(FrameRecord { look: None, ..record })
    }

    /// The record of the frame at `pts`, the `index`-th restored, that looks like `look` (the
    /// frame as it reaches the restore).
    ///
    /// By timestamp first: a frame dropped or added on the way shifts every number after it. A
    /// file remuxed since may have moved every timestamp by the same amount (an MP4 that started
    /// at 80 ms, remuxed to Matroska, starts at 0: matched as they are, frame 2 would get frame
    /// 0's squares); the first frame looked up whose timestamp the sidecar does not know sets
    /// that shift, from the record of its number. Without timestamps, by number.
    ///
    /// Where records carry looks, the one found must look like the frame: a video cut and
    /// re-encoded since starts at 0 again, and its first frame is not the sidecar's. Otherwise
    /// the record that looks most like it is taken, if any is close enough, and sets the shift
    /// for the frames after it; if none is, the frame is [`Lookup::Unmatched`]. A frame whose
    /// record is not there at all (taken out of the sidecar, or past its end) is
    /// [`Lookup::Missing`]: no other frame's record is sought for it, as a still moment's
    /// neighbours would look like it.
    pub fn lookup(&mut self, index: u64, pts: Option<u64>, look: Option<&Look>) -> Result<Lookup> {
        let guess = self.guess(index, pts);
        if !self.frames.contains_key(&guess) {
            return Ok(Lookup::Missing);
        }
        let (Some(look), Some((recorded, theirs))) = (look, self.looks.get(&guess)) else {
            return Ok(Lookup::Found(self.record(guess)?));
        };
        let (recorded, size, cells) = (*recorded, look.size(), look.cells());
        if recorded == size && look::distance(theirs, &cells) <= SAME_PICTURE {
            return Ok(Lookup::Found(self.record(guess)?));
        }
        let closest = self
            .looks
            .iter()
            .filter(|(_, (theirs, _))| *theirs == size)
            .map(|(frame, (_, theirs))| (look::distance(theirs, &cells), *frame))
            .filter(|(distance, _)| *distance <= SAME_PICTURE)
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let Some((_, frame)) = closest else {
            return Ok(match self.looks.values().any(|(theirs, _)| *theirs == size) {
                true => Lookup::Unmatched,
                false => Lookup::OtherSize { recorded },
            });
        };
        if let (Some(pts), Some(recorded)) = (pts, self.frames[&frame].pts) {
            self.shift = Some(recorded as i128 - pts as i128);
        }
        Ok(Lookup::Found(self.record(frame)?))
    }

    /// The number of the record a frame's timestamp (or else its number) points at.
    fn guess(&mut self, index: u64, pts: Option<u64>) -> u64 {
        let Some(pts) = pts else { return index };
        let shift = *self.shift.get_or_insert_with(|| match (self.by_pts.contains_key(&pts), self.frames.get(&index)) {
            (false, Some(Entry { pts: Some(recorded), .. })) => *recorded as i128 - pts as i128,
            _ => 0,
        });
        u64::try_from(pts as i128 + shift).ok().and_then(|p| self.by_pts.get(&p)).copied().unwrap_or(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sidecar of `frames` records 40 ms apart from `first_pts`, as written and read back.
    fn sidecar(first_pts: u64, frames: u64) -> Sidecar {
        static WRITTEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("faceveil-sidecar-{}-{n}.faceveil", std::process::id()));
        let mut writer = SidecarWriter::create(&path, &crate::stream::header::tests::sample()).unwrap();
        for i in 0..frames {
            writer.write(&FrameRecord::new(i, Some(first_pts + i * 40_000_000), Vec::new())).unwrap();
        }
        writer.finish().unwrap();
        let read = Sidecar::read(&path).unwrap();
        // The open file still reads once its name is gone.
        std::fs::remove_file(&path).unwrap();
        read
    }

    #[test]
    fn the_end_on_a_sidecars_last_line_is_read_without_its_records() {
        let path = std::env::temp_dir().join(format!("faceveil-sidecar-end-{}.faceveil", std::process::id()));
        let key = crate::secrets::SigningKey::generate();
        let end = StreamEnd::signed_with(300, Some(9_960_000_000), &key, &[7; 32]);
        let mut writer = SidecarWriter::create(&path, &crate::stream::header::tests::sample()).unwrap();
        for i in 0..300 {
            writer.write(&FrameRecord::new(i, Some(i * 33_333_333), Vec::new())).unwrap();
        }
        assert_eq!(end_of(&path).unwrap(), None, "a stream not yet ended");
        writer.end(&end).unwrap();
        writer.finish().unwrap();
        assert_eq!(end_of(&path).unwrap(), Some(end));
        // Cut in its end's line: none.
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 20).unwrap();
        assert_eq!(end_of(&path).unwrap(), None);
        std::fs::remove_file(&path).unwrap();
    }

    /// The number of the record found.
    fn found(lookup: Result<Lookup>) -> u64 {
        match lookup.unwrap() {
            Lookup::Found(record) => record.frame,
            other => panic!("no record: {other:?}"),
        }
    }

    /// The look of the `i`-th picture of a moving scene: a bright bar across a gradient.
    fn picture(i: u64) -> Look {
        Look::of_cells((640, 360), cells(i))
    }

    /// Its cells.
    fn cells(i: u64) -> Vec<u8> {
        (0..144u64).map(|c| if (c % 16 + 16 - i % 16) % 16 < 2 { 230 } else { (40 + c) as u8 }).collect()
    }

    /// A sidecar `name` in a folder of its own, its writer still open after `records` records
    /// without faces, 40 ms apart; the folder, the sidecar and the writer.
    fn written(name: &str, records: u64) -> (PathBuf, PathBuf, SidecarWriter) {
        let dir = std::env::temp_dir().join(format!("faceveil-sidecar-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.faceveil"));
        let mut writer = SidecarWriter::create(&path, &crate::stream::header::tests::sample()).unwrap();
        for i in 0..records {
            writer.write(&FrameRecord::new(i, Some(i * 40_000_000), Vec::new())).unwrap();
        }
        (dir, path, writer)
    }

    #[test]
    fn each_record_is_on_disk_when_written_and_a_full_disk_is_said_at_the_first_naming_the_sidecar() {
        // A run killed while writing has no finish(): what it wrote must already be readable.
        let (dir, path, writer) = written("live", 2);
        assert_eq!(Sidecar::read(&path).unwrap().frames.len(), 2, "both records, the writer still open");
        drop(writer);
        std::fs::remove_dir_all(&dir).unwrap();
        let full = Path::new("/dev/full");
        if !full.exists() {
            eprintln!("skipped the full disk: this system has no /dev/full");
            return;
        }
        let mut writer = SidecarWriter::create(full, &crate::stream::header::tests::sample()).unwrap();
        let e = writer.write(&FrameRecord::new(0, Some(0), Vec::new())).expect_err("a full disk");
        let text = format!("{e:#}");
        assert!(text.contains("cannot write sidecar /dev/full") && text.contains("No space left"), "{text}");
    }

    #[test]
    fn a_last_line_cut_short_leaves_the_records_before_it_and_a_damaged_one_inside_is_refused() {
        let (dir, path, writer) = written("cut", 3);
        writer.finish().unwrap();
        let whole = std::fs::read(&path).unwrap();
        let read = Sidecar::read(&path).unwrap();
        assert_eq!((read.frames.len(), read.cut_line), (3, None), "the whole file");
        // Cut inside the last record, as a run stopped while writing it leaves the file.
        std::fs::write(&path, &whole[..whole.len() - 6]).unwrap();
        let mut read = Sidecar::read(&path).unwrap();
        assert_eq!((read.frames.len(), read.cut_line), (2, Some(4)), "two records and the cut line's number");
        assert_eq!(found(read.lookup(1, Some(40_000_000), None)), 1);
        // The same damage with a line end after it is not a cut: the file was altered.
        let mut altered = whole[..whole.len() - 6].to_vec();
        altered.push(b'\n');
        std::fs::write(&path, &altered).unwrap();
        let e = Sidecar::read(&path).err().expect("a damaged line is refused");
        assert!(format!("{e:#}").contains("line 4 is damaged"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_signed_end_is_read_after_the_records_and_nothing_may_follow_it() {
        use crate::secrets::SigningKey;
        use crate::stream::end::StreamEnd;
        let (dir, path, mut writer) = written("ended", 3);
        let end = StreamEnd::signed_with(3, Some(80_000_000), &SigningKey::generate(), &[1; 32]);
        writer.end(&end).unwrap();
        writer.finish().unwrap();
        let mut numbers = Vec::new();
        let tail = each_record(&path, |_, record| {
            numbers.push(record.frame);
            Ok(())
        })
        .unwrap();
        assert_eq!((numbers, tail.end, tail.cut_line), (vec![0, 1, 2], Some(end), None));
        // A restore reads past it to the records.
        let mut read = Sidecar::read(&path).unwrap();
        assert_eq!(found(read.lookup(2, Some(80_000_000), None)), 2);
        // A record put after the end is refused: the end says where the stream stopped.
        let late = serde_json::to_string(&FrameRecord::new(3, Some(120_000_000), Vec::new())).unwrap();
        std::fs::write(&path, std::fs::read_to_string(&path).unwrap() + &late + "\n").unwrap();
        let e = each_record(&path, |_, _| Ok(())).expect_err("a line after the end");
        assert!(format!("{e:#}").contains("line 6 comes after the stream's end"), "{e:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_are_found_by_timestamp_even_when_the_file_moved_them_all() {
        // As recorded: by timestamp, also after a frame lost on the way (index 3 is frame 4).
        let mut same = sidecar(80_000_000, 10);
        assert_eq!(found(same.lookup(0, Some(80_000_000), None)), 0);
        assert_eq!(found(same.lookup(3, Some(240_000_000), None)), 4);
        // Remuxed to start at 0: frame 2 (now at 80 ms) is not frame 0.
        let mut moved = sidecar(80_000_000, 10);
        let numbers: Vec<u64> = (0..5).map(|i| found(moved.lookup(i, Some(i * 40_000_000), None))).collect();
        assert_eq!(numbers, vec![0, 1, 2, 3, 4]);
        assert_eq!(found(moved.lookup(5, Some(240_000_000), None)), 6, "and a frame lost after is still found");
        // Without timestamps, by number.
        assert_eq!(found(sidecar(80_000_000, 10).lookup(7, None, None)), 7);
    }

    #[test]
    fn a_video_cut_and_retimed_since_finds_its_records_by_their_looks_and_a_stranger_finds_none() {
        let mut cut = sidecar(0, 12);
        cut.looks = (0..12).map(|i| (i, ((640, 360), picture(i).cells()))).collect();
        // The video's first 5 frames were cut off and it starts at 0 again: by timestamp alone,
        // its first frame would take frame 0's record.
        let numbers: Vec<u64> = (0..6).map(|i| found(cut.lookup(i, Some(i * 40_000_000), Some(&picture(i + 5))))).collect();
        assert_eq!(numbers, vec![5, 6, 7, 8, 9, 10]);
        // A picture none of the records shows is not given one.
        let stranger = Look::of_cells((640, 360), (0..144u8).rev().collect());
        assert!(matches!(cut.lookup(6, Some(240_000_000), Some(&stranger)).unwrap(), Lookup::Unmatched));
        // The same picture scaled: none of the records' squares is where its faces are.
        let scaled = Look::of_cells((320, 180), cells(11));
        assert!(matches!(cut.lookup(6, Some(240_000_000), Some(&scaled)).unwrap(), Lookup::OtherSize { recorded: (640, 360) }));
        // A sidecar beyond its last record has none to give, nor one whose record for the frame
        // was taken out: a neighbour's is not given in its place.
        assert!(matches!(sidecar(0, 2).lookup(5, Some(200_000_000), Some(&picture(5))).unwrap(), Lookup::Missing));
        cut.frames.remove(&11);
        assert!(matches!(cut.lookup(6, Some(240_000_000), Some(&picture(11))).unwrap(), Lookup::Missing));
    }
}
