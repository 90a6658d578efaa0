//! The stream's content key, its envelope in the header, and the sealing of each face.

use std::io::{Read, Write};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Identity, Recipient, SealError};

/// The stream's content key: 32 random bytes, wiped when dropped.
pub struct ContentKey(Zeroizing<[u8; 32]>);

/// The content key as the stream header carries it: wrapped to the recipients, and to the
/// password where the output was sealed to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEnvelope {
    /// How many recipients must unseal together (1: any one of them).
    pub threshold: usize,
    /// age files: one to all recipients when threshold is 1, else one share per recipient; none
    /// when the faces are sealed to the password alone.
    #[serde(with = "b64_list")]
    pub wraps: Vec<Vec<u8>>,
    /// The key under the password's wrap key (XChaCha20-Poly1305: nonce, ciphertext, tag).
    /// Absent from the header of an output sealed to recipients only, which reads as before.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64_option")]
    pub password: Option<Vec<u8>>,
    /// A one-way commitment to the key, so that bad shares fail with a clear error.
    #[serde(with = "b64")]
    pub check: Vec<u8>,
}

impl ContentKey {
    pub fn generate() -> Self {
        Self(Zeroizing::new(rand::random()))
    }

    fn check(&self) -> Vec<u8> {
        let mut out = [0u8; 16];
        Hkdf::<Sha256>::new(None, self.0.as_ref())
            .expand(b"faceveil/sealed/key-check/v1", &mut out)
            .expect("16 bytes is a valid HKDF-SHA256 length");
        out.to_vec()
    }

    /// Wraps the key to `recipients` so that any `threshold` of them can unwrap it, and, with a
    /// `password` wrap key ([`crate::model::keys::SecretKey::password_wrap_key`]), to the
    /// password too. A password opens alone, so it cannot stand beside a threshold above 1.
    pub fn wrap(
        &self,
        recipients: &[Recipient],
        threshold: usize,
        password: Option<&[u8; 32]>,
    ) -> Result<KeyEnvelope, SealError> {
        if recipients.is_empty() && password.is_none() {
            return Err(SealError::NoRecipients);
        }
        if threshold == 0 || threshold > recipients.len().max(1) || threshold > 255 {
            return Err(SealError::BadThreshold { threshold, recipients: recipients.len() });
        }
        if threshold > 1 && password.is_some() {
            return Err(SealError::PasswordBesideThreshold(threshold));
        }
        let wraps = if recipients.is_empty() {
            Vec::new()
        } else if threshold == 1 {
            vec![encrypt(recipients.iter().map(|r| &r.0 as &dyn age::Recipient), self.0.as_ref())?]
        } else {
            let shares = blahaj::Sharks(threshold as u8).dealer(self.0.as_ref());
            recipients
                .iter()
                .zip(shares)
                .map(|(r, share)| {
                    let bytes = Zeroizing::new(Vec::from(&share));
                    encrypt(std::iter::once(&r.0 as &dyn age::Recipient), &bytes)
                })
                .collect::<Result<_, _>>()?
        };
        let password = password.map(|wrap_key| {
            let nonce: [u8; NONCE_LEN] = rand::random();
            let ct = password_cipher(wrap_key)
                .encrypt(XNonce::from_slice(&nonce), Payload { msg: self.0.as_ref(), aad: PASSWORD_WRAP_AAD })
                .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
            [nonce.as_slice(), &ct].concat()
        });
        Ok(KeyEnvelope { threshold, wraps, password, check: self.check() })
    }

    /// Unwraps the key with the password's wrap key. `None` when the output was not sealed to
    /// its password; [`SealError::WrongPassword`] when this is not the password it was.
    pub fn unwrap_password(envelope: &KeyEnvelope, wrap_key: &[u8; 32]) -> Option<Result<Self, SealError>> {
        let wrapped = envelope.password.as_ref()?;
        let opened = (wrapped.len() > NONCE_LEN)
            .then(|| {
                let (nonce, ct) = wrapped.split_at(NONCE_LEN);
                password_cipher(wrap_key).decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: PASSWORD_WRAP_AAD }).ok()
            })
            .flatten()
            .map(Zeroizing::new);
        let key = match opened.as_deref().map(|b| <[u8; 32]>::try_from(b.as_slice())) {
            Some(Ok(bytes)) => Self(Zeroizing::new(bytes)),
            _ => return Some(Err(SealError::WrongPassword)),
        };
        Some(if key.check() == envelope.check { Ok(key) } else { Err(SealError::WrongPassword) })
    }

    /// Unwraps the key with the identities given; `threshold` of them must be recipients.
    pub fn unwrap(envelope: &KeyEnvelope, identities: &[Identity]) -> Result<Self, SealError> {
        let ids: Vec<&dyn age::Identity> = identities.iter().map(|i| &i.0 as &dyn age::Identity).collect();
        let opened: Vec<Zeroizing<Vec<u8>>> = envelope.wraps.iter().filter_map(|w| decrypt(w, &ids)).collect();
        let key = if envelope.threshold <= 1 {
            let first = opened.first().ok_or(SealError::NotARecipient { tried: identities.len() })?;
            <[u8; 32]>::try_from(first.as_slice()).map_err(|_| SealError::BadEnvelope("key is not 32 bytes".into()))?
        } else {
            if opened.is_empty() {
                return Err(SealError::NotARecipient { tried: identities.len() });
            }
            if opened.len() < envelope.threshold {
                return Err(SealError::NotEnoughShares { opened: opened.len(), needed: envelope.threshold });
            }
            let shares: Vec<blahaj::Share> = opened
                .iter()
                .map(|b| blahaj::Share::try_from(b.as_slice()))
                .collect::<Result<_, _>>()
                .map_err(|e| SealError::BadEnvelope(e.to_string()))?;
            let secret =
                Zeroizing::new(blahaj::Sharks(envelope.threshold as u8).recover(&shares).map_err(|_| SealError::WrongKey)?);
            <[u8; 32]>::try_from(secret.as_slice()).map_err(|_| SealError::WrongKey)?
        };
        let key = Self(Zeroizing::new(key));
        if key.check() != envelope.check {
            return Err(SealError::WrongKey);
        }
        Ok(key)
    }
}

/// Binds the password's wrap to its use, so that no other ciphertext under the key stands in.
const PASSWORD_WRAP_AAD: &[u8] = b"faceveil/sealed/password-wrap/v1";

fn password_cipher(wrap_key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(wrap_key))
}

fn encrypt<'a>(recipients: impl Iterator<Item = &'a dyn age::Recipient>, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let encryptor = age::Encryptor::with_recipients(recipients).map_err(|e| SealError::BadEnvelope(e.to_string()))?;
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).map_err(|e| SealError::BadEnvelope(e.to_string()))?;
    w.write_all(plain).and_then(|_| w.finish()).map_err(|e| SealError::BadEnvelope(e.to_string()))?;
    Ok(out)
}

/// None when no identity opens this age file (or it is damaged): the caller counts what opened.
fn decrypt(ciphertext: &[u8], identities: &[&dyn age::Identity]) -> Option<Zeroizing<Vec<u8>>> {
    let decryptor = age::Decryptor::new(ciphertext).ok()?;
    let mut r = decryptor.decrypt(identities.iter().copied()).ok()?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out).ok()?;
    Some(out)
}

/// Where a face sits in a stream: everything a sealed face is bound to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FacePlace {
    /// The frame's index from the start of the stream.
    pub frame: u64,
    /// The frame's timestamp in nanoseconds, if it has one.
    pub pts: Option<u64>,
    /// The face's slot among the frame's faces.
    pub index: u32,
    pub track: u64,
    /// The sealed pixels' rectangle in the frame: x, y of the top-left corner, width, height.
    pub region: [u32; 4],
}

impl FacePlace {
    fn bytes(&self, header_digest: &[u8; 32]) -> Vec<u8> {
        let mut b = Vec::with_capacity(96);
        b.extend_from_slice(b"faceveil/sealed-face/v1");
        b.extend_from_slice(header_digest);
        b.extend_from_slice(&self.frame.to_be_bytes());
        b.extend_from_slice(&self.pts.unwrap_or(u64::MAX).to_be_bytes());
        b.extend_from_slice(&self.index.to_be_bytes());
        b.extend_from_slice(&self.track.to_be_bytes());
        for v in self.region {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }
}

const NONCE_LEN: usize = 24;

/// Seals and opens the faces of one stream, whose header hashes to `header_digest`.
pub struct FaceSealer {
    key: ContentKey,
    header_digest: [u8; 32],
}

impl FaceSealer {
    pub fn new(key: ContentKey, header_digest: [u8; 32]) -> Self {
        Self { key, header_digest }
    }

    fn cipher(&self, place: &[u8]) -> XChaCha20Poly1305 {
        let mut k = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(&self.header_digest), self.key.0.as_ref())
            .expand(place, k.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(k.as_ref()))
    }

    /// The sealed face: a random nonce, then the ciphertext and its tag.
    pub fn seal(&self, place: &FacePlace, plaintext: &[u8]) -> Vec<u8> {
        let aad = place.bytes(&self.header_digest);
        let nonce: [u8; NONCE_LEN] = rand::random();
        let ct = self
            .cipher(&aad)
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        [nonce.as_slice(), &ct].concat()
    }

    pub fn open(&self, place: &FacePlace, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let tampered = || SealError::Tampered { frame: place.frame, index: place.index };
        if sealed.len() < NONCE_LEN {
            return Err(tampered());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let aad = place.bytes(&self.header_digest);
        self.cipher(&aad)
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| tampered())
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        decode(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        STANDARD.decode(text)
    }
}

mod b64_list {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| STANDARD.encode(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?.into_iter().map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom)).collect()
    }
}

mod b64_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => super::b64::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?.map(|text| super::b64::decode(&text).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(frame: u64, index: u32) -> FacePlace {
        FacePlace { frame, pts: Some(frame * 33_333_333), index, track: 7, region: [100, 40, 180, 180] }
    }

    #[test]
    fn any_one_recipient_unwraps_and_a_stranger_is_told_so() {
        let (a, b, stranger) = (Identity::generate(), Identity::generate(), Identity::generate());
        let key = ContentKey::generate();
        let env = key.wrap(&[a.recipient(), b.recipient()], 1, None).unwrap();
        for who in [&a, &b] {
            let got = ContentKey::unwrap(&env, std::slice::from_ref(who)).unwrap();
            assert_eq!(*got.0, *key.0);
        }
        let err = ContentKey::unwrap(&env, &[stranger]).err().unwrap();
        assert!(matches!(err, SealError::NotARecipient { tried: 1 }), "{err}");
    }

    #[test]
    fn a_threshold_needs_that_many_identities_together() {
        let ids: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
        let recipients: Vec<Recipient> = ids.iter().map(Identity::recipient).collect();
        let key = ContentKey::generate();
        let env = key.wrap(&recipients, 2, None).unwrap();
        assert_eq!(env.wraps.len(), 3);
        let err = ContentKey::unwrap(&env, &ids[..1]).err().unwrap();
        assert!(matches!(err, SealError::NotEnoughShares { opened: 1, needed: 2 }), "{err}");
        let got = ContentKey::unwrap(&env, &ids[1..]).unwrap();
        assert_eq!(*got.0, *key.0);
        let err = ContentKey::unwrap(&env, &[Identity::generate(), Identity::generate()]).err().unwrap();
        assert!(matches!(err, SealError::NotARecipient { tried: 2 }), "{err}");
        assert!(matches!(key.wrap(&recipients, 4, None), Err(SealError::BadThreshold { .. })));
    }

    #[test]
    fn an_envelope_survives_the_header_and_a_swapped_share_is_caught() {
        let ids: Vec<Identity> = (0..2).map(|_| Identity::generate()).collect();
        let recipients: Vec<Recipient> = ids.iter().map(Identity::recipient).collect();
        let env = ContentKey::generate().wrap(&recipients, 2, None).unwrap();
        let text = serde_json::to_string(&env).unwrap();
        let back: KeyEnvelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, env);
        // A share from another stream's envelope, wrapped to the same person, combines to a
        // different key: the commitment tells.
        let other = ContentKey::generate().wrap(&recipients, 2, None).unwrap();
        let spliced = KeyEnvelope { wraps: vec![env.wraps[0].clone(), other.wraps[1].clone()], ..env };
        assert!(matches!(ContentKey::unwrap(&spliced, &ids), Err(SealError::WrongKey)));
    }

    #[test]
    fn the_password_alone_or_beside_recipients_unwraps_and_a_wrong_one_is_told_so() {
        let (right, wrong) = ([5u8; 32], [6u8; 32]);
        let key = ContentKey::generate();
        let alone = key.wrap(&[], 1, Some(&right)).unwrap();
        assert!(alone.wraps.is_empty());
        let back: KeyEnvelope = serde_json::from_str(&serde_json::to_string(&alone).unwrap()).unwrap();
        assert_eq!(back, alone);
        assert_eq!(*ContentKey::unwrap_password(&back, &right).unwrap().unwrap().0, *key.0);
        assert!(matches!(ContentKey::unwrap_password(&back, &wrong), Some(Err(SealError::WrongPassword))));
        // Beside a recipient, either opens; an envelope without the password's wrap says so, and
        // its JSON carries no trace of the field.
        let me = Identity::generate();
        let both = key.wrap(&[me.recipient()], 1, Some(&right)).unwrap();
        assert_eq!(*ContentKey::unwrap(&both, &[me]).unwrap().0, *key.0);
        assert_eq!(*ContentKey::unwrap_password(&both, &right).unwrap().unwrap().0, *key.0);
        let recipients_only = key.wrap(&[Identity::generate().recipient()], 1, None).unwrap();
        assert!(ContentKey::unwrap_password(&recipients_only, &right).is_none());
        assert!(!serde_json::to_string(&recipients_only).unwrap().contains("password"));
        // A password opens alone, so it cannot stand in a two-person rule; nothing to seal to fails.
        let two = [Identity::generate().recipient(), Identity::generate().recipient()];
        assert!(matches!(key.wrap(&two, 2, Some(&right)), Err(SealError::PasswordBesideThreshold(2))));
        assert!(matches!(key.wrap(&[], 1, None), Err(SealError::NoRecipients)));
    }

    #[test]
    fn a_sealed_face_opens_only_in_its_own_place() {
        let key = ContentKey::generate();
        let bytes = *key.0;
        let sealer = FaceSealer::new(key, [3; 32]);
        let face = b"original face pixels".to_vec();
        let sealed = sealer.seal(&place(10, 0), &face);
        assert_eq!(*sealer.open(&place(10, 0), &sealed).unwrap(), face);
        let moved = [
            place(11, 0),
            place(10, 1),
            FacePlace { pts: Some(1), ..place(10, 0) },
            FacePlace { track: 8, ..place(10, 0) },
            FacePlace { region: [101, 40, 180, 180], ..place(10, 0) },
        ];
        for p in moved {
            let err = sealer.open(&p, &sealed).err().unwrap();
            assert!(matches!(err, SealError::Tampered { frame, .. } if frame == p.frame), "{p:?}");
        }
        let other_stream = FaceSealer::new(ContentKey(Zeroizing::new(bytes)), [4; 32]);
        assert!(other_stream.open(&place(10, 0), &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&place(10, 0), &altered).is_err());
        assert!(sealer.open(&place(10, 0), &sealed[..10]).is_err());
        // Same face sealed twice: different bytes (fresh nonce), both open.
        let again = sealer.seal(&place(10, 0), &face);
        assert_ne!(again, sealed);
        assert_eq!(*sealer.open(&place(10, 0), &again).unwrap(), face);
    }
}
