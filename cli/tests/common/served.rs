//! The CLI's processes that RTSP tests run: a spawned `faceveil` killed when dropped, a clip
//! served with `--serve-rtsp`, and waits bounded in time.

use std::path::Path;

use super::{free_port, s};

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    /// Whether it still runs, or how it ended: for the message of a test whose client found no
    /// server (once "Failed to connect" with nothing in the server's log).
    pub fn state(&mut self) -> String {
        match self.0.try_wait() {
            Ok(None) => "the server still runs".into(),
            Ok(Some(status)) => format!("the server ended: {status}"),
            Err(e) => format!("the server's state is unknown: {e}"),
        }
    }
}

pub fn spawn(args: &[&str], stderr_to: &Path) -> Child {
    let log = std::fs::File::create(stderr_to).unwrap();
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_faceveil"))
            .args(args)
            .env("FACEVEIL_PASSWORD", "relay")
            .envs(super::RTSP_TRACE)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// `faceveil anonymize CLIP OPTIONS --serve-rtsp PORT` on a free port, its log in
/// `dir/server.log`, once it listens; with the URL it serves.
pub fn serve_clip(clip: &Path, options: &[&str], dir: &Path) -> (Child, String) {
    let port = free_port();
    let port_arg = port.to_string();
    let args: Vec<&str> =
        ["anonymize", s(clip)].into_iter().chain(options.iter().copied()).chain(["--serve-rtsp", &port_arg]).collect();
    let server = spawn(&args, &dir.join("server.log"));
    wait_for("the server to listen", 60, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    (server, format!("rtsp://127.0.0.1:{port}/faceveil"))
}

/// What a spawned process has written to its log so far (nothing yet, if it has not started).
pub fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn wait_for(what: &str, timeout_s: u64, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
