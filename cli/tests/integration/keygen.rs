//! `faceveil keygen`: the identity file it writes opens, matches the recipient it prints, is
//! private, is never overwritten, and with a passphrase opens only with that passphrase; so does
//! the signing key of `--signing`, which signs as the signer it prints.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::tmpdir;
use faceveil::secrets::{ContentKey, Identity, Recipient, SealError, Signer, SigningKey};

fn keygen(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faceveil"));
    cmd.arg("keygen").args(args).env_remove("FACEVEIL_IDENTITY_PASSPHRASE").env_remove("FACEVEIL_SIGNING_PASSPHRASE");
    cmd.envs(envs.iter().copied());
    cmd.output().unwrap()
}

fn printed_recipient(o: &Output) -> Recipient {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one line on standard output: {stdout:?}");
    stdout.trim().parse().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn keygen_writes_a_private_identity_that_unwraps_what_its_recipient_is_sent() {
    let dir = tmpdir("plain");
    let file = dir.join("me.age");
    let recipient = printed_recipient(&keygen(&["-o", file.to_str().unwrap()], &[]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let identity = Identity::from_file_text(&read(&file), || None).unwrap();
    assert_eq!(identity.recipient().to_string(), recipient.to_string());
    let envelope = ContentKey::generate().wrap(std::slice::from_ref(&recipient), 1, None).unwrap();
    assert!(ContentKey::unwrap(&envelope, &[identity]).is_ok());

    let again = keygen(&["-o", file.to_str().unwrap()], &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    assert_eq!(Identity::from_file_text(&read(&file), || None).unwrap().recipient().to_string(), recipient.to_string());
}

#[test]
fn a_passphrase_protected_identity_needs_its_passphrase() {
    let dir = tmpdir("locked");
    let (file, pass) = (dir.join("me.age"), dir.join("pass.txt"));
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let recipient = printed_recipient(&keygen(&["-o", file.to_str().unwrap(), "--passphrase-file", pass.to_str().unwrap()], &[]));
    let text = read(&file);
    assert!(!text.contains("AGE-SECRET-KEY"), "the private key is not in the clear");
    let opened = Identity::from_file_text(&text, || Some("correct horse battery".to_string().into())).unwrap();
    assert_eq!(opened.recipient().to_string(), recipient.to_string());
    let wrong = Identity::from_file_text(&text, || Some("wrong".to_string().into()));
    assert!(matches!(wrong, Err(SealError::WrongPassphrase)));

    // --passphrase without a terminal or the variable is refused, and nothing is written.
    let none = dir.join("none.age");
    let o = keygen(&["-o", none.to_str().unwrap(), "--passphrase"], &[]);
    assert!(!o.status.success());
    assert!(!none.exists());
    let from_env = dir.join("env.age");
    let o =
        keygen(&["-o", from_env.to_str().unwrap(), "--passphrase"], &[("FACEVEIL_IDENTITY_PASSPHRASE", "from the environment")]);
    printed_recipient(&o);
    assert!(Identity::from_file_text(&read(&from_env), || Some("from the environment".to_string().into())).is_ok());
}

#[test]
fn a_signing_key_is_written_private_locked_with_its_own_variable_and_signs_as_its_printed_signer() {
    let dir = tmpdir("signing");
    let file = dir.join("camera.key");
    let o =
        keygen(&["--signing", "-o", file.to_str().unwrap(), "--passphrase"], &[("FACEVEIL_SIGNING_PASSPHRASE", "camera words")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let signer: Signer = String::from_utf8(o.stdout).unwrap().trim().parse().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let text = read(&file);
    assert!(!text.contains("FACEVEIL-SIGNING-KEY"), "the private key is not in the clear");
    let key = SigningKey::from_file_text(&text, || Some("camera words".to_string().into())).unwrap();
    assert_eq!(key.signer(), signer);
    // The identity's variable does not open a signing key's passphrase prompt: without its own,
    // and without a terminal, nothing is written.
    let other = dir.join("other.key");
    let o = keygen(&["--signing", "-o", other.to_str().unwrap(), "--passphrase"], &[("FACEVEIL_IDENTITY_PASSPHRASE", "x")]);
    assert!(!o.status.success() && !other.exists());
}
