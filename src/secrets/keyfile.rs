//! Private key files (identities and signing keys): plain text, or, with a passphrase, that text
//! encrypted to it (age's scrypt recipient, ASCII-armored), so that a stolen file alone is useless.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use super::SealError;

const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

/// `plain` as a key file's text: as it is, or encrypted to `passphrase`. `bad` names what failed.
pub(super) fn protect(
    plain: Zeroizing<String>,
    passphrase: Option<SecretString>,
    bad: fn(String) -> SealError,
) -> Result<Zeroizing<String>, SealError> {
    let Some(passphrase) = passphrase else { return Ok(plain) };
    let encryptor = age::Encryptor::with_user_passphrase(passphrase);
    let mut out = Vec::new();
    let armor =
        age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor).map_err(|e| bad(e.to_string()))?;
    let mut w = encryptor.wrap_output(armor).map_err(|e| bad(e.to_string()))?;
    w.write_all(plain.as_bytes()).map_err(|e| bad(e.to_string()))?;
    w.finish().and_then(|armor| armor.finish()).map_err(|e| bad(e.to_string()))?;
    String::from_utf8(out).map(Zeroizing::new).map_err(|e| bad(e.to_string()))
}

/// Whether a key file's text needs a passphrase to be read.
pub(super) fn needs_passphrase(text: &str) -> bool {
    text.trim_start().starts_with(ARMOR_BEGIN)
}

/// A key file's plain text; `passphrase` is asked only for a protected file.
pub(super) fn plain_text(
    text: &str,
    passphrase: impl FnOnce() -> Option<SecretString>,
    bad: fn(String) -> SealError,
) -> Result<Zeroizing<String>, SealError> {
    if !needs_passphrase(text) {
        return Ok(Zeroizing::new(text.to_string()));
    }
    let passphrase = passphrase().ok_or(SealError::WrongPassphrase)?;
    let reader = age::armor::ArmoredReader::new(text.as_bytes());
    let decryptor = age::Decryptor::new(reader).map_err(|e| bad(e.to_string()))?;
    let identity = age::scrypt::Identity::new(passphrase);
    let mut r = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).map_err(|_| SealError::WrongPassphrase)?;
    let mut buf = Zeroizing::new(String::new());
    r.read_to_string(&mut buf).map_err(|_| SealError::WrongPassphrase)?;
    Ok(buf)
}

/// The key file at `path` read and opened by `open`; errors name the file as `what`.
pub(super) fn read<T>(path: &Path, what: &str, open: impl FnOnce(&str) -> Result<T, SealError>) -> anyhow::Result<T> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))?);
    open(&text).with_context(|| format!("{what} {}", path.display()))
}
