//! Who made a stream's sealed faces. Recipients' public keys are public and age does not
//! authenticate its sender, so anyone with a recording could draw a new content key, wrap it to
//! the same recipients and seal other faces under it. On request the anonymizing machine holds an
//! Ed25519 signing key and signs the stream header, which holds the wrapped content key; every
//! sealed face is bound to that header's digest, so a restore that names the signer
//! ([`Signer`]) refuses a rebuilt header, and with it every face not sealed under the signed
//! content key. ed25519-dalek does the cryptography.
//!
//! A key that may have been stolen is revoked by a statement it signed itself ([`Revocation`]):
//! nobody else can revoke it, and whoever holds it (its owner, or a thief) can. Nothing here
//! tells when a signature was made, so a revocation voids every signature of its key, those made
//! before the theft too.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::SecretString;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{SealError, keyfile};

/// How a signer's public key is written: this, then its 32 bytes in URL-safe base64.
const SIGNER_PREFIX: &str = "faceveil-signer-";
/// The line of a signing key file that holds the secret: this, then its 32 bytes in base64.
const KEY_PREFIX: &str = "FACEVEIL-SIGNING-KEY-";
/// What is signed comes after one of these, so that a signature made here means nothing
/// elsewhere, and a header's signature nothing as a record's.
const CONTEXT: &[u8] = b"faceveil stream header signature 1\n";
const RECORD_CONTEXT: &[u8] = b"faceveil frame record signature 1\n";
const PICTURE_CONTEXT: &[u8] = b"faceveil coded picture signature 1\n";
const END_CONTEXT: &[u8] = b"faceveil stream end signature 1\n";
const REVOCATION_CONTEXT: &[u8] = b"faceveil signing key revocation 1\n";
/// The line of a revocation file that holds it: this, then base64 of the revoked public key
/// (32 bytes) and of its signature of the revocation (64 bytes).
const REVOCATION_PREFIX: &str = "FACEVEIL-REVOCATION-";

/// The public half of a signing key: what a restore names to require that signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer(ed25519_dalek::VerifyingKey);

impl FromStr for Signer {
    type Err = SealError;

    fn from_str(s: &str) -> Result<Self, SealError> {
        let bad = || SealError::BadSigner(s.trim().to_string());
        let bytes = s.trim().strip_prefix(SIGNER_PREFIX).and_then(|b| URL_SAFE_NO_PAD.decode(b).ok()).ok_or_else(bad)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map(Self).map_err(|_| bad())
    }
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SIGNER_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0.as_bytes()))
    }
}

/// A private Ed25519 key that signs stream headers and frame records; wiped when dropped.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    pub fn generate() -> Self {
        let secret: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        Self(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    pub fn signer(&self) -> Signer {
        Signer(self.0.verifying_key())
    }

    /// The key file's text, encrypted to `passphrase` where one is given (see `keyfile`).
    pub fn to_file_text(&self, passphrase: Option<SecretString>) -> Result<Zeroizing<String>, SealError> {
        let secret = Zeroizing::new(STANDARD.encode(self.0.as_bytes()));
        let plain = Zeroizing::new(format!(
            "# faceveil signing key (Ed25519); keep it secret\n# signer: {}\n{KEY_PREFIX}{}\n",
            self.signer(),
            secret.as_str()
        ));
        keyfile::protect(plain, passphrase, SealError::BadSigningKey)
    }

    /// Reads a signing key file; `passphrase` is asked only for a protected one.
    pub fn from_file(path: &Path, passphrase: impl FnOnce() -> Option<SecretString>) -> anyhow::Result<Self> {
        keyfile::read(path, "signing key", |text| Self::from_file_text(text, passphrase))
    }

    /// Reads a signing key file's text; `passphrase` is asked only for a protected file.
    pub fn from_file_text(text: &str, passphrase: impl FnOnce() -> Option<SecretString>) -> Result<Self, SealError> {
        let plain = keyfile::plain_text(text, passphrase, SealError::BadSigningKey)?;
        let line = plain
            .lines()
            .find_map(|l| l.trim().strip_prefix(KEY_PREFIX))
            .ok_or_else(|| SealError::BadSigningKey(format!("no {KEY_PREFIX} line (is it an identity?)")))?;
        let bytes = Zeroizing::new(STANDARD.decode(line).map_err(|_| SealError::BadSigningKey("the key is not base64".into()))?);
        let secret: &[u8; 32] =
            bytes.as_slice().try_into().map_err(|_| SealError::BadSigningKey("the key is not 32 bytes".into()))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(secret)))
    }

    /// Signs `message` (a header's encoding without its signature).
    pub(crate) fn sign(&self, message: &[u8]) -> HeaderSignature {
        let signature = self.0.sign(&[CONTEXT, message].concat());
        HeaderSignature { signer: self.signer().to_string(), signature: STANDARD.encode(signature.to_bytes()) }
    }

    /// Signs a frame's record (its encoding without signature and look) in the stream whose
    /// signed header has digest `header`: base64 of the signature.
    pub(crate) fn sign_record(&self, header: &[u8; 32], record: &[u8]) -> String {
        STANDARD.encode(self.0.sign(&[RECORD_CONTEXT, header, record].concat()).to_bytes())
    }

    /// Signs a stream's end (its encoding without the signature) in the stream whose signed
    /// header has digest `header`: base64 of the signature.
    pub(crate) fn sign_end(&self, header: &[u8; 32], end: &[u8]) -> String {
        STANDARD.encode(self.0.sign(&[END_CONTEXT, header, end].concat()).to_bytes())
    }

    /// Signs a coded picture by its digest (`stream::pictures`).
    pub(crate) fn sign_picture(&self, digest: &[u8; 32]) -> [u8; 64] {
        self.0.sign(&[PICTURE_CONTEXT, digest].concat()).to_bytes()
    }

    /// The text of a file that revokes this key ([`Revocation`]). It holds no secret.
    pub fn revocation_text(&self) -> String {
        let public = self.0.verifying_key().to_bytes();
        let signature = self.0.sign(&[REVOCATION_CONTEXT, public.as_slice()].concat()).to_bytes();
        format!(
            "# faceveil: revocation of the signing key of {}\n# Give it to `faceveil verify --revoked` and `faceveil restore --revoked`: they then refuse everything that key signed.\n{REVOCATION_PREFIX}{}\n",
            self.signer(),
            STANDARD.encode([public.as_slice(), signature.as_slice()].concat())
        )
    }
}

/// A signing key's statement, signed by itself, that it is no longer to be trusted: what its
/// owner publishes once the key may have been copied. It names the signer it revokes, and only
/// that key could have made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation(Signer);

impl Revocation {
    /// The signer revoked.
    pub fn signer(&self) -> &Signer {
        &self.0
    }

    /// Reads a revocation file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        keyfile::read(path, "revocation", Self::from_file_text)
    }

    /// Reads a revocation file's text: an error unless its signature is the key's own.
    pub fn from_file_text(text: &str) -> Result<Self, SealError> {
        let bad = |why: &str| SealError::BadRevocation(why.to_string());
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(REVOCATION_PREFIX))
            .ok_or_else(|| bad(&format!("no {REVOCATION_PREFIX} line (`faceveil keygen --revoke` writes one)")))?;
        let bytes = STANDARD.decode(line).map_err(|_| bad("the revocation is not base64"))?;
        let (public, signature) = bytes.split_at_checked(32).ok_or_else(|| bad("the revocation is too short"))?;
        let signature: [u8; 64] = signature.try_into().map_err(|_| bad("the revocation is not 96 bytes"))?;
        let public: [u8; 32] = public.try_into().expect("split at 32");
        let signer = ed25519_dalek::VerifyingKey::from_bytes(&public).map(Signer).map_err(|_| bad("no public key in it"))?;
        if !signer.signed(&[REVOCATION_CONTEXT, public.as_slice()], &signature) {
            return Err(bad("its signature is not the revoked key's own: it was altered, or made by another key"));
        }
        Ok(Self(signer))
    }
}

impl Signer {
    /// Whether `signature` (base64) is this signer's of the record `record` in the stream whose
    /// header has digest `header`.
    pub(crate) fn signed_record(&self, header: &[u8; 32], record: &[u8], signature: &str) -> bool {
        base64_signature(signature).is_some_and(|bytes| self.signed(&[RECORD_CONTEXT, header, record], &bytes))
    }

    /// Whether `signature` (base64) is this signer's of the stream end `end` in the stream whose
    /// header has digest `header`.
    pub(crate) fn signed_end(&self, header: &[u8; 32], end: &[u8], signature: &str) -> bool {
        base64_signature(signature).is_some_and(|bytes| self.signed(&[END_CONTEXT, header, end], &bytes))
    }

    /// Whether `signature` is this signer's of the coded picture with `digest`.
    pub(crate) fn signed_picture(&self, digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        self.signed(&[PICTURE_CONTEXT, digest], signature)
    }

    /// Whether `signature` is this signer's of `parts` (a context string first) one after another.
    fn signed(&self, parts: &[&[u8]], signature: &[u8; 64]) -> bool {
        self.0.verify(&parts.concat(), &ed25519_dalek::Signature::from_bytes(signature)).is_ok()
    }
}

/// A signature as it is written, in base64; `None` where it is not 64 bytes of base64.
fn base64_signature(text: &str) -> Option<[u8; 64]> {
    STANDARD.decode(text).ok().and_then(|b| b.try_into().ok())
}

/// A header's signature as it travels in the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderSignature {
    /// The signer's public key ([`Signer`]'s text).
    pub signer: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

impl HeaderSignature {
    /// The signer, if this is its signature of `message`.
    pub(crate) fn verify(&self, message: &[u8]) -> Result<Signer, SealError> {
        let signer: Signer = self.signer.parse()?;
        let bytes = base64_signature(&self.signature).ok_or(SealError::BadSignature)?;
        if !signer.signed(&[CONTEXT, message], &bytes) {
            return Err(SealError::BadSignature);
        }
        Ok(signer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_files_round_trip_with_and_without_a_passphrase() {
        let key = SigningKey::generate();
        let plain = key.to_file_text(None).unwrap();
        let back = SigningKey::from_file_text(&plain, || panic!("no passphrase wanted")).unwrap();
        assert_eq!(back.signer(), key.signer());
        let pass = || Some(SecretString::from("correct horse".to_string()));
        let locked = key.to_file_text(pass()).unwrap();
        assert!(!locked.contains(KEY_PREFIX));
        assert_eq!(SigningKey::from_file_text(&locked, pass).unwrap().signer(), key.signer());
        let wrong = SigningKey::from_file_text(&locked, || Some(SecretString::from("nope".to_string())));
        assert!(matches!(wrong, Err(SealError::WrongPassphrase)));
        // An identity is not a signing key, and says so.
        let identity = super::super::Identity::generate().to_file_text(None).unwrap();
        assert!(matches!(SigningKey::from_file_text(&identity, || None), Err(SealError::BadSigningKey(_))));
    }

    #[test]
    fn a_signature_verifies_for_its_message_only_and_names_its_signer() {
        let (key, other) = (SigningKey::generate(), SigningKey::generate());
        let signature = key.sign(b"header");
        assert_eq!(signature.verify(b"header").unwrap(), key.signer());
        assert!(matches!(signature.verify(b"headeR"), Err(SealError::BadSignature)));
        // Another key's name on this signature does not make it that key's.
        let claimed = HeaderSignature { signer: other.signer().to_string(), ..signature.clone() };
        assert!(matches!(claimed.verify(b"header"), Err(SealError::BadSignature)));
        // A header's signature is not a record's, nor the other way round.
        let as_record = key.sign_record(&[0; 32], b"header");
        assert!(key.signer().signed_record(&[0; 32], b"header", &as_record));
        assert!(!key.signer().signed_record(&[1; 32], b"header", &as_record), "another stream's record");
        assert!(!key.signer().signed_record(&[0; 32], b"header", &signature.signature));
        assert!(!other.signer().signed_record(&[0; 32], b"header", &as_record));
        let text = key.signer().to_string();
        assert_eq!(text.parse::<Signer>().unwrap(), key.signer());
        assert!(matches!("faceveil-signer-abc".parse::<Signer>(), Err(SealError::BadSigner(_))));
        assert!(matches!("age1qqqq".parse::<Signer>(), Err(SealError::BadSigner(_))));
    }

    #[test]
    fn a_revocation_names_its_key_and_only_that_key_can_make_it() {
        let (key, other) = (SigningKey::generate(), SigningKey::generate());
        let text = key.revocation_text();
        assert_eq!(Revocation::from_file_text(&text).unwrap().signer(), &key.signer());
        // Another key's public half put in the place of this one's: its signature is not that key's.
        let line = text.lines().find_map(|l| l.strip_prefix(REVOCATION_PREFIX)).unwrap();
        let mut bytes = STANDARD.decode(line).unwrap();
        bytes[..32].copy_from_slice(other.signer().0.as_bytes());
        let forged = format!("{REVOCATION_PREFIX}{}\n", STANDARD.encode(&bytes));
        assert!(matches!(Revocation::from_file_text(&forged), Err(SealError::BadRevocation(_))));
        // A header's signature of the same bytes is not a revocation.
        let public = key.signer().0.to_bytes();
        let header_signature = STANDARD.decode(key.sign(&public).signature).unwrap();
        let as_header = format!("{REVOCATION_PREFIX}{}\n", STANDARD.encode([public.as_slice(), &header_signature].concat()));
        assert!(matches!(Revocation::from_file_text(&as_header), Err(SealError::BadRevocation(_))));
        assert!(matches!(Revocation::from_file_text("# nothing\n"), Err(SealError::BadRevocation(_))));
        // It holds no secret: the key cannot be read back from it.
        assert!(SigningKey::from_file_text(&text, || None).is_err());
    }
}
