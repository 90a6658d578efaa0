//! The original pixels of a face, sealed where it was cut and opened back into the same place.
//! Pixels travel as lossless PNG, so a sealed restore gives the frame's own pixels back exactly.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{ContentKey, FacePlace, FaceSealer, Identity, KeyEnvelope, Recipient, SealError};
use crate::frame::rgb::RgbImage;
use crate::frame::{FrameMut, Region};

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

    /// Seals what `region` of `frame` shows now (base64 text, for the stream's records).
    pub fn seal(&self, frame: &FrameMut, region: Region, place: &FacePlace) -> String {
        let img = frame.read_region(region);
        let mut png_bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut png_bytes, img.width as u32, img.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().expect("PNG header into memory");
            w.write_image_data(&img.data).expect("PNG data into memory");
        }
        STANDARD.encode(self.sealer.seal(place, &png_bytes))
    }

    /// Opens a sealed face and writes its pixels back into `region`.
    pub fn open_into(&self, frame: &mut FrameMut, region: Region, place: &FacePlace, sealed: &str) -> Result<(), SealError> {
        let tampered = || SealError::Tampered { frame: place.frame, index: place.index };
        let bytes = STANDARD.decode(sealed).map_err(|_| tampered())?;
        let png_bytes = self.sealer.open(place, &bytes)?;
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes.as_slice())).read_info().map_err(|_| tampered())?;
        let mut data = vec![0; reader.output_buffer_size().ok_or_else(tampered)?];
        let info = reader.next_frame(&mut data).map_err(|_| tampered())?;
        let (w, h) = (info.width as usize, info.height as usize);
        if (w, h) != (region.width, region.height) || info.color_type != png::ColorType::Rgb {
            return Err(tampered());
        }
        data.truncate(w * h * 3);
        let img = RgbImage { width: w, height: h, data };
        frame.write_region(region, &img).map_err(|_| tampered())
    }
}
