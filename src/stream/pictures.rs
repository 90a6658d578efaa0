//! Signatures of the coded pictures themselves. A frame's signed record vouches for its sealed
//! faces, not for the rest of the picture: anyone could repaint the background of a signed
//! recording, or put another recording's pictures under its records. Where the header promises
//! it ([`StreamHeader::pictures_signed`](super::header::StreamHeader)), every access unit after
//! the encoder carries one more SEI message: the signer's signature of the access unit's
//! faceveil payload (which names the frame and is bound to the signed header) and of its slices
//! as coded. Both survive remuxing and RTP unchanged; a re-encode loses them, as it should.

use sha2::{Digest, Sha256};

use super::sei::{self, Codec, Framing};
use super::{SEI_UUID, SeiPayload};
use crate::secrets::{Signer, SigningKey};

/// The user-data-unregistered SEI identifier of a picture's signature.
pub const PICTURE_SIGNATURE_UUID: [u8; 16] = *b"faceveil-picsig1";

/// What a coded picture's check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PictureCheck {
    /// Its signer's signature covers its faceveil payload and its slices as they are.
    Signed,
    /// It carries no signature, or no faceveil payload to bind one to.
    Unsigned,
    /// It carries a signature that does not cover what it holds now: its slices or its payload
    /// were altered, or the signature was taken from another picture or made by another key.
    Altered,
}

impl PictureCheck {
    /// What is wrong with the picture, to follow "its coded picture"; `None` where nothing is.
    pub fn fault(self) -> Option<&'static str> {
        match self {
            Self::Signed => None,
            Self::Unsigned => Some("carries no signature"),
            Self::Altered => Some("was altered after it was signed, or its signature is another picture's"),
        }
    }
}

/// What is said of a picture without faceveil data met where every picture is signed, after the
/// record of frame `last`.
pub fn without_data(last: Option<u64>) -> String {
    let after = last.map_or_else(|| "before any frame".into(), |f| format!("after frame {f}"));
    format!("a coded picture {after} carries no faceveil data, so no signature: put in, or cut short before its data")
}

/// What a picture's signature covers: its faceveil payloads, then its slices, each after its
/// length. `None` for an access unit without a faceveil payload, which has no frame to name.
fn digest(au: &[u8], framing: Framing, codec: Codec) -> Option<[u8; 32]> {
    let payloads = sei::find_user_data(au, framing, codec, &SEI_UUID);
    if payloads.is_empty() {
        return None;
    }
    let mut hash = Sha256::new();
    for part in payloads.iter().map(Vec::as_slice).chain(sei::slices(au, framing, codec)) {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    Some(hash.finalize().into())
}

/// The SEI NAL unit that signs the access unit `au`, whose faceveil payload is already in it;
/// `None` where it carries none.
pub fn signature_nal(key: &SigningKey, au: &[u8], framing: Framing, codec: Codec) -> Option<Vec<u8>> {
    let signature = key.sign_picture(&digest(au, framing, codec)?);
    Some(sei::sei_nal(codec, &PICTURE_SIGNATURE_UUID, &signature))
}

/// Whether the access unit `au` is as `signer` signed it.
pub fn check(signer: &Signer, au: &[u8], framing: Framing, codec: Codec) -> PictureCheck {
    let signatures = sei::find_user_data(au, framing, codec, &PICTURE_SIGNATURE_UUID);
    let Some(digest) = digest(au, framing, codec).filter(|_| !signatures.is_empty()) else { return PictureCheck::Unsigned };
    let signed = signatures
        .iter()
        .filter_map(|s| <&[u8; 64]>::try_from(s.as_slice()).ok())
        .any(|signature| signer.signed_picture(&digest, signature));
    if signed { PictureCheck::Signed } else { PictureCheck::Altered }
}

/// Follows a stream's coded pictures as they arrive, for a restore that names its signer: from a
/// header that signer signed and that promises signed pictures, every picture must be as signed.
/// Pictures under no header yet, or under one another key signed (which the restore refuses,
/// saying who signed it), are not its to judge. A picture not as signed is held back until it is
/// known whether another follows: then it fails the stream; where none does, it was the last,
/// where a writer killed or cut off within a picture (a crash, a power cut, a full disk) stops,
/// and a restore gives back what comes before it ([`Self::end`]).
pub struct PictureWatch {
    signer: Signer,
    /// Whether the last header met promises pictures signed by `signer`.
    promised: bool,
    /// The number of the last record met, to say where a picture without one sits.
    last: Option<u64>,
    /// What is wrong with the picture held back, if one is.
    held: Option<String>,
}

/// What a [`PictureWatch`] makes of an access unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Watched {
    /// Pass it on: as signed, or not the watch's to judge.
    Pass,
    /// Hold it back, not as signed: the next access unit's check fails with why, or where there
    /// is none, [`PictureWatch::end`] says it.
    HeldBack,
}

impl PictureWatch {
    pub fn new(signer: Signer) -> Self {
        Self { signer, promised: false, last: None, held: None }
    }

    /// The signer the pictures are checked against.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The next access unit: an error that names the frame of the picture held back before it,
    /// which was not the last.
    pub fn check(&mut self, au: &[u8], framing: Framing, codec: Codec) -> Result<Watched, String> {
        if let Some(why) = self.held.take() {
            return Err(why);
        }
        let payload = sei::find_user_data(au, framing, codec, &SEI_UUID).first().map(|p| SeiPayload::decode(p));
        let frame = match &payload {
            Some(Ok(payload)) => {
                if let Some(header) = &payload.header {
                    self.promised = header.pictures_signed && header.check_signer(Some(&self.signer), &[]).is_ok();
                }
                payload.record.as_ref().map(|r| r.frame)
            }
            _ => None,
        };
        if !self.promised {
            return Ok(Watched::Pass);
        }
        let fault = match frame {
            None => without_data(self.last),
            Some(frame) => {
                self.last = Some(frame);
                match check(&self.signer, au, framing, codec).fault() {
                    None => return Ok(Watched::Pass),
                    Some(fault) => format!("frame {frame}: its coded picture {fault}"),
                }
            }
        };
        self.held = Some(fault);
        Ok(Watched::HeldBack)
    }

    /// At the end of the stream: what was wrong with its last picture, held back and so left out,
    /// if it was not as signed.
    pub fn end(&mut self) -> Option<String> {
        self.held.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(bytes: &[u8]) -> Vec<u8> {
        [&[0, 0, 0, 1][..], bytes].concat()
    }

    /// An access unit in Annex B: SPS, faceveil's SEI with `payload`, and two slices.
    fn access_unit(payload: &[u8], slice: u8) -> Vec<u8> {
        let sps = unit(&[0x67, 0x42, 0x00, 0x1e]);
        let sei = unit(&sei::sei_nal(Codec::H264, &SEI_UUID, payload));
        [sps, sei, unit(&[0x65, 0x88, 0x84, slice, 0x42]), unit(&[0x41, 0x9a, 0x02, slice])].concat()
    }

    fn signed(key: &SigningKey, au: &[u8]) -> Vec<u8> {
        let nal = signature_nal(key, au, Framing::AnnexB, Codec::H264).expect("it carries a payload");
        sei::insert_before_first_slice(au, Framing::AnnexB, Codec::H264, &nal)
    }

    /// The same access unit with length prefixes instead of start codes.
    fn as_avc(au: &[u8]) -> Vec<u8> {
        sei::nal_units(au, Framing::AnnexB).iter().flat_map(|n| [&(n.len() as u32).to_be_bytes()[..], n].concat()).collect()
    }

    #[test]
    fn a_signed_picture_checks_in_either_framing_and_any_change_to_it_is_caught() {
        let (key, other) = (SigningKey::generate(), SigningKey::generate());
        let au = signed(&key, &access_unit(b"{\"record\":{\"frame\":7}}", 1));
        let check = |au: &[u8]| check(&key.signer(), au, Framing::AnnexB, Codec::H264);
        assert_eq!(check(&au), PictureCheck::Signed);
        assert_eq!(super::check(&key.signer(), &as_avc(&au), Framing::Avc(4), Codec::H264), PictureCheck::Signed, "remuxed");
        assert_eq!(super::check(&other.signer(), &au, Framing::AnnexB, Codec::H264), PictureCheck::Altered, "another signer");
        // One bit of a slice, the payload, or the signature moved onto another frame's picture.
        let mut flipped = au.clone();
        *flipped.last_mut().unwrap() ^= 0x10;
        assert_eq!(check(&flipped), PictureCheck::Altered);
        let signature = sei::find_user_data(&au, Framing::AnnexB, Codec::H264, &PICTURE_SIGNATURE_UUID).remove(0);
        let moved = sei::insert_before_first_slice(
            &access_unit(b"{\"record\":{\"frame\":8}}", 1),
            Framing::AnnexB,
            Codec::H264,
            &sei::sei_nal(Codec::H264, &PICTURE_SIGNATURE_UUID, &signature),
        );
        assert_eq!(check(&moved), PictureCheck::Altered, "the same slices under another frame's record");
        assert_eq!(check(&access_unit(b"{\"record\":{\"frame\":7}}", 1)), PictureCheck::Unsigned);
        // Zero bytes left before a start code are framing, not picture.
        let padded = [&au[..], &[0, 0]].concat();
        assert_eq!(check(&padded), PictureCheck::Signed);
    }

    #[test]
    fn a_watch_judges_pictures_from_a_header_of_its_signer_that_promises_them() {
        use crate::stream::header::{FrameRecord, StreamHeader};
        let (key, other) = (SigningKey::generate(), SigningKey::generate());
        let header = |key: &SigningKey, pictures: bool| {
            StreamHeader { pictures_signed: pictures, ..crate::stream::header::tests::sample() }.signed_with(key)
        };
        let picture = |header: Option<&StreamHeader>, frame: u64, key: &SigningKey| {
            let payload = SeiPayload { header: header.cloned(), record: Some(FrameRecord::new(frame, None, Vec::new())) };
            signed(key, &access_unit(&payload.encode(), frame as u8))
        };
        let promised = header(&key, true);
        let mut watch = PictureWatch::new(key.signer());
        let mut check = |au: &[u8]| watch.check(au, Framing::AnnexB, Codec::H264);
        assert_eq!(check(&picture(None, 0, &other)), Ok(Watched::Pass), "no header yet");
        assert_eq!(check(&picture(Some(&promised), 1, &key)), Ok(Watched::Pass));
        assert_eq!(check(&picture(None, 2, &key)), Ok(Watched::Pass));
        // A picture not as signed is held back, and fails the stream once another comes.
        assert_eq!(check(&picture(None, 3, &other)), Ok(Watched::HeldBack));
        let bare = [unit(&[0x67, 0x42, 0x00, 0x1e]), unit(&[0x41, 0x9a, 0x02, 7])].concat();
        let forged = check(&bare).unwrap_err();
        assert!(forged.starts_with("frame 3: its coded picture was altered"), "{forged}");
        assert_eq!(check(&bare), Ok(Watched::HeldBack));
        assert_eq!(check(&picture(None, 5, &key)).unwrap_err(), without_data(Some(3)));
        // Where none comes after it, it was the stream's last: said at the end, and left out.
        assert_eq!(check(&picture(None, 6, &key)), Ok(Watched::Pass));
        let mut cut = picture(None, 7, &key);
        cut.truncate(cut.len() - 2);
        assert_eq!(check(&cut), Ok(Watched::HeldBack));
        let last = watch.end().expect("the last picture held back");
        assert!(last.starts_with("frame 7: its coded picture was altered"), "{last}");
        assert_eq!(watch.end(), None);
        // Headers that promise nothing, or that another key signed, leave the pictures alone.
        for header in [header(&key, false), header(&other, true)] {
            let mut watch = PictureWatch::new(key.signer());
            assert_eq!(watch.check(&picture(Some(&header), 0, &other), Framing::AnnexB, Codec::H264), Ok(Watched::Pass));
            assert_eq!(watch.check(&bare, Framing::AnnexB, Codec::H264), Ok(Watched::Pass));
            assert_eq!(watch.end(), None);
        }
    }
}
