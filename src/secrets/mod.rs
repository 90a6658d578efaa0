//! Secrets that guard the original faces: age identities and recipients, and the sealing of each
//! face to them. The password path (a key vector for the model) is [`crate::model::keys`].
//!
//! Sealed restore: one fresh content key per stream, wrapped with age (X25519) to every recipient,
//! or split by Shamir's scheme so that any `threshold` of them must unseal together, and, on
//! request, with XChaCha20-Poly1305 under a key derived from the password's Argon2id secret. Each face of
//! each frame is sealed with XChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the content
//! key, the header and the face's place in the stream; the associated data binds the same place,
//! so a face moved to another frame, slot or stream, reordered or altered fails to open. No
//! primitive is written here: age, argon2, chacha20poly1305, hkdf, blahaj and ed25519-dalek do
//! the cryptography.
//!
//! Who made the stream: on request the header is signed with an Ed25519 key ([`SigningKey`]), and
//! a restore that names its [`Signer`] refuses a header that key did not sign.
//!
//! What is sealed is a face's own pixels: by default each track's faces coded as a small video
//! (the codec comes from the front end), losslessly as PNG on request ([`SealedLayout`]).

mod canvas;
mod faces;
mod facevideo;
mod identity;
mod keyfile;
mod seal;
mod signing;

pub use canvas::Canvas;
pub use faces::{FaceVault, OpenedFace, SealedLayout};
pub use facevideo::{FaceCodec, FaceDecoder, FaceEncoder};
pub use identity::{Identity, Recipient};
pub use seal::{ContentKey, FacePlace, FaceSealer, KeyEnvelope};
pub use signing::{HeaderSignature, Revocation, Signer, SigningKey};

/// The first line of a secret file (a password or a passphrase), wiped when dropped: secrets
/// come from files, the environment or a prompt, never from a command line, where every user of
/// the machine can read them (`ps`) and the shell keeps them.
pub fn first_line(path: &std::path::Path, what: &str) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use anyhow::Context;
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))?);
    Ok(zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().to_string()))
}

/// What can go wrong when sealing or unsealing; each case is one a caller reports differently.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a recipient of this stream: none of the {tried} given identities opens its key")]
    NotARecipient { tried: usize },
    #[error("{opened} of the {needed} identities this stream requires together were given")]
    NotEnoughShares { opened: usize, needed: usize },
    #[error("the unsealed shares do not make this stream's key (a share was altered)")]
    WrongKey,
    #[error("frame {frame}, face {index}: the sealed face does not open (moved, reordered, altered, or from another stream)")]
    Tampered { frame: u64, index: u32 },
    #[error(
        "frame {frame}, face {index}: the sealed face was made from {sealed} frames and this one is {here}: restore in the stream's own pixel format"
    )]
    OtherFormat { frame: u64, index: u32, sealed: String, here: String },
    #[error("frame {frame}, face {index}: the sealed face opened but its contents are not understood ({what})")]
    Layout { frame: u64, index: u32, what: String },
    #[error("the face video codec failed: {0}")]
    Codec(String),
    #[error("a threshold of {threshold} cannot be met by {recipients} recipients")]
    BadThreshold { threshold: usize, recipients: usize },
    #[error("no recipients given")]
    NoRecipients,
    #[error("the password does not open this output's sealed faces: it is not the password they were sealed with")]
    WrongPassword,
    #[error(
        "a password opens sealed faces alone, so it cannot be sealed to beside a threshold of {0} recipients: leave out the password or the threshold"
    )]
    PasswordBesideThreshold(usize),
    #[error("not an age recipient (age1...): {0}")]
    BadRecipient(String),
    #[error("identity file: {0}")]
    BadIdentity(String),
    #[error("the key file is passphrase-protected, and no passphrase was given or the one given does not open it")]
    WrongPassphrase,
    #[error("sealed key envelope: {0}")]
    BadEnvelope(String),
    #[error("signing key file: {0}")]
    BadSigningKey(String),
    #[error("not a faceveil signer (faceveil-signer-...): {0}")]
    BadSigner(String),
    #[error("the header's signature does not verify: the header was altered after it was signed")]
    BadSignature,
    #[error(
        "frame {frame}: its record does not carry the signature of the output's signer: it was altered, or made by someone else"
    )]
    UnsignedRecord { frame: u64 },
    #[error("this output is not signed, and its faces are required to be signed by {required}")]
    NotSigned { required: String },
    #[error("this output is signed by {signed_by}, not by the required {required}: that signer did not make it")]
    OtherSigner { signed_by: String, required: String },
    #[error("revocation file: {0}")]
    BadRevocation(String),
    #[error(
        "this output is signed by {0}, whose key was revoked: whoever holds that key could have made it, so its signatures vouch for nothing"
    )]
    RevokedSigner(String),
}
