//! Logins over RTSP and HTTP, both ways: the one a camera asks of faceveil (its source's user
//! and password) and the ones faceveil asks of its viewers (a served stream's, see
//! [`crate::cli::credentials::access`]). A password is read from a file or an environment variable, never from
//! the command line or a config file, and never printed: URLs in the messages a user sees have
//! theirs hidden.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use gst::prelude::*;
use zeroize::Zeroizing;

/// What a hidden password reads as.
const HIDDEN: &str = "***";

/// A user name and its password.
#[derive(Clone, PartialEq)]
pub struct Login {
    pub user: String,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, {HIDDEN})", self.user)
    }
}

impl Login {
    /// `user`'s login, its password the first line of `file`, else the value of `$var`; `what`
    /// names the login in errors ("the input's login", "viewer ops").
    pub fn read(user: &str, file: Option<&Path>, var: Option<&str>, what: &str) -> Result<Self> {
        let password = match (file, var) {
            (Some(path), _) => faceveil::secrets::first_line(path, "password file")?,
            (None, Some(var)) => {
                Zeroizing::new(std::env::var(var).with_context(|| format!("{what}: its password: set ${var} or name a file"))?)
            }
            (None, None) => bail!("{what}: its password: name a file (password_file) or a variable (password_env)"),
        };
        Self::checked(user, password, what)
    }

    /// As [`Login::read`] with the variable `var`, and where neither gives the password, a
    /// prompt on the terminal, if there is one (the CLI's; a `serve` config never prompts).
    pub fn read_or_ask(user: &str, file: Option<&Path>, var: &str, what: &str) -> Result<Self> {
        if file.is_some() || std::env::var_os(var).is_some() || !std::io::stdin().is_terminal() {
            return Self::read(user, file, Some(var), what);
        }
        let password = Zeroizing::new(
            rpassword::prompt_password(format!("password of {user} ({what}): ")).context("cannot read the password")?,
        );
        Self::checked(user, password, what)
    }

    /// `user`'s login with `password`, each as a login's must be.
    fn checked(user: &str, password: Zeroizing<String>, what: &str) -> Result<Self> {
        ensure!(!user.is_empty() && !user.contains(':'), "{what}: a user name is neither empty nor holds ':'");
        ensure!(!password.is_empty(), "{what}: the password is empty");
        Ok(Self { user: user.to_string(), password })
    }

    /// The password, for what asks a client for it.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Hands the login to a source element that asks for one (rtspsrc, souphttpsrc: `user-id`
    /// and `user-pw`).
    pub fn give_to(&self, source: &gst::Element) -> Result<()> {
        if source.find_property("user-id").is_none() || source.find_property("user-pw").is_none() {
            bail!(
                "a login was given, but this source ({}) takes none",
                source.factory().map(|f| f.name().to_string()).unwrap_or_default()
            );
        }
        source.set_property("user-id", self.user.as_str());
        source.set_property("user-pw", self.password.as_str());
        Ok(())
    }
}

/// Whether `url` carries a password (`scheme://user:password@host/…`).
pub fn url_has_password(url: &str) -> bool {
    hide_passwords(url) != url
}

/// `text` with the password of every URL in it (`scheme://user:password@host`) shown as ***.
pub fn hide_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = at + 3;
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        // The authority runs to the path, the query, the fragment or the end of the word.
        let end = rest.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == ')').unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority.rfind('@').and_then(|at| authority[..at].find(':').map(|colon| (colon, at))) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(HIDDEN);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden_and_the_rest_is_kept() {
        let said = "Could not open resource (rtsp://admin:s3cr:et@10.0.0.2:554/stream1?x=1): see http://u:p@h and rtsp://h/p";
        let shown = hide_passwords(said);
        assert_eq!(
            shown,
            "Could not open resource (rtsp://admin:***@10.0.0.2:554/stream1?x=1): see http://u:***@h and rtsp://h/p"
        );
        assert!(!shown.contains("s3cr") && !shown.contains(":p@"));
        // A user without a password, an address, and text without URLs are left as they are.
        for plain in ["rtsp://admin@cam/s", "rtsp://[::1]:8554/faceveil", "no url here: a@b", "file:///tmp/a:b@c.mp4"] {
            assert_eq!(hide_passwords(plain), plain);
            assert!(!url_has_password(plain));
        }
        assert!(url_has_password("rtsp://admin:secret@cam/s"));
    }

    #[test]
    fn a_login_prints_without_its_password_and_needs_one() {
        let dir = std::env::temp_dir().join(format!("faceveil-login-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw.txt");
        std::fs::write(&file, "hunter2\nignored\n").unwrap();
        let login = Login::read("ops", Some(&file), Some("FACEVEIL_TEST_UNSET_VARIABLE"), "the source").unwrap();
        assert_eq!(format!("{login:?}"), "Login(ops, ***)");
        assert_eq!(login.password.as_str(), "hunter2");
        let unset = Login::read("ops", None, Some("FACEVEIL_TEST_UNSET_VARIABLE"), "the source").unwrap_err();
        assert!(format!("{unset:#}").contains("$FACEVEIL_TEST_UNSET_VARIABLE"), "{unset:#}");
        std::fs::write(&file, "\n").unwrap();
        assert!(format!("{:#}", Login::read("ops", Some(&file), None, "the source").unwrap_err()).contains("empty"));
        assert!(Login::read("a:b", Some(&file), None, "the source").is_err());
        assert!(Login::read("ops", None, None, "viewer ops").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
