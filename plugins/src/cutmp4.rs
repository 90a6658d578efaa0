//! Reading an MP4 that was finished and then cut short (a copy or a download that stopped, a
//! disk that filled as it was copied). A plain MP4 keeps its index (`moov`) at its end, so a cut
//! takes every picture's place with it, and GStreamer reads nothing of the file. The CLI writes
//! its MP4s in fragments of a second, each with an index of its own, and mp4mux (GStreamer 1.22,
//! `fragment-mode=first-moov-then-finalise`) finishes such a file by two changes near its start:
//! the first fragment's `mdat` header is widened over the whole file, and the first `moov`, just
//! after that fragment, is renamed `hoov` so that readers pass over it; the last `moov` then
//! indexes everything. Undoing those two changes as the file is read gives the file as it was
//! while it was written, which reads up to its last whole fragment ([`mend_source`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use gst::prelude::*;

/// How far into the file the first fragment's index is looked for: a fragment is a second of
/// video, which even at 400 Mbit/s is 50 MB.
const FIRST_INDEX_WITHIN: u64 = 256 << 20;
/// Read in pieces of this size while looking for it, each overlapping the last by a box header.
const PIECE: usize = 1 << 20;

/// What an MP4's top-level boxes say about where its index is.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// Not an MP4, or one whose index is there.
    Whole,
    /// Cut short before its last index, and written in fragments by mp4mux as the CLI writes
    /// them: readable up to its last whole fragment once [`mend_source`] puts back what finishing
    /// the file changed.
    Mendable(Mend),
    /// Cut short (a box runs past its end) before its index, and not written in fragments as
    /// the CLI writes them: nothing of it can be read.
    Lost,
}

/// The bytes that finishing the file changed, as they were while it was written.
#[derive(Debug, PartialEq, Eq)]
pub struct Mend {
    patches: Vec<(u64, Vec<u8>)>,
}

/// What the file at `path` is, by its top-level boxes; [`Cut::Whole`] where it cannot be read.
pub fn of_file(path: &Path) -> Cut {
    File::open(path).and_then(|mut file| of(&mut file)).unwrap_or(Cut::Whole)
}

/// Gives `src`, where it is a file source whose file [`of_file`] finds mendable, the bytes of
/// that file as it was while written; returns whether it did. Call before the source starts.
pub fn mend_source(src: &gst::Element) -> bool {
    let Some(location) = src.find_property("location").and_then(|_| src.property::<Option<String>>("location")) else {
        return false;
    };
    let Cut::Mendable(mend) = of_file(Path::new(&location)) else { return false };
    mend.give_to(src)
}

impl Mend {
    /// Gives `src`, a source of the file this mends, the bytes of that file as it was while
    /// written; returns whether it could. Call before the source starts.
    pub fn give_to(self, src: &gst::Element) -> bool {
        let Some(pad) = src.static_pad("src") else { return false };
        // Pushed or pulled (the MP4 reader pulls), each buffer says where in the file it lies.
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &mut probe.data {
                self.apply(buffer);
            }
            gst::PadProbeReturn::Ok
        });
        true
    }

    /// Writes the mended bytes into `buffer`, read from the file at its offset.
    fn apply(&self, buffer: &mut gst::Buffer) {
        let (start, len) = (buffer.offset(), buffer.size() as u64);
        if start == gst::ffi::GST_BUFFER_OFFSET_NONE {
            return;
        }
        for (at, bytes) in &self.patches {
            let (from, to) = (start.max(*at), (start + len).min(at + bytes.len() as u64));
            if from >= to {
                continue;
            }
            let buffer = buffer.make_mut();
            let Ok(mut map) = buffer.map_writable() else { return };
            map[(from - start) as usize..(to - start) as usize].copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
        }
    }
}

/// A box header: where the box starts, its type, its size (`None`: to the end of the file) and
/// the header's own length (8 bytes, or 16 with a 64-bit size).
struct BoxHeader {
    at: u64,
    kind: [u8; 4],
    size: Option<u64>,
    len: u64,
}

fn header(file: &mut (impl Read + Seek), at: u64) -> std::io::Result<BoxHeader> {
    let mut head = [0u8; 16];
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(&mut head[..8])?;
    let kind = head[4..8].try_into().expect("four bytes");
    let (size, len) = match u32::from_be_bytes(head[..4].try_into().expect("four bytes")) {
        0 => (None, 8),
        1 => {
            file.read_exact(&mut head[8..])?;
            (Some(u64::from_be_bytes(head[8..].try_into().expect("eight bytes"))), 16)
        }
        size => (Some(size as u64), 8),
    };
    Ok(BoxHeader { at, kind, size, len })
}

fn of(file: &mut (impl Read + Seek)) -> std::io::Result<Cut> {
    let len = file.seek(SeekFrom::End(0))?;
    let Ok(ftyp) = header(file, 0) else { return Ok(Cut::Whole) };
    let Some(ftyp_size) = ftyp.size.filter(|_| &ftyp.kind == b"ftyp") else { return Ok(Cut::Whole) };
    // The top-level boxes, until a whole index, one that runs past the end, or the end.
    let (mut at, mut overran) = (0, false);
    while at < len {
        let Ok(b) = header(file, at) else {
            overran = true;
            break;
        };
        match b.size {
            Some(size) if size >= b.len && at + size <= len && &b.kind == b"moov" => return Ok(Cut::Whole),
            Some(size) if size >= b.len && at + size <= len => at += size,
            _ => {
                overran = true;
                break;
            }
        }
    }
    // A file without an index that is whole to its last box is not this module's to judge (a
    // HEIF picture, say); one cut short is lost unless mp4mux finished it from fragments.
    let unmended = if overran { Cut::Lost } else { Cut::Whole };
    // Finished by mp4mux: right after `ftyp`, either `free` (8 bytes) and a 32-bit `mdat`
    // header, or a 64-bit `mdat` header in their 16 bytes; its data starts 16 bytes on.
    let first = header(file, ftyp_size)?;
    let data = match (&first.kind, first.size) {
        (b"free", Some(8)) if &header(file, ftyp_size + 8)?.kind == b"mdat" => ftyp_size + 16,
        (b"mdat", _) if first.len == 16 => ftyp_size + 16,
        _ => return Ok(unmended),
    };
    let Some(hidden) = hidden_index(file, data, len.min(data + FIRST_INDEX_WITHIN))? else { return Ok(unmended) };
    let mdat_size = u32::try_from(hidden - (ftyp_size + 8)).expect("within FIRST_INDEX_WITHIN");
    let mut head = [0, 0, 0, 8].to_vec();
    head.extend_from_slice(b"free");
    head.extend_from_slice(&mdat_size.to_be_bytes());
    head.extend_from_slice(b"mdat");
    Ok(Cut::Mendable(Mend { patches: vec![(ftyp_size, head), (hidden + 4, b"moov".to_vec())] }))
}

/// Where the first fragment's index, renamed `hoov`, starts between `from` and `to`: a box of
/// that type, whole in the file, whose first child is `mvhd` and which indexes fragments
/// (`mvex`).
fn hidden_index(file: &mut (impl Read + Seek), from: u64, to: u64) -> std::io::Result<Option<u64>> {
    let mut piece = vec![0u8; PIECE];
    let mut at = from;
    while at + 16 <= to {
        file.seek(SeekFrom::Start(at))?;
        let n = read_up_to(file, &mut piece[..PIECE.min((to - at) as usize)])?;
        for i in 0..n.saturating_sub(15) {
            if &piece[i + 4..i + 8] == b"hoov" && &piece[i + 12..i + 16] == b"mvhd" {
                let b = header(file, at + i as u64)?;
                if let Some(size) = b.size.filter(|&s| (16..=1 << 24).contains(&s) && b.at + s <= to) {
                    let mut index = vec![0u8; size as usize];
                    file.seek(SeekFrom::Start(b.at))?;
                    file.read_exact(&mut index)?;
                    if index.windows(4).any(|w| w == b"mvex") {
                        return Ok(Some(b.at));
                    }
                }
            }
        }
        if n < 16 {
            break;
        }
        at += (n - 15) as u64;
    }
    Ok(None)
}

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        [&(body.len() as u32 + 8).to_be_bytes()[..], kind, body].concat()
    }

    /// A file as mp4mux finishes one written in fragments: `ftyp`, `free`, an `mdat` over
    /// everything up to the last index, in it the first fragment's data, its index renamed
    /// `hoov`, the next fragment's data and index; then the last index.
    fn finished() -> (Vec<u8>, usize) {
        let ftyp = boxed(b"ftyp", b"mp42\0\0\0\0mp42mp41isomiso2");
        let first_index = boxed(b"hoov", &[boxed(b"mvhd", &[0; 100]), boxed(b"mvex", &[0; 24])].concat());
        let inside =
            [vec![7; 5000], first_index, boxed(b"free", &[]), boxed(b"mdat", &[9; 3000]), boxed(b"moof", &[0; 40])].concat();
        let at_index = ftyp.len() + 16 + 5000;
        let file = [ftyp, boxed(b"free", &[]), boxed(b"mdat", &inside), boxed(b"moov", &[0; 300])].concat();
        (file, at_index)
    }

    #[test]
    fn a_finished_file_cut_before_its_last_index_is_mended_to_the_file_it_was_while_written() {
        gst::init().unwrap();
        let (file, at_index) = finished();
        assert_eq!(of(&mut Cursor::new(&file)).unwrap(), Cut::Whole, "whole, with its index");
        let cut = &file[..file.len() - 200];
        let Cut::Mendable(mend) = of(&mut Cursor::new(cut)).unwrap() else { panic!("not mendable") };
        // The mended bytes, read as one buffer: `mdat` ends where the first index starts,
        // which is a `moov` again, and the boxes after it follow on.
        let mut buffer = gst::Buffer::from_slice(cut.to_vec());
        buffer.get_mut().unwrap().set_offset(0);
        mend.apply(&mut buffer);
        let mended = buffer.map_readable().unwrap().to_vec();
        let mut c = Cursor::new(&mended);
        let mut kinds = Vec::new();
        let mut at = 0;
        while let Ok(b) = header(&mut c, at) {
            kinds.push(String::from_utf8_lossy(&b.kind).to_string());
            at += b.size.unwrap();
        }
        assert_eq!(kinds, ["ftyp", "free", "mdat", "moov", "free", "mdat", "moof", "moov"]);
        assert_eq!(&mended[at_index + 4..at_index + 8], b"moov");
        // In pieces as a source reads it, the same bytes.
        let pieced: Vec<u8> = cut
            .chunks(37)
            .enumerate()
            .flat_map(|(i, piece)| {
                let mut b = gst::Buffer::from_slice(piece.to_vec());
                b.get_mut().unwrap().set_offset(i as u64 * 37);
                mend.apply(&mut b);
                b.map_readable().unwrap().to_vec()
            })
            .collect();
        assert_eq!(pieced, mended);
    }

    #[test]
    fn a_plain_mp4_cut_before_its_index_is_lost_and_other_files_are_left_alone() {
        let ftyp = boxed(b"ftyp", b"isom\0\0\0\0isom");
        let plain = [ftyp.clone(), boxed(b"mdat", &[5; 4000]), boxed(b"moov", &[0; 100])].concat();
        assert_eq!(of(&mut Cursor::new(&plain)).unwrap(), Cut::Whole);
        assert_eq!(of(&mut Cursor::new(&plain[..3000])).unwrap(), Cut::Lost);
        let fast = [ftyp, boxed(b"moov", &[0; 100]), boxed(b"mdat", &[5; 4000])].concat();
        assert_eq!(of(&mut Cursor::new(&fast[..3000])).unwrap(), Cut::Whole, "its index first");
        assert_eq!(of(&mut Cursor::new(b"\x1aE\xdf\xa3 a Matroska file")).unwrap(), Cut::Whole);
    }
}
