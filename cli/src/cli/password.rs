//! Where the password comes from: $FACEVEIL_PASSWORD, --password-file, or a prompt. Never argv.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use super::args::CommonArgs;

pub fn obtain(args: &CommonArgs) -> Result<Zeroizing<String>> {
    let password = if let Some(p) = given(args)? {
        p
    } else if std::io::stdin().is_terminal() {
        Zeroizing::new(rpassword::prompt_password("faceveil password: ").context("cannot read the password")?)
    } else {
        bail!("a password is required: set FACEVEIL_PASSWORD, pass --password-file, or run in a terminal");
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// The password when one was given outright (--password-file or $FACEVEIL_PASSWORD); no prompt.
pub fn given(args: &CommonArgs) -> Result<Option<Zeroizing<String>>> {
    if let Some(path) = &args.password_file {
        return first_line(path, "password file").map(Some);
    }
    Ok(std::env::var("FACEVEIL_PASSWORD").ok().map(Zeroizing::new))
}

/// The first line of a secret file (a password or a passphrase), wiped when dropped.
pub fn first_line(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))?);
    Ok(Zeroizing::new(text.lines().next().unwrap_or_default().to_string()))
}
