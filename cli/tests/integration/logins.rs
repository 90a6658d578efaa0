//! Logins and TLS over RTSP through the CLI: a stream served for one login or over TLS plays to
//! the clients that give the login or trust the certificate, and to no other, and no password
//! is printed. Apart from cli.rs so that these clients, each of which starts the detector, do
//! not run beside the RTSP tests there on two cores, where gst-rtsp-server 1.22's stall of a
//! TCP client (`cli/src/cli/media/stuck.rs`) comes with load.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::served::{log_text, serve_clip};
use common::{media, s, sample, tmpdir};

fn faceveil(args: &[&str]) -> Output {
    faceveil_in(Path::new("."), args)
}

/// `faceveil ARGS` run from folder `cwd`, for paths given relative to it.
fn faceveil_in(cwd: &Path, args: &[&str]) -> Output {
    common::without_criticals(
        Command::new(env!("CARGO_BIN_EXE_faceveil"))
            .current_dir(cwd)
            .args(args)
            .env_remove("FACEVEIL_PASSWORD")
            .output()
            .unwrap(),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A stream served for one login plays to it and to no one else, and no password is printed:
/// not the one given in a URL (which is warned of), nor the server's.
#[test]
fn a_stream_served_for_a_login_plays_to_it_alone_and_no_password_is_printed() {
    let dir = tmpdir("logins");
    let (right, wrong) = (dir.join("viewer.pass"), dir.join("wrong.pass"));
    std::fs::write(&right, "viewer-secret\n").unwrap();
    std::fs::write(&wrong, "wrong-secret\n").unwrap();
    let clip = sample("two_faces_640x360.mp4");
    let (mut server, url) =
        serve_clip(&clip, &["--mode", "blur", "--serve-user", "ops", "--serve-password-file", s(&right)], &dir);
    let record = |name: &str, url: &str, login: &[&str]| {
        let out = dir.join(format!("{name}.mkv"));
        let o = faceveil(&[&["anonymize", url, "-o", s(&out), "--mode", "blur"][..], login].concat());
        (o.status.success(), stderr(&o), out)
    };
    // Refused clients first: a stream served from a file waits for a client that plays.
    let (ok, said, out) = record("none", &url, &[]);
    assert!(!ok && said.contains("Unauthorized") && said.contains("--source-user"), "{said} ({})", server.state());
    assert!(!out.exists(), "a refused recording writes nothing");
    let (ok, said, _) = record("wrong", &url, &["--source-user", "ops", "--source-password-file", s(&wrong)]);
    assert!(!ok && said.contains("Unauthorized") && !said.contains("wrong-secret"), "{said}");
    let in_url = url.replace("rtsp://", "rtsp://ops:wrong-secret@");
    let (ok, said, _) = record("in-url", &in_url, &[]);
    assert!(!ok && said.contains("rtsp://ops:***@") && !said.contains("wrong-secret"), "{said}");
    assert!(said.contains("process list"), "a password in the URL is warned of: {said}");
    let (ok, said, out) = record("viewer", &url, &["--source-user", "ops", "--source-password-file", s(&right)]);
    assert!(ok, "{said}");
    let (original, played) = (media::decode(&clip).frames, media::decode(&out).frames);
    assert_eq!(played.len(), original.len(), "the viewer got {} of the file's {} frames", played.len(), original.len());
    let server_said = log_text(&dir.join("server.log"));
    assert!(!server_said.contains("viewer-secret") && !said.contains("viewer-secret"), "{server_said}");
    // Neither a file nor $FACEVEIL_SOURCE_PASSWORD: the password typed at the prompt of a
    // terminal (`script` gives the CLI one; what it reads, it reads from the pipe below). The
    // server above played its file once and ended: another one.
    let again = dir.join("again");
    std::fs::create_dir_all(&again).unwrap();
    let (_server, url) =
        serve_clip(&clip, &["--mode", "blur", "--serve-user", "ops", "--serve-password-file", s(&right)], &again);
    let typed = dir.join("typed.mkv");
    let line = format!("'{}' anonymize '{url}' -o '{}' --mode blur --source-user ops", env!("CARGO_BIN_EXE_faceveil"), s(&typed));
    let mut terminal = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("FACEVEIL_SOURCE_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Typed once the prompt is up: the terminal would echo what came before it.
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut out = terminal.stdout.take().unwrap();
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 256];
            while let Ok(n @ 1..) = std::io::Read::read(&mut out, &mut chunk) {
                shown.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        })
    };
    let text = || String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    common::served::wait_for("the prompt", 60, || text().contains("password of ops"));
    std::io::Write::write_all(&mut terminal.stdin.take().unwrap(), b"viewer-secret\n").unwrap();
    let status = terminal.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{}", text());
    assert!(!text().contains("viewer-secret"), "the typed password was echoed: {}", text());
    assert_eq!(media::decode(&typed).frames.len(), original.len(), "the typed login played the stream");
}

/// A stream served over TLS (rtsps://) plays to a client that trusts its certificate, and to
/// no client that does not, nor to one that speaks plain RTSP.
#[test]
fn a_stream_served_over_tls_plays_to_a_client_that_trusts_its_certificate_alone() {
    let dir = tmpdir("tls");
    let Some((cert, key)) = common::certificate(&dir) else { return };
    let clip = sample("two_faces_640x360.mp4");
    let (_server, url) = serve_clip(&clip, &["--mode", "blur", "--serve-tls-cert", s(&cert), "--serve-tls-key", s(&key)], &dir);
    let tls_url = url.replace("rtsp://", "rtsps://");
    let record = |name: &str, url: &str, options: &[&str]| {
        let out = dir.join(format!("{name}.mkv"));
        let o = faceveil_in(&dir, &[&["anonymize", url, "-o", s(&out), "--mode", "blur"][..], options].concat());
        (o.status.success(), stderr(&o), out)
    };
    // Refused clients first: a stream served from a file waits for a client that plays.
    let (ok, said, out) = record("untrusted", &tls_url, &[]);
    assert!(!ok && !out.exists(), "a client that does not trust the certificate played: {said}");
    assert!(said.contains("certificate is refused: no authority this machine trusts vouches for it"), "{said}");
    let (ok, said, out) = record("plain", &url, &[]);
    assert!(!ok && !out.exists(), "a plain RTSP client played from a TLS server: {said}");
    // The authorities named as a user types them, relative to where the command runs (so
    // named, they were read and then trusted for nothing until 2026-12-05).
    let (ok, said, out) = record("trusting", &tls_url, &["--source-ca", "server.pem"]);
    assert!(ok, "{said}");
    let (original, played) = (media::decode(&clip).frames, media::decode(&out).frames);
    assert_eq!(played.len(), original.len(), "the client got {} of the file's {} frames", played.len(), original.len());
    // Authorities are for URLs over TLS.
    let (ok, said, _) = record("plain-ca", &url, &["--source-ca", s(&cert)]);
    assert!(!ok && said.contains("rtsps://"), "{said}");
}

/// An http(s):// input goes through souphttpsrc, which takes the login and the authorities too
/// but has no signal for refused certificates: a server that is not there is a clear error,
/// not an abort (asking souphttpsrc for rtspsrc's signal once aborted the process).
#[test]
fn an_https_input_with_a_login_and_authorities_that_is_not_there_fails_with_an_error() {
    let dir = tmpdir("https");
    let password = dir.join("camera.pass");
    std::fs::write(&password, "camera-secret\n").unwrap();
    let url = format!("https://127.0.0.1:{}/clip.mp4", common::free_port());
    let out = dir.join("out.mkv");
    let run = |authorities: &std::path::Path| {
        let login = ["--source-user", "ops", "--source-password-file", s(&password)];
        let o = faceveil(
            &[&["anonymize", &url, "-o", s(&out), "--mode", "blur"][..], &login, &["--source-ca", s(authorities)]].concat(),
        );
        (o.status.code(), stderr(&o))
    };
    // Authorities that are not PEM: read before any connection, and refused.
    let (code, said) = run(&password);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("cannot read the certificate authorities"), "{said}");
    let Some((cert, _)) = common::certificate(&dir) else { return };
    let (code, said) = run(&cert);
    assert_eq!(code, Some(1), "exit 1 with an error, not an abort: {said}");
    assert!(said.contains("faceveil: error:") && !said.contains("panicked") && !said.contains("camera-secret"), "{said}");
    assert!(!out.exists(), "nothing written");
}
