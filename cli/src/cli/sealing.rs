//! Who faces are sealed to (recipients) and who opens them (identities), from the command line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use faceveil::secrets::{Identity, Recipient};

/// `--recipient` values and the lines of `--recipients-file`.
pub fn recipients(given: &[String], file: Option<&PathBuf>) -> Result<Vec<Recipient>> {
    let mut out: Vec<Recipient> = given.iter().map(|r| r.parse()).collect::<Result<_, _>>()?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read recipients file {}", path.display()))?;
        out.extend(Recipient::parse_list(&text).with_context(|| format!("recipients file {}", path.display()))?);
    }
    Ok(out)
}

/// The identity files of `--identity`; a passphrase-protected one asks for its passphrase
/// ($FACEVEIL_IDENTITY_PASSPHRASE, else a prompt), never argv.
pub fn identities(paths: &[PathBuf]) -> Result<Vec<Identity>> {
    paths
        .iter()
        .map(|path| {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path).with_context(|| format!("cannot read identity {}", path.display()))?,
            );
            Identity::from_file_text(&text, || {
                std::env::var("FACEVEIL_IDENTITY_PASSPHRASE")
                    .ok()
                    .or_else(|| {
                        std::io::stdin()
                            .is_terminal()
                            .then(|| rpassword::prompt_password(format!("passphrase for {}: ", path.display())).ok())
                            .flatten()
                    })
                    .map(Into::into)
            })
            .with_context(|| format!("identity {}", path.display()))
        })
        .collect()
}
