//! The records of a signed stream, checked as a restore or `faceveil verify` meets them: each
//! must carry the signature of the header's signer, and their numbers should follow each other
//! (frames cut out, lost, repeated or reordered show as numbers that do not).

use crate::secrets::{SealError, Signer};
use crate::stream::end::{EndCheck, StreamEnd};
use crate::stream::header::{FrameRecord, StreamHeader};

pub struct SignedRecords {
    signer: Signer,
    /// The digest of the signed header, which each record's signature is bound to.
    header: [u8; 32],
    /// The number of the last record checked.
    last: Option<u64>,
}

impl SignedRecords {
    /// The check of a stream with `header`: `None` where the header is unsigned and no signer is
    /// `required`; an error where the header is altered, unsigned or signed by another key than
    /// the one required, or by a `revoked` one.
    pub fn of(header: &StreamHeader, required: Option<&Signer>, revoked: &[Signer]) -> Result<Option<Self>, SealError> {
        Ok(header.check_signer(required, revoked)?.map(|signer| Self { signer, header: header.digest(), last: None }))
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// An error where `record` lacks the signer's signature.
    pub fn verify(&self, record: &FrameRecord) -> Result<(), SealError> {
        if !record.is_signed_by(&self.signer, &self.header) {
            return Err(SealError::UnsignedRecord { frame: record.frame });
        }
        Ok(())
    }

    /// How `end` stands against the records checked so far: whether the last of them is the
    /// last frame the stream's signed end names.
    pub fn end_check(&self, end: &StreamEnd) -> EndCheck {
        end.check(&self.signer, &self.header, self.last)
    }

    /// Checks the next record met in the frames' order: an error where it lacks the signer's
    /// signature; otherwise the numbers of the record before it and of this one, where they do
    /// not follow each other.
    pub fn check(&mut self, record: &FrameRecord) -> Result<Option<(u64, u64)>, SealError> {
        self.verify(record)?;
        let skipped = self.last.filter(|last| record.frame != last + 1).map(|last| (last, record.frame));
        self.last = Some(record.frame);
        Ok(skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SigningKey;
    use crate::stream::header::tests::sample;

    #[test]
    fn records_must_be_signed_and_their_numbers_are_followed() {
        let key = SigningKey::generate();
        let header = sample().signed_with(&key);
        let record = |n| FrameRecord::new(n, Some(n * 40), Vec::new()).signed_with(&key, &header.digest());
        let mut check = SignedRecords::of(&header, Some(&key.signer()), &[]).unwrap().unwrap();
        assert_eq!(check.check(&record(5)).unwrap(), None, "a restore may join anywhere");
        assert_eq!(check.check(&record(6)).unwrap(), None);
        assert_eq!(check.check(&record(9)).unwrap(), Some((6, 9)), "7 and 8 are missing");
        assert_eq!(check.check(&record(4)).unwrap(), Some((9, 4)), "out of order");
        let unsigned = FrameRecord::new(10, None, Vec::new());
        assert!(matches!(check.check(&unsigned), Err(SealError::UnsignedRecord { frame: 10 })));
        assert!(SignedRecords::of(&sample(), None, &[]).unwrap().is_none(), "an unsigned stream has nothing to check");
        assert!(SignedRecords::of(&sample(), Some(&key.signer()), &[]).is_err(), "unless a signer is required");
        // A revoked key's stream is refused, required or not; another key's revocation is not its.
        let revoked = [key.signer()];
        for required in [None, Some(&key.signer())] {
            assert!(matches!(SignedRecords::of(&header, required, &revoked), Err(SealError::RevokedSigner(_))));
        }
        assert!(SignedRecords::of(&header, None, &[SigningKey::generate().signer()]).unwrap().is_some());
    }
}
