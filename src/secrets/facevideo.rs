//! Sealed layouts 2 and 3 (the default): each track's faces as one small video. Consecutive
//! faces of a track differ little, so coding them as a sequence (x264 in the plugin) takes a
//! fifth to a seventh of what a lossless picture of every face takes (layout 1), restored to
//! about 45 dB.
//!
//! The core holds no media I/O: a front end supplies the codec ([`FaceCodec`]); this module
//! decides what is coded and how it is cut into sealed chunks. Each frame's face is one chunk,
//! sealed on its own with the face's place (so a chunk moved, reordered or altered fails,
//! naming its frame), holding one coded picture of the track's canvas and what a restore needs
//! to follow the sequence:
//!
//! - a segment is a run of a track's faces coded on one canvas size ([`Slot`]); a face that
//!   outgrows the canvas starts a new segment, on a keyframe;
//! - a keyframe also comes on a track's first face at or after every frame that carries the
//!   stream header (every [`HEADER_EVERY`] frames), so that a restore that joins where the header
//!   arrives can start every track within that period;
//! - each chunk names the frame of the track's previous chunk, so that a restore which did not
//!   decode that one (joined midway, a frame lost) waits for the next keyframe instead of
//!   decoding a picture against the wrong references. Such a face stays as anonymized.

use std::collections::HashMap;
use std::sync::Arc;

use super::canvas::{self, Canvas, Offset, Slot};
use crate::frame::{PixelFormat, PlaneRect};
use crate::stream::HEADER_EVERY;

/// A video codec for sealed faces, supplied by the front end (the plugin's is x264 through
/// GStreamer): the core library stays free of media I/O.
pub trait FaceCodec: Send + Sync {
    /// A new sequence of `width` x `height` I420 canvases.
    fn encoder(&self, width: usize, height: usize) -> anyhow::Result<Box<dyn FaceEncoder>>;
    /// A decoder for a sequence that starts at a keyframe.
    fn decoder(&self) -> anyhow::Result<Box<dyn FaceDecoder>>;
}

pub trait FaceEncoder: Send {
    /// Codes the next canvas of the sequence at once (no lookahead, no reordering): a keyframe,
    /// decodable by a fresh decoder, when `keyframe` is set.
    fn encode(&mut self, canvas: &Canvas, keyframe: bool) -> anyhow::Result<Vec<u8>>;
}

pub trait FaceDecoder: Send {
    /// Decodes the next coded canvas of the sequence.
    fn decode(&mut self, coded: &[u8]) -> anyhow::Result<Canvas>;
}

const KEYFRAME: u8 = 1;
/// Flags, previous frame, slot width and height.
const CHUNK_HEAD: usize = 1 + 8 + 2 + 2;

/// A chunk's head, after the layout and format bytes. Layout 3's chunks add the face's
/// [`Offset`] in the canvas, a byte for each side; layout 2's have none: their faces sit at the
/// canvas's corner.
struct Head {
    keyframe: bool,
    /// The frame of the track's previous chunk (unused on a keyframe).
    previous: u64,
    slot: Slot,
    at: Offset,
}

impl Head {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(if self.keyframe { KEYFRAME } else { 0 });
        out.extend_from_slice(&self.previous.to_le_bytes());
        out.extend_from_slice(&(self.slot.width as u16).to_le_bytes());
        out.extend_from_slice(&(self.slot.height as u16).to_le_bytes());
        out.extend_from_slice(&[self.at.x as u8, self.at.y as u8]);
    }

    fn read(bytes: &[u8], on_grid: bool) -> Option<(Self, &[u8])> {
        let (head, rest) = bytes.split_at_checked(CHUNK_HEAD)?;
        let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]) as usize;
        let previous = u64::from_le_bytes(head[1..9].try_into().ok()?);
        let slot = Slot { width: u16_at(9), height: u16_at(11) };
        let (at, coded) = match on_grid {
            true => {
                let ([x, y], coded) = rest.split_first_chunk::<2>()?;
                (Offset { x: *x as usize, y: *y as usize }, coded)
            }
            false => (Offset::default(), rest),
        };
        Some((Self { keyframe: head[0] & KEYFRAME != 0, previous, slot, at }, coded))
    }
}

/// Where one face sits in its track's sequence.
pub(super) struct InTrack {
    pub track: u64,
    pub frame: u64,
}

struct TrackEncoder {
    format: PixelFormat,
    slot: Slot,
    encoder: Box<dyn FaceEncoder>,
    last_frame: u64,
    last_keyframe: u64,
}

/// The sealing side: one encoder per track.
pub(super) struct TrackEncoders {
    codec: Arc<dyn FaceCodec>,
    tracks: HashMap<u64, TrackEncoder>,
}

impl TrackEncoders {
    pub fn new(codec: Arc<dyn FaceCodec>) -> Self {
        Self { codec, tracks: HashMap::new() }
    }

    /// The chunk (after the layout and format bytes) of a `width` x `height` face of `format`
    /// whose place in the frame's block grid is `offset` (see [`Slot::place`]).
    pub fn encode(
        &mut self,
        format: PixelFormat,
        planes: &[PlaneRect],
        (width, height): (usize, usize),
        at: InTrack,
        offset: Offset,
    ) -> anyhow::Result<Vec<u8>> {
        // A track gone for a header period is over; if it comes back, it starts a new segment.
        self.tracks.retain(|_, t| t.last_frame + HEADER_EVERY > at.frame);
        let goes_on = self.tracks.get(&at.track).filter(|t| t.format == format && t.slot.holds(width, height, Offset::default()));
        // Untracked faces (track 0) cannot be told apart from one frame to the next: each is a
        // segment of its own.
        let (previous, keyframe) = match goes_on.filter(|_| at.track != 0) {
            Some(t) => (t.last_frame, at.frame / HEADER_EVERY != t.last_keyframe / HEADER_EVERY),
            None => {
                let slot = Slot::around(width, height);
                let (cw, ch) = slot.canvas_size(format);
                let encoder = self.codec.encoder(cw, ch)?;
                let t = TrackEncoder { format, slot, encoder, last_frame: at.frame, last_keyframe: at.frame };
                self.tracks.insert(at.track, t);
                (at.frame, true)
            }
        };
        let t = self.tracks.get_mut(&at.track).expect("the track's encoder was just found or made");
        let offset = t.slot.place(width, height, offset);
        let coded = t.encoder.encode(&canvas::pack(format, planes, width, t.slot, offset), keyframe)?;
        t.last_frame = at.frame;
        if keyframe {
            t.last_keyframe = at.frame;
        }
        let mut out = Vec::with_capacity(CHUNK_HEAD + coded.len());
        Head { keyframe, previous, slot: t.slot, at: offset }.write(&mut out);
        out.extend_from_slice(&coded);
        Ok(out)
    }
}

struct TrackDecoder {
    format: PixelFormat,
    slot: Slot,
    decoder: Box<dyn FaceDecoder>,
    last_frame: u64,
}

/// What opening one chunk gave.
pub(super) enum Decoded {
    Planes(Vec<PlaneRect>),
    /// The chunk continues a sequence this restore did not decode: the face waits for its
    /// track's next keyframe.
    Waiting,
}

/// The opening side: one decoder per track, made on the track's first keyframe.
#[derive(Default)]
pub(super) struct TrackDecoders {
    codec: Option<Arc<dyn FaceCodec>>,
    tracks: HashMap<u64, TrackDecoder>,
}

impl TrackDecoders {
    pub fn set_codec(&mut self, codec: Arc<dyn FaceCodec>) {
        self.codec = Some(codec);
    }

    /// The planes of a `width` x `height` face of `format` from its opened chunk, `on_grid` if the
    /// chunk's head gives the face's offset in the canvas (layout 3); errors say what in the chunk
    /// is not understood.
    pub fn decode(
        &mut self,
        format: PixelFormat,
        chunk: &[u8],
        (width, height): (usize, usize),
        at: InTrack,
        on_grid: bool,
    ) -> Result<Decoded, String> {
        let (head, coded) = Head::read(chunk, on_grid).ok_or("a face video chunk is cut")?;
        if !head.slot.holds(width, height, head.at) || !head.slot.width.is_multiple_of(2) || !head.slot.height.is_multiple_of(2) {
            return Err(format!("a {}x{} canvas cannot hold a {width}x{height} face", head.slot.width, head.slot.height));
        }
        let codec =
            self.codec.clone().ok_or("the face is sealed as video, and this restore was given no video decoder for it")?;
        self.tracks.retain(|_, t| t.last_frame + HEADER_EVERY > at.frame);
        let continues = match self.tracks.get(&at.track) {
            Some(t) if head.keyframe => t.format == format && t.slot == head.slot,
            Some(t) => t.format == format && t.slot == head.slot && t.last_frame == head.previous,
            None => false,
        };
        if !continues {
            if !head.keyframe {
                return Ok(Decoded::Waiting);
            }
            let decoder = codec.decoder().map_err(|e| format!("no face video decoder: {e:#}"))?;
            self.tracks.insert(at.track, TrackDecoder { format, slot: head.slot, decoder, last_frame: at.frame });
        }
        let t = self.tracks.get_mut(&at.track).expect("the track's decoder was just found or made");
        let picture = t.decoder.decode(coded);
        // A picture that did not decode breaks the sequence until the next keyframe.
        let picture = match picture {
            Ok(p) => p,
            Err(e) => {
                self.tracks.remove(&at.track);
                return Err(format!("the face video does not decode: {e:#}"));
            }
        };
        t.last_frame = at.frame;
        canvas::unpack(&picture, format, (width, height), head.slot, head.at)
            .map(Decoded::Planes)
            .ok_or_else(|| format!("the decoded canvas is {}x{}, not the slot's", picture.width, picture.height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An exact stand-in for a video codec whose pictures depend on the one before, as a real
    /// codec's do: a keyframe is the canvas, any other picture its bytes XOR the previous one's.
    /// Decoded against the wrong previous picture, the bytes come out wrong.
    struct XorCodec;

    struct Xor(Option<Canvas>);

    fn xor(a: &Canvas, b: &[u8]) -> Vec<u8> {
        a.y.iter().chain(&a.u).chain(&a.v).zip(b).map(|(p, q)| p ^ q).collect()
    }

    fn split(width: usize, height: usize, bytes: Vec<u8>) -> Canvas {
        let (y, chroma) = bytes.split_at(width * height);
        let (u, v) = chroma.split_at(chroma.len() / 2);
        Canvas { width, height, y: y.to_vec(), u: u.to_vec(), v: v.to_vec() }
    }

    impl FaceCodec for XorCodec {
        fn encoder(&self, _: usize, _: usize) -> anyhow::Result<Box<dyn FaceEncoder>> {
            Ok(Box::new(Xor(None)))
        }
        fn decoder(&self) -> anyhow::Result<Box<dyn FaceDecoder>> {
            Ok(Box::new(Xor(None)))
        }
    }

    impl FaceEncoder for Xor {
        fn encode(&mut self, canvas: &Canvas, keyframe: bool) -> anyhow::Result<Vec<u8>> {
            let whole: Vec<u8> = canvas.y.iter().chain(&canvas.u).chain(&canvas.v).copied().collect();
            let coded = match &self.0 {
                Some(prev) if !keyframe => xor(prev, &whole),
                _ => whole,
            };
            self.0 = Some(canvas.clone());
            Ok([&[keyframe as u8][..], &(canvas.width as u32).to_le_bytes(), &(canvas.height as u32).to_le_bytes(), &coded]
                .concat())
        }
    }

    impl FaceDecoder for Xor {
        fn decode(&mut self, coded: &[u8]) -> anyhow::Result<Canvas> {
            let w = u32::from_le_bytes(coded[1..5].try_into()?) as usize;
            let h = u32::from_le_bytes(coded[5..9].try_into()?) as usize;
            let bytes = match (&self.0, coded[0]) {
                (_, 1) => coded[9..].to_vec(),
                (Some(prev), _) => xor(prev, &coded[9..]),
                (None, _) => anyhow::bail!("a sequence must start at a keyframe"),
            };
            let canvas = split(w, h, bytes);
            self.0 = Some(canvas.clone());
            Ok(canvas)
        }
    }

    /// Frame `i`'s face: a grey region whose bytes change every frame.
    fn face(i: u64, (w, h): (usize, usize)) -> Vec<PlaneRect> {
        let plane = |rw: usize, rh: usize, k: u64| PlaneRect {
            row_bytes: rw,
            rows: rh,
            data: (0..rw * rh).map(|p| ((p as u64 * 3 + i * 11 + k) % 256) as u8).collect(),
        };
        vec![plane(w, h, 0), plane(w.div_ceil(2), h.div_ceil(2), 1), plane(w.div_ceil(2), h.div_ceil(2), 2)]
    }

    fn size(i: u64) -> (usize, usize) {
        // The face grows past its canvas at frame 45.
        if i < 45 { (80, 72) } else { (160, 144) }
    }

    fn in_track(i: u64) -> InTrack {
        InTrack { track: 7, frame: i }
    }

    /// Where frame `i`'s face sits in the block grid: it moves across it as it goes.
    fn offset(i: u64) -> Offset {
        Offset::on_grid(2 * i as usize, 6 * i as usize)
    }

    #[test]
    fn a_face_video_keys_at_each_header_and_new_canvas_and_a_late_restore_waits_for_a_keyframe() {
        let codec: Arc<dyn FaceCodec> = Arc::new(XorCodec);
        let mut encoders = TrackEncoders::new(codec.clone());
        let chunks: Vec<Vec<u8>> = (0..70)
            .map(|i| encoders.encode(PixelFormat::I420, &face(i, size(i)), size(i), in_track(i), offset(i)).unwrap())
            .collect();
        let heads: Vec<Head> = chunks.iter().map(|c| Head::read(c, true).unwrap().0).collect();
        let keyframes: Vec<u64> = (0..70).filter(|&i| heads[i as usize].keyframe).collect();
        assert_eq!(keyframes, [0, HEADER_EVERY, 45, 2 * HEADER_EVERY], "the first face, each header period, a new canvas");
        assert!(heads.iter().zip(0..).all(|(h, i)| h.at == offset(i)), "each face is coded where it sits in the grid");

        let restore = |from: u64, skip: Option<u64>| {
            let mut decoders = TrackDecoders::default();
            decoders.set_codec(codec.clone());
            (from..70)
                .filter(|i| Some(*i) != skip)
                .map(|i| match decoders.decode(PixelFormat::I420, &chunks[i as usize], size(i), in_track(i), true).unwrap() {
                    Decoded::Planes(planes) => {
                        assert_eq!(planes, face(i, size(i)), "frame {i} comes back exactly");
                        true
                    }
                    Decoded::Waiting => false,
                })
                .collect::<Vec<bool>>()
        };
        assert!(restore(0, None).iter().all(|&b| b), "from the start every face opens");
        let late = restore(10, None);
        assert!(late[..20].iter().all(|&b| !b) && late[20..].iter().all(|&b| b), "joined at 10: faces wait until frame 30");
        let lost = restore(0, Some(50));
        assert!(lost[..50].iter().all(|&b| b), "before the lost frame");
        assert!(lost[50..59].iter().all(|&b| !b) && lost[59..].iter().all(|&b| b), "after it, faces wait for frame 60");
    }

    #[test]
    fn small_faces_stay_at_the_corner_and_chunks_without_an_offset_still_open() {
        let codec: Arc<dyn FaceCodec> = Arc::new(XorCodec);
        let mut encoders = TrackEncoders::new(codec.clone());
        let (w, h) = (40, 36);
        let chunks: Vec<Vec<u8>> = (0..10)
            .map(|i| encoders.encode(PixelFormat::I420, &face(i, (w, h)), (w, h), in_track(i), offset(i)).unwrap())
            .collect();
        assert!(
            chunks.iter().all(|c| Head::read(c, true).unwrap().0.at == Offset::default()),
            "a 48 x 48 canvas keeps its face at the corner"
        );
        // Layout 2, as sealed before faces went on the grid: the same chunks without the offset.
        let mut decoders = TrackDecoders::default();
        decoders.set_codec(codec);
        for (i, chunk) in (0..).zip(&chunks) {
            let old = [&chunk[..CHUNK_HEAD], &chunk[CHUNK_HEAD + 2..]].concat();
            match decoders.decode(PixelFormat::I420, &old, (w, h), in_track(i), false).unwrap() {
                Decoded::Planes(planes) => assert_eq!(planes, face(i, (w, h)), "frame {i} of layout 2"),
                Decoded::Waiting => panic!("frame {i} of layout 2 waits"),
            }
        }
    }
}
