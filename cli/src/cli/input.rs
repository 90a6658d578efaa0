//! What the user pointed us at.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

pub enum Input {
    Image(PathBuf),
    Directory(PathBuf),
    /// A video file, a network URL or a camera, all decoded by GStreamer.
    Stream(StreamSource),
}

#[derive(Clone)]
pub enum StreamSource {
    File(PathBuf),
    Uri(String, RtspTransport),
    Camera(String),
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
        if text.contains("://") {
            return Ok(Self::Stream(StreamSource::Uri(text.to_string(), RtspTransport::default())));
        }
        if text == "webcam" {
            return Ok(Self::Stream(StreamSource::Camera("/dev/video0".into())));
        }
        if text.starts_with("/dev/video") {
            return Ok(Self::Stream(StreamSource::Camera(text.to_string())));
        }
        let path = PathBuf::from(text);
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
        matches!(self, Self::Stream(StreamSource::Uri(..) | StreamSource::Camera(_)))
    }
}
