//! `faceveil keygen`: a new identity for sealed restores, and the recipient line to share.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use faceveil::secrets::Identity;
use zeroize::Zeroizing;

use super::args::KeygenArgs;

pub fn run(args: &KeygenArgs) -> Result<()> {
    let passphrase = passphrase(args)?;
    let identity = Identity::generate();
    let text = identity.to_file_text(passphrase.map(|p| p.to_string().into()))?;
    write_private(args, &text)?;
    let recipient = identity.recipient();
    eprintln!("faceveil: identity written to {} (keep it secret); its recipient:", args.output.display());
    println!("{recipient}");
    Ok(())
}

/// The passphrase that protects the file, when asked for: a file, $FACEVEIL_IDENTITY_PASSPHRASE,
/// or a prompt typed twice. Never argv.
fn passphrase(args: &KeygenArgs) -> Result<Option<Zeroizing<String>>> {
    let p = if let Some(path) = &args.passphrase_file {
        faceveil::secrets::first_line(path, "passphrase file")?
    } else if !args.passphrase {
        return Ok(None);
    } else if let Ok(p) = std::env::var("FACEVEIL_IDENTITY_PASSPHRASE") {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password("passphrase for the identity: ")?);
        let again = Zeroizing::new(rpassword::prompt_password("the same again: ")?);
        if first != again {
            bail!("the two passphrases differ");
        }
        first
    } else {
        bail!("--passphrase needs FACEVEIL_IDENTITY_PASSPHRASE, --passphrase-file, or a terminal");
    };
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(Some(p))
}

/// Creates the file readable by its owner only; an existing file is never overwritten.
fn write_private(args: &KeygenArgs, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&args.output).with_context(|| {
        if args.output.exists() {
            format!("{} exists: an identity is never overwritten", args.output.display())
        } else {
            format!("cannot create {}", args.output.display())
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", args.output.display()))
}
