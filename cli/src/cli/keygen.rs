//! `faceveil keygen`: a new identity for sealed restores and the recipient line to share, or,
//! with `--signing`, a key that signs sealed outputs and the signer line to share, or, with
//! `--revoke KEY`, the revocation of a signing key.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use faceveil::secrets::{Identity, SigningKey};
use zeroize::Zeroizing;

use crate::cli::args::KeygenArgs;

pub fn run(args: &KeygenArgs) -> Result<()> {
    if let Some(key) = &args.revoke {
        return revoke(key, args);
    }
    let passphrase = passphrase(args)?.map(|p| p.to_string().into());
    let (text, public, kind, shared) = if args.signing {
        let key = SigningKey::generate();
        (key.to_file_text(passphrase)?, key.signer().to_string(), "signing key", "signer")
    } else {
        let identity = Identity::generate();
        (identity.to_file_text(passphrase)?, identity.recipient().to_string(), "identity", "recipient")
    };
    write_private(args, &text)?;
    eprintln!("faceveil: {kind} written to {} (keep it secret); its {shared}:", args.output.display());
    println!("{public}");
    Ok(())
}

/// Writes the revocation of the signing key in `key` to `args.output`, and prints the signer it
/// revokes. A protected key's passphrase comes as `--sign-with` takes it.
fn revoke(key: &std::path::Path, args: &KeygenArgs) -> Result<()> {
    let key = crate::cli::sealing::signing_key(key)?;
    write_file(&args.output, &key.revocation_text())?;
    eprintln!(
        "faceveil: revocation written to {} (keep it apart from the key; publish it if the key may have been copied); it revokes:",
        args.output.display()
    );
    println!("{}", key.signer());
    Ok(())
}

/// The passphrase that protects the file, when asked for: a file, $FACEVEIL_IDENTITY_PASSPHRASE,
/// or a prompt typed twice. Never argv.
fn passphrase(args: &KeygenArgs) -> Result<Option<Zeroizing<String>>> {
    let p = if let Some(path) = &args.passphrase_file {
        faceveil::secrets::first_line(path, "passphrase file")?
    } else if !args.passphrase {
        return Ok(None);
    } else if let Ok(p) = std::env::var(if args.signing { "FACEVEIL_SIGNING_PASSPHRASE" } else { "FACEVEIL_IDENTITY_PASSPHRASE" })
    {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        let what = if args.signing { "signing key" } else { "identity" };
        let first = Zeroizing::new(rpassword::prompt_password(format!("passphrase for the {what}: "))?);
        let again = Zeroizing::new(rpassword::prompt_password("the same again: ")?);
        if first != again {
            bail!("the two passphrases differ");
        }
        first
    } else {
        bail!(
            "--passphrase needs FACEVEIL_IDENTITY_PASSPHRASE (FACEVEIL_SIGNING_PASSPHRASE with --signing), --passphrase-file, or a terminal"
        );
    };
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(Some(p))
}

/// Creates the file readable by its owner only; an existing file is never overwritten.
fn write_private(args: &KeygenArgs, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    create(options, &args.output, text)
}

/// Creates a file that holds no secret; an existing file is never overwritten.
fn write_file(path: &std::path::Path, text: &str) -> Result<()> {
    create(std::fs::OpenOptions::new(), path, text)
}

fn create(mut options: std::fs::OpenOptions, path: &std::path::Path, text: &str) -> Result<()> {
    let mut file = options.write(true).create_new(true).open(path).with_context(|| {
        if path.exists() {
            format!("{} exists: keygen never overwrites a file", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}
