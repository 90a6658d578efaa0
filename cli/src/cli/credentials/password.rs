//! Where the password comes from: $FACEVEIL_PASSWORD, --password-file, or a prompt. Never argv.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use crate::cli::args::CommonArgs;

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

/// For an output sealed to recipients: the password when one was given outright, or `None`,
/// said on standard error, for surrogates keyed at random that only the recipients undo.
pub fn given_or_random(args: &CommonArgs) -> Result<Option<Zeroizing<String>>> {
    let password = given(args)?;
    match &password {
        Some(p) if p.is_empty() => bail!("the password is empty"),
        Some(_) => {}
        None => eprintln!(
            "faceveil: no password given: the surrogates are keyed at random, and only the recipients can restore \
             the faces (set FACEVEIL_PASSWORD or pass --password-file to key them to a password as well)"
        ),
    }
    Ok(password)
}

/// The password when one was given outright (--password-file or $FACEVEIL_PASSWORD); no prompt.
pub fn given(args: &CommonArgs) -> Result<Option<Zeroizing<String>>> {
    if let Some(path) = &args.password_file {
        return faceveil::secrets::first_line(path, "password file").map(Some);
    }
    Ok(std::env::var("FACEVEIL_PASSWORD").ok().map(Zeroizing::new))
}
