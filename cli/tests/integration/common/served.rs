//! The CLI's processes that RTSP tests run: a spawned `faceveil` killed when dropped, a clip
//! served with `--serve-rtsp`, waits bounded in time, and which pictures a client receives as
//! keyframes.

use std::io::{BufRead, Write};
use std::path::Path;

use super::{free_port, local_listener, s};

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
    spawn_to(args, std::process::Stdio::null(), stderr_to)
}

/// [`spawn`] with its standard output to `stdout`.
fn spawn_to(args: &[&str], stdout: impl Into<std::process::Stdio>, stderr_to: &Path) -> Child {
    let log = std::fs::File::create(stderr_to).unwrap();
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_faceveil"))
            .args(args)
            .env("FACEVEIL_PASSWORD", "relay")
            .envs(super::RTSP_TRACE)
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// `faceveil anonymize CLIP OPTIONS --serve-rtsp PORT` on a free port, its log in
/// `dir/server.log`, once it says that it serves (its standard output, in `dir/server.out`);
/// with the URL it serves. A connection to the port proves less: twice in CI a client then
/// found no server on it (2026-12-05, `logins.rs`), whose server had logged nothing since its
/// start, so the connection had reached something else.
pub fn serve_clip(clip: &Path, options: &[&str], dir: &Path) -> (Child, String) {
    let port = free_port();
    (serve_clip_at(port, clip, options, &dir.join("server")), format!("rtsp://127.0.0.1:{port}/faceveil"))
}

/// [`serve_clip`] on a given port (a server restarted where its clients knew it), its log in
/// `LOGS.log` and its standard output in `LOGS.out`.
pub fn serve_clip_at(port: u16, clip: &Path, options: &[&str], logs: &Path) -> Child {
    let port_arg = port.to_string();
    let args: Vec<&str> =
        ["anonymize", s(clip)].into_iter().chain(options.iter().copied()).chain(["--serve-rtsp", &port_arg]).collect();
    let (said, log) = (logs.with_extension("out"), logs.with_extension("log"));
    let mut server = spawn_to(&args, std::fs::File::create(&said).unwrap(), &log);
    let serving = format!("://127.0.0.1:{port}/faceveil");
    wait_for("the server to say that it serves", 60, || {
        let state = server.state();
        assert!(state.ends_with("still runs"), "{state}: {}", log_text(&log));
        log_text(&said).lines().any(|line| line.starts_with("serving ") && line.contains(&serving))
    });
    server
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

/// An RTSP server on a free port that answers up to PLAY, then closes the connection before any
/// packet: a camera that fails as it starts. Its URL, and its thread, which ends after that one
/// connection.
pub fn closing_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = local_listener();
    let url = format!("rtsp://{}/x", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    return;
                }
                if line.trim().is_empty() {
                    break;
                }
                head.push(line.trim().to_owned());
            }
            let method = head[0].split(' ').next().unwrap().to_owned();
            let cseq = head.iter().find_map(|l| l.strip_prefix("CSeq: ")).unwrap().to_owned();
            let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                       m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:stream=0\r\n";
            let (headers, body) = match method.as_str() {
                "DESCRIBE" => {
                    (format!("Content-Type: application/sdp\r\nContent-Base: {}/\r\n", head[0].split(' ').nth(1).unwrap()), sdp)
                }
                "SETUP" => ("Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 1\r\n".into(), ""),
                "PLAY" => ("Session: 1\r\n".into(), ""),
                _ => ("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n".into(), ""),
            };
            let reply = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len());
            writer.write_all(reply.as_bytes()).unwrap();
            if method == "PLAY" {
                return;
            }
        }
    });
    (url, server)
}

/// Whether each coded picture that `source` (a gst-launch description that gives H.264: a file
/// demuxed, an RTSP client) gives within 30 s is a keyframe, up to `most` of them.
pub fn keyframes_from(source: &str, most: usize) -> Vec<bool> {
    use gst::prelude::*;
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!("{source} ! h264parse ! appsink name=sink sync=false"))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (mut keyframes, deadline) = (Vec::new(), std::time::Instant::now() + std::time::Duration::from_secs(30));
    while keyframes.len() < most && std::time::Instant::now() < deadline && !sink.is_eos() {
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(500)) {
            keyframes.push(!sample.buffer().unwrap().flags().contains(gst::BufferFlags::DELTA_UNIT));
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    keyframes
}

/// Whether each coded picture a client of `url` receives is a keyframe (see [`keyframes_from`]).
pub fn pictures_received(url: &str, most: usize) -> Vec<bool> {
    keyframes_from(&format!("rtspsrc location={url} latency=0 ! rtph264depay"), most)
}
