//! Who faces are sealed to (recipients), who signs them (a signing key), who opens them
//! (identities) and whose signatures no longer count (revocations), from the command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use faceveil::secrets::{Identity, Recipient, Revocation, Signer, SigningKey};
use zeroize::Zeroizing;

/// `--recipient` values and the lines of `--recipients-file`.
pub fn recipients(given: &[String], file: Option<&PathBuf>) -> Result<Vec<Recipient>> {
    let mut out: Vec<Recipient> = given.iter().map(|r| r.parse()).collect::<Result<_, _>>()?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read recipients file {}", path.display()))?;
        out.extend(Recipient::parse_list(&text).with_context(|| format!("recipients file {}", path.display()))?);
    }
    Ok(out)
}

/// The recipients as the faceveil element's `recipients` property takes them, comma-separated;
/// none for none.
pub fn element_recipients(recipients: &[Recipient]) -> Option<String> {
    (!recipients.is_empty()).then(|| recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
}

/// The identity files of `--identity`; a passphrase-protected one asks for its passphrase
/// ($FACEVEIL_IDENTITY_PASSPHRASE, else a prompt), never argv.
pub fn identities(paths: &[PathBuf]) -> Result<Vec<Identity>> {
    paths
        .iter()
        .map(|path| Identity::from_file(path, || passphrase(path, IDENTITY_PASSPHRASE).map(|p| p.as_str().to_owned().into())))
        .collect()
}

/// The signing key of `--sign-with`, read here, once, so that a wrong passphrase or file is said
/// before any input is read; a protected one asks for its passphrase
/// ($FACEVEIL_SIGNING_PASSPHRASE, else a prompt). The faceveil element is given the key itself.
pub fn signing_key(path: &Path) -> Result<SigningKey> {
    SigningKey::from_file(path, || passphrase(path, SIGNING_PASSPHRASE).map(|p| p.as_str().to_owned().into()))
}

/// For faceunveil, which reads (and checks) the files itself when it starts, before any frame:
/// their paths as its `identity` value, and the passphrase protected ones need, asked once.
pub fn identity_files(paths: &[PathBuf]) -> Result<(String, Option<Zeroizing<String>>)> {
    let joined = element_paths(paths, "identity")?;
    let mut asked: Option<Zeroizing<String>> = None;
    for path in paths {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read identity {}", path.display()))?);
        if Identity::needs_passphrase(&text) && asked.is_none() {
            asked = passphrase(path, IDENTITY_PASSPHRASE);
        }
    }
    Ok((joined, asked))
}

/// The signers the revocation files of `--revoked` revoke, each file read and its signature
/// checked before any input is read.
pub fn revoked(paths: &[PathBuf]) -> Result<Vec<Signer>> {
    paths.iter().map(|path| Revocation::from_file(path).map(|r| r.signer().clone())).collect()
}

/// For faceunveil, which reads the revocation files itself when it starts: their paths as its
/// `revoked` value.
pub fn element_revoked(paths: &[PathBuf]) -> Result<Option<String>> {
    (!paths.is_empty()).then(|| element_paths(paths, "revocation")).transpose()
}

/// Paths as an element's property takes them, comma-separated; a path with a comma of its own
/// (`what` names its kind) cannot be given so.
fn element_paths(paths: &[PathBuf], what: &str) -> Result<String> {
    for path in paths {
        ensure!(!path.to_string_lossy().contains(','), "{what} path {} contains a comma", path.display());
    }
    Ok(paths.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(","))
}

const IDENTITY_PASSPHRASE: &str = "FACEVEIL_IDENTITY_PASSPHRASE";
const SIGNING_PASSPHRASE: &str = "FACEVEIL_SIGNING_PASSPHRASE";

/// The key file's passphrase from the variable `env`, else a prompt where there is a terminal.
fn passphrase(path: &Path, env: &str) -> Option<Zeroizing<String>> {
    std::env::var(env)
        .ok()
        .or_else(|| {
            std::io::stdin()
                .is_terminal()
                .then(|| rpassword::prompt_password(format!("passphrase for {}: ", path.display())).ok())
                .flatten()
        })
        .map(Zeroizing::new)
}
