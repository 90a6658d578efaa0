//! Where the password comes from: $FACEVEIL_PASSWORD, --password-file, or a prompt. Never argv.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use super::args::CommonArgs;

pub fn obtain(args: &CommonArgs) -> Result<Zeroizing<String>> {
    let password = if let Some(path) = &args.password_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("cannot read password file {}", path.display()))?,
        );
        Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
    } else if let Ok(p) = std::env::var("FACEVEIL_PASSWORD") {
        Zeroizing::new(p)
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
