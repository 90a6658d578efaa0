//! What the user pointed us at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// A live source that sends no frame for this long is restarted: a camera can hang without
/// closing its connection, and an RTSP source then waits forever.
pub const STALL: Duration = Duration::from_secs(20);

/// When a live source that dropped is tried again (the relay of `--serve-rtsp` and each `serve`
/// camera alike): after 0.5 s, doubled after each try that brought no frame, up to 30 s.
pub struct Reconnect {
    delay: Duration,
}

impl Reconnect {
    const START: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Self {
        Self { delay: Self::START }
    }

    /// The wait before the next try; `progressed`: the run that just ended brought frames.
    pub fn next_delay(&mut self, progressed: bool) -> Duration {
        if progressed {
            self.delay = Self::START;
        }
        let delay = self.delay;
        self.delay = (delay * 2).min(Self::MAX);
        delay
    }
}

pub enum Input {
    Image(PathBuf),
    Directory(PathBuf),
    /// A video file, a network URL or a camera, all decoded by GStreamer.
    Stream(StreamSource),
}

/// A source GStreamer decodes: the CLI's input and each `serve` camera.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamSource {
    File(PathBuf),
    Uri(String, RtspTransport),
    Camera(String),
}

impl StreamSource {
    /// A URL, a camera (`webcam` for the first, or a /dev/video device) or else a file's path.
    pub fn parse(text: &str) -> Self {
        if text.contains("://") {
            Self::Uri(text.to_string(), RtspTransport::default())
        } else if text == "webcam" {
            Self::Camera("/dev/video0".into())
        } else if text.starts_with("/dev/video") {
            Self::Camera(text.to_string())
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// Live sources deliver at their own pace and are reconnected when they end; files end.
    pub fn is_live(&self) -> bool {
        !matches!(self, Self::File(_))
    }
}

/// How an rtsp:// source is received. TCP is the default because a restore needs every frame:
/// over UDP a busy receiver loses packets, and with them whole frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
    /// Whatever the server offers first (rtspsrc's own choice: UDP, then TCP)
    Auto,
}

impl RtspTransport {
    /// rtspsrc's `protocols` flags, or `None` to leave its default.
    pub fn protocols(self) -> Option<&'static str> {
        match self {
            Self::Tcp => Some("tcp"),
            Self::Udp => Some("udp+udp-mcast"),
            Self::Auto => None,
        }
    }
}

pub fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

impl Input {
    pub fn parse(text: &str) -> Result<Self> {
        let path = match StreamSource::parse(text) {
            StreamSource::File(path) => path,
            live => return Ok(Self::Stream(live)),
        };
        if path.is_dir() {
            return Ok(Self::Directory(path));
        }
        if !path.is_file() {
            bail!("input {} does not exist", path.display());
        }
        if std::fs::metadata(&path)?.len() == 0 {
            bail!("input {} is empty", path.display());
        }
        Ok(if is_image(&path) { Self::Image(path) } else { Self::Stream(StreamSource::File(path)) })
    }

    /// Sets how an rtsp:// input is received (no effect on other inputs).
    pub fn with_rtsp_transport(mut self, transport: RtspTransport) -> Self {
        if let Self::Stream(StreamSource::Uri(_, t)) = &mut self {
            *t = transport;
        }
        self
    }

    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Self::Image(p) | Self::Directory(p) | Self::Stream(StreamSource::File(p)) => Some(p),
            _ => None,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, Self::Stream(source) if source.is_live())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_to_half_a_minute_and_start_over_after_frames() {
        let mut r = Reconnect::new();
        let waits: Vec<f64> = (0..9).map(|_| r.next_delay(false).as_secs_f64()).collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(r.next_delay(true), Duration::from_millis(500), "a run that brought frames starts the schedule over");
        assert_eq!(r.next_delay(false), Duration::from_secs(1));
    }
}
