//! Who faces are sealed to (recipients) and who opens them (identities), from the command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use faceveil::secrets::{Identity, Recipient};
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
    paths.iter().map(|path| Identity::from_file(path, || passphrase(path).map(|p| p.as_str().to_owned().into()))).collect()
}

/// For faceunveil, which reads (and checks) the files itself when it starts, before any frame:
/// their paths as its `identity` value, and the passphrase protected ones need, asked once.
pub fn identity_files(paths: &[PathBuf]) -> Result<(String, Option<Zeroizing<String>>)> {
    let mut asked: Option<Zeroizing<String>> = None;
    for path in paths {
        ensure!(!path.to_string_lossy().contains(','), "identity path {} contains a comma", path.display());
        let text =
            Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read identity {}", path.display()))?);
        if Identity::needs_passphrase(&text) && asked.is_none() {
            asked = passphrase(path);
        }
    }
    let joined = paths.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(",");
    Ok((joined, asked))
}

/// $FACEVEIL_IDENTITY_PASSPHRASE, else a prompt where there is a terminal.
fn passphrase(path: &Path) -> Option<Zeroizing<String>> {
    std::env::var("FACEVEIL_IDENTITY_PASSPHRASE")
        .ok()
        .or_else(|| {
            std::io::stdin()
                .is_terminal()
                .then(|| rpassword::prompt_password(format!("passphrase for {}: ", path.display())).ok())
                .flatten()
        })
        .map(Zeroizing::new)
}
