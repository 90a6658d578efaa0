//! Who can unseal: an identity (private key file) and its recipient (the public key), age's X25519.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{SealError, keyfile};

/// A public key faces are sealed to (age's X25519 recipient, `age1...`).
#[derive(Clone)]
pub struct Recipient(pub(super) age::x25519::Recipient);

impl FromStr for Recipient {
    type Err = SealError;

    fn from_str(s: &str) -> Result<Self, SealError> {
        s.trim().parse().map(Self).map_err(|_| SealError::BadRecipient(s.trim().to_string()))
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Recipient {
    /// Recipients from a file's text: one per line, `#` comments and blank lines ignored.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, SealError> {
        text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(str::parse).collect()
    }
}

/// A private key that unseals what was sealed to its recipient.
pub struct Identity(pub(super) age::x25519::Identity);

impl Identity {
    pub fn generate() -> Self {
        Self(age::x25519::Identity::generate())
    }

    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }

    /// The identity file's text: age's own format, or, with a passphrase, that text encrypted
    /// to it (`keyfile`).
    pub fn to_file_text(&self, passphrase: Option<SecretString>) -> Result<Zeroizing<String>, SealError> {
        let plain = Zeroizing::new(format!(
            "# faceveil identity (age X25519); keep it secret\n# recipient: {}\n{}\n",
            self.recipient(),
            self.0.to_string().expose_secret()
        ));
        keyfile::protect(plain, passphrase, SealError::BadIdentity)
    }

    /// Whether an identity file's text needs a passphrase to be read.
    pub fn needs_passphrase(text: &str) -> bool {
        keyfile::needs_passphrase(text)
    }

    /// Reads an identity file; `passphrase` is asked only for a protected one.
    pub fn from_file(path: &Path, passphrase: impl FnOnce() -> Option<SecretString>) -> anyhow::Result<Self> {
        keyfile::read(path, "identity", |text| Self::from_file_text(text, passphrase))
    }

    /// Reads an identity file's text; `passphrase` is asked only for a protected file.
    pub fn from_file_text(text: &str, passphrase: impl FnOnce() -> Option<SecretString>) -> Result<Self, SealError> {
        let plain = keyfile::plain_text(text, passphrase, SealError::BadIdentity)?;
        let line = plain
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| SealError::BadIdentity("no AGE-SECRET-KEY-1 line".into()))?;
        line.parse().map(Self).map_err(|e: &str| SealError::BadIdentity(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_files_round_trip_with_and_without_a_passphrase() {
        let id = Identity::generate();
        let plain = id.to_file_text(None).unwrap();
        assert!(!Identity::needs_passphrase(&plain));
        let back = Identity::from_file_text(&plain, || panic!("no passphrase wanted")).unwrap();
        assert_eq!(back.recipient().to_string(), id.recipient().to_string());

        let pass = || Some(SecretString::from("hunter2 hunter2".to_string()));
        let locked = id.to_file_text(pass()).unwrap();
        assert!(Identity::needs_passphrase(&locked));
        assert!(!locked.contains("AGE-SECRET-KEY"));
        let back = Identity::from_file_text(&locked, pass).unwrap();
        assert_eq!(back.recipient().to_string(), id.recipient().to_string());
        let wrong = Identity::from_file_text(&locked, || Some(SecretString::from("nope".to_string())));
        assert!(matches!(wrong, Err(SealError::WrongPassphrase)));
    }

    #[test]
    fn recipient_lists_skip_comments_and_refuse_garbage() {
        let (a, b) = (Identity::generate().recipient(), Identity::generate().recipient());
        let text = format!("# team\n{a}\n\n{b}  # night shift\n");
        let list = Recipient::parse_list(&text).unwrap();
        assert_eq!(list.iter().map(ToString::to_string).collect::<Vec<_>>(), [a.to_string(), b.to_string()]);
        assert!(matches!(Recipient::parse_list("age1notakey"), Err(SealError::BadRecipient(_))));
    }
}
