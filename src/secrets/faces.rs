//! The original pixels of a face, sealed where it was cut and opened back into the same place.
//! What is sealed is the frame's own bytes over the face's region, in the frame's own pixel
//! format, in one of three layouts:
//!
//! - 1, each plane a greyscale PNG, lossless: photos, and videos sealed bit-exact where no face
//!   video codec is at hand. Large: every face of every frame whole.
//! - 3, the default for videos: each track's faces as a video ([`super::facevideo`]), a fifth
//!   to a seventh of layout 1's size, restored to about 45 dB, or bit-exact where the codec is
//!   lossless; each face sits in its canvas where it sat in the frame's grid of 16 x 16 blocks
//!   ([`super::canvas::Offset`]).
//! - 2, as 3 with every face at its canvas's corner: what streams sealed before 2026-12-03 hold.
//!
//! Either way a restore puts back the bytes the camera's decoder gave (or, from a lossy face
//! video, bytes near them), with no colour conversion on the way. It reads all three layouts,
//! whichever the stream was made with.

use std::sync::Arc;

use super::canvas::Offset;
use super::facevideo::{Decoded, FaceCodec, InTrack, TrackDecoders, TrackEncoders};
use super::{ContentKey, FacePlace, FaceSealer, Identity, KeyEnvelope, Recipient, SealError};
use crate::frame::{FrameMut, PixelFormat, PlaneRect, Region};

/// Each plane a lossless greyscale PNG.
const LAYOUT_PNG: u8 = 1;
/// Each track's faces as a video, one coded picture a chunk, each face at its canvas's corner.
const LAYOUT_VIDEO_AT_CORNER: u8 = 2;
/// The same, each face where it sits in the frame's block grid.
const LAYOUT_VIDEO: u8 = 3;

/// How a stream's faces are sealed.
#[derive(Clone)]
pub enum SealedLayout {
    /// Bit-exact: every face a lossless PNG of each plane.
    Lossless,
    /// Each track's faces coded as a video with this codec.
    Video(Arc<dyn FaceCodec>),
}

/// A sealed face opened: its original pixels, to be put back where they were cut.
pub struct OpenedFace {
    region: Region,
    planes: Vec<PlaneRect>,
    frame: u64,
    index: u32,
}

impl OpenedFace {
    /// Writes the original pixels back into their region of `frame`.
    pub fn write_into(self, frame: &mut FrameMut) -> Result<(), SealError> {
        frame.write_region_planes(self.region, &self.planes).map_err(|e| SealError::Layout {
            frame: self.frame,
            index: self.index,
            what: format!("{e}"),
        })
    }
}

/// A stream's sealer, opened from the recipients (to seal) or the identities (to open).
pub struct FaceVault {
    sealer: FaceSealer,
    /// The face videos being sealed (layout 2); none: each face as PNG.
    encoders: Option<TrackEncoders>,
    /// The face videos being opened.
    decoders: TrackDecoders,
}

impl FaceVault {
    /// A fresh content key for a stream, and its envelope for the header: wrapped to
    /// `recipients`, and to the password whose wrap key `password` is, if given.
    pub fn create(
        recipients: &[Recipient],
        threshold: usize,
        password: Option<&[u8; 32]>,
    ) -> Result<(ContentKey, KeyEnvelope), SealError> {
        let key = ContentKey::generate();
        let envelope = key.wrap(recipients, threshold, password)?;
        Ok((key, envelope))
    }

    /// The vault of a stream whose header (with its envelope) hashes to `header_digest`, sealing
    /// in `layout`.
    pub fn new(key: ContentKey, header_digest: [u8; 32], layout: SealedLayout) -> Self {
        let encoders = match layout {
            SealedLayout::Lossless => None,
            SealedLayout::Video(codec) => Some(TrackEncoders::new(codec)),
        };
        Self { sealer: FaceSealer::new(key, header_digest), encoders, decoders: TrackDecoders::default() }
    }

    /// Opens a stream's vault with the identities given.
    pub fn open(envelope: &KeyEnvelope, identities: &[Identity], header_digest: [u8; 32]) -> Result<Self, SealError> {
        Ok(Self::new(ContentKey::unwrap(envelope, identities)?, header_digest, SealedLayout::Lossless))
    }

    /// Opens a stream's vault with the password's wrap key; `None` when its faces were not
    /// sealed to the password.
    pub fn open_with_password(
        envelope: &KeyEnvelope,
        wrap_key: &[u8; 32],
        header_digest: [u8; 32],
    ) -> Option<Result<Self, SealError>> {
        let key = ContentKey::unwrap_password(envelope, wrap_key)?;
        Some(key.map(|key| Self::new(key, header_digest, SealedLayout::Lossless)))
    }

    /// Lets the vault open faces sealed as video (layout 2) with `codec`.
    pub fn decode_with(&mut self, codec: Arc<dyn FaceCodec>) {
        self.decoders.set_codec(codec);
    }

    /// Seals what `region` of `frame` holds now. Faces of a video must be sealed in frame order:
    /// each continues its track's face video.
    pub fn seal(&mut self, frame: &FrameMut, region: Region, place: &FacePlace) -> Result<Vec<u8>, SealError> {
        let planes = frame.region_planes(region);
        let format = frame.format();
        let bytes = match &mut self.encoders {
            None => {
                let mut bytes = vec![LAYOUT_PNG, format_code(format), planes.len() as u8];
                for plane in &planes {
                    let png = grey_png(plane);
                    bytes.extend_from_slice(&(png.len() as u32).to_le_bytes());
                    bytes.extend_from_slice(&png);
                }
                bytes
            }
            Some(encoders) => {
                let at = InTrack { track: place.track, frame: place.frame };
                let chunk = encoders
                    .encode(format, &planes, (region.width, region.height), at, Offset::on_grid(region.x, region.y))
                    .map_err(|e| SealError::Codec(format!("{e:#}")))?;
                [&[LAYOUT_VIDEO, format_code(format)][..], &chunk].concat()
            }
        };
        Ok(self.sealer.seal(place, &bytes))
    }

    /// Opens a sealed face of a `format` frame, to be written back into `region`; `None` while
    /// it continues a face video this restore did not start (it joined midway, or a frame before
    /// was lost): the face stays as it is until its track's next keyframe. A frame of another
    /// pixel format than the one sealed is refused by name: the bytes are only exact in their own.
    pub fn open_face(
        &mut self,
        format: PixelFormat,
        region: Region,
        place: &FacePlace,
        sealed: &[u8],
    ) -> Result<Option<OpenedFace>, SealError> {
        // Past the AEAD the bytes are the sealer's own: a malformed layout is a bug or an older
        // version, reported as such rather than as tampering.
        let bytes = self.sealer.open(place, sealed)?;
        let layout = |what: &str| SealError::Layout { frame: place.frame, index: place.index, what: what.to_string() };
        let [version, code, rest @ ..] = bytes.as_slice() else { return Err(layout("too short")) };
        if *code != format_code(format) {
            return Err(SealError::OtherFormat {
                frame: place.frame,
                index: place.index,
                sealed: format_name(*code),
                here: format!("{format:?}"),
            });
        }
        let planes = match *version {
            LAYOUT_PNG => read_png_planes(rest).map_err(layout)?,
            LAYOUT_VIDEO | LAYOUT_VIDEO_AT_CORNER => {
                let at = InTrack { track: place.track, frame: place.frame };
                let on_grid = *version == LAYOUT_VIDEO;
                match self.decoders.decode(format, rest, (region.width, region.height), at, on_grid).map_err(|e| layout(&e))? {
                    Decoded::Planes(planes) => planes,
                    Decoded::Waiting => return Ok(None),
                }
            }
            v => return Err(layout(&format!("layout version {v}, this build reads {LAYOUT_PNG} to {LAYOUT_VIDEO}"))),
        };
        Ok(Some(OpenedFace { region, planes, frame: place.frame, index: place.index }))
    }
}

/// The planes of layout 1: a count, then each plane's length and PNG.
fn read_png_planes(bytes: &[u8]) -> Result<Vec<PlaneRect>, &'static str> {
    let [count, rest @ ..] = bytes else { return Err("too short") };
    let mut planes = Vec::with_capacity(*count as usize);
    let mut rest = rest;
    for _ in 0..*count {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or("a plane's length is cut")?;
        let len = u32::from_le_bytes(*len) as usize;
        let png = tail.get(..len).ok_or("a plane is cut")?;
        planes.push(read_grey_png(png).ok_or("a plane is not a greyscale PNG")?);
        rest = &tail[len..];
    }
    Ok(planes)
}

fn grey_png(plane: &PlaneRect) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, plane.row_bytes as u32, plane.rows as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().expect("PNG header into memory");
    w.write_image_data(&plane.data).expect("PNG data into memory");
    drop(w);
    out
}

fn read_grey_png(bytes: &[u8]) -> Option<PlaneRect> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().ok()?;
    let mut data = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut data).ok()?;
    if info.color_type != png::ColorType::Grayscale || info.bit_depth != png::BitDepth::Eight {
        return None;
    }
    let (row_bytes, rows) = (info.width as usize, info.height as usize);
    data.truncate(row_bytes * rows);
    Some(PlaneRect { row_bytes, rows, data })
}

const FORMATS: [PixelFormat; 9] = [
    PixelFormat::Rgb,
    PixelFormat::Bgr,
    PixelFormat::Rgbx,
    PixelFormat::Bgrx,
    PixelFormat::Xrgb,
    PixelFormat::Xbgr,
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::Gray8,
];

fn format_code(format: PixelFormat) -> u8 {
    FORMATS.iter().position(|f| *f == format).expect("every format is listed") as u8
}

fn format_name(code: u8) -> String {
    FORMATS.get(code as usize).map_or_else(|| format!("unknown format {code}"), |f| format!("{f:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Plane, YuvMatrix};
    use crate::secrets::Identity;

    fn place(frame: u64) -> FacePlace {
        FacePlace { frame, pts: Some(frame * 40_000_000), index: 0, track: 3, region: [10, 4, 21, 13] }
    }

    #[test]
    fn an_i420_face_comes_back_bit_exact_and_only_in_its_own_format() {
        let me = Identity::generate();
        let (key, envelope) = FaceVault::create(&[me.recipient()], 1, None).unwrap();
        let mut vault = FaceVault::new(key, [9; 32], SealedLayout::Lossless);
        let (w, h) = (31usize, 17usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut y: Vec<u8> = (0..w * h).map(|i| (i * 7 % 256) as u8).collect();
        let mut u: Vec<u8> = (0..cw * ch).map(|i| (i * 13 % 256) as u8).collect();
        let mut v: Vec<u8> = (0..cw * ch).map(|i| (i * 5 % 256) as u8).collect();
        let original = (y.clone(), u.clone(), v.clone());
        let planes =
            vec![Plane { data: &mut y, stride: w }, Plane { data: &mut u, stride: cw }, Plane { data: &mut v, stride: cw }];
        let mut frame = FrameMut::new(PixelFormat::I420, w, h, YuvMatrix::Bt709, planes).unwrap();
        let region = frame.align_region(9.5, 3.5, 31.0, 17.0).unwrap();
        let sealed = vault.seal(&frame, region, &place(5)).unwrap();
        frame.fill_black(region).unwrap();
        let mut opened = FaceVault::open(&envelope, &[me], [9; 32]).unwrap();
        assert!(matches!(
            opened.open_face(frame.format(), region, &place(6), &sealed),
            Err(SealError::Tampered { frame: 6, .. })
        ));
        opened
            .open_face(frame.format(), region, &place(5), &sealed)
            .unwrap()
            .expect("a lossless face opens at once")
            .write_into(&mut frame)
            .unwrap();
        drop(frame);
        assert!((y, u, v) == original, "the face's Y, U and V bytes are the original's");

        let mut rgb = vec![0u8; w * h * 3];
        let frame = FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut rgb).unwrap();
        let e = opened.open_face(frame.format(), region, &place(5), &sealed).err().expect("another format");
        assert!(matches!(e, SealError::OtherFormat { .. }), "{e}");
        assert!(e.to_string().contains("I420"), "{e}");
    }
}
