//! The original pixels of a face, sealed where it was cut and opened back into the same place.
//! What is sealed is the frame's own bytes over the face's region, plane by plane, in the frame's
//! own pixel format (each plane a lossless greyscale PNG): a sealed restore puts back exactly the
//! bytes the camera's decoder gave, with no colour conversion on the way.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{ContentKey, FacePlace, FaceSealer, Identity, KeyEnvelope, Recipient, SealError};
use crate::frame::{FrameMut, PixelFormat, PlaneRect, Region};

/// The layout of the sealed bytes; a restore refuses others by name.
const LAYOUT_VERSION: u8 = 1;

/// A stream's sealer, opened from the recipients (to seal) or the identities (to open).
pub struct FaceVault {
    sealer: FaceSealer,
}

impl FaceVault {
    /// A fresh content key for a stream, and its envelope for the header.
    pub fn create(recipients: &[Recipient], threshold: usize) -> Result<(ContentKey, KeyEnvelope), SealError> {
        let key = ContentKey::generate();
        let envelope = key.wrap(recipients, threshold)?;
        Ok((key, envelope))
    }

    /// The vault of a stream whose header (with its envelope) hashes to `header_digest`.
    pub fn new(key: ContentKey, header_digest: [u8; 32]) -> Self {
        Self { sealer: FaceSealer::new(key, header_digest) }
    }

    /// Opens a stream's vault with the identities given.
    pub fn open(envelope: &KeyEnvelope, identities: &[Identity], header_digest: [u8; 32]) -> Result<Self, SealError> {
        Ok(Self::new(ContentKey::unwrap(envelope, identities)?, header_digest))
    }

    /// Seals what `region` of `frame` holds now (base64 text, for the stream's records).
    pub fn seal(&self, frame: &FrameMut, region: Region, place: &FacePlace) -> String {
        let planes = frame.region_planes(region);
        let mut bytes = vec![LAYOUT_VERSION, format_code(frame.format()), planes.len() as u8];
        for plane in &planes {
            let png = grey_png(plane);
            bytes.extend_from_slice(&(png.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&png);
        }
        STANDARD.encode(self.sealer.seal(place, &bytes))
    }

    /// Opens a sealed face and writes its bytes back into `region`. A frame of another pixel
    /// format than the one sealed is refused by name: the bytes are only exact in their own.
    pub fn open_into(&self, frame: &mut FrameMut, region: Region, place: &FacePlace, sealed: &str) -> Result<(), SealError> {
        let tampered = || SealError::Tampered { frame: place.frame, index: place.index };
        let bytes = STANDARD.decode(sealed).map_err(|_| tampered())?;
        // Past the AEAD the bytes are the sealer's own: a malformed layout is a bug or an older
        // version, reported as such rather than as tampering.
        let bytes = self.sealer.open(place, &bytes)?;
        let layout = |what: &str| SealError::Layout { frame: place.frame, index: place.index, what: what.to_string() };
        let [version, format, count, rest @ ..] = bytes.as_slice() else { return Err(layout("too short")) };
        if *version != LAYOUT_VERSION {
            return Err(layout(&format!("layout version {version}, this build reads {LAYOUT_VERSION}")));
        }
        if *format != format_code(frame.format()) {
            return Err(SealError::OtherFormat {
                frame: place.frame,
                index: place.index,
                sealed: format_name(*format),
                here: format!("{:?}", frame.format()),
            });
        }
        let mut planes = Vec::with_capacity(*count as usize);
        let mut rest = rest;
        for _ in 0..*count {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(|| layout("a plane's length is cut"))?;
            let len = u32::from_le_bytes(*len) as usize;
            let png = tail.get(..len).ok_or_else(|| layout("a plane is cut"))?;
            planes.push(read_grey_png(png).ok_or_else(|| layout("a plane is not a greyscale PNG"))?);
            rest = &tail[len..];
        }
        frame.write_region_planes(region, &planes).map_err(|e| layout(&format!("{e}")))
    }
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
        let (key, envelope) = FaceVault::create(&[me.recipient()], 1).unwrap();
        let vault = FaceVault::new(key, [9; 32]);
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
        let sealed = vault.seal(&frame, region, &place(5));
        frame.fill_black(region).unwrap();
        let opened = FaceVault::open(&envelope, &[me], [9; 32]).unwrap();
        assert!(matches!(opened.open_into(&mut frame, region, &place(6), &sealed), Err(SealError::Tampered { frame: 6, .. })));
        opened.open_into(&mut frame, region, &place(5), &sealed).unwrap();
        drop(frame);
        assert!((y, u, v) == original, "the face's Y, U and V bytes are the original's");

        let mut rgb = vec![0u8; w * h * 3];
        let mut frame = FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut rgb).unwrap();
        let e = opened.open_into(&mut frame, region, &place(5), &sealed).unwrap_err();
        assert!(matches!(e, SealError::OtherFormat { .. }), "{e}");
        assert!(e.to_string().contains("I420"), "{e}");
    }
}
