//! What the user pointed us at.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use image::ImageFormat;

use crate::cli::credentials::access::Authorities;
use crate::cli::credentials::login::{self, Login};
use crate::cli::media::containers::{photo_format, writes_container};

/// The picture formats read with the image crate, as photos or, animated, as videos.
const PICTURE_FORMATS: &[ImageFormat] =
    &[ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Tiff, ImageFormat::Bmp, ImageFormat::Gif];

/// A live source that sends no frame for this long is restarted: a camera can hang without
/// closing its connection, and an RTSP source then waits forever. A URL source can be given
/// another ([`Reach::stall`]): a camera that streams only while something moves needs longer.
pub const DEFAULT_STALL: Duration = Duration::from_secs(20);

/// The longest a URL source may be told to stay silent: a day.
pub const MAX_STALL_SECONDS: u64 = 86_400;

/// Follows an RTSP source's word that its server closed the connection mid-stream. A server
/// that ends a stream says so first (an RTCP BYE, which rtspsrc turns into the end of its pads);
/// one that closes without it has died, or its camera or the network has. Over TCP rtspsrc then
/// ends its pads where it has any, so a recording would end as if whole, and where it has none
/// yet nothing would end the run but its stall timeout ([`StreamSource::stall`]); over UDP it
/// connects again, and a server that closed only its control connection may stream on.
#[derive(Default)]
pub struct Closing {
    at: Option<Instant>,
}

impl Closing {
    /// How long after a close the source is given to end or to send frames again.
    const GRACE: Duration = Duration::from_secs(2);

    /// Notes a close where `msg` is rtspsrc's warning of it. Its debug text is matched: unlike
    /// its message, GStreamer never translates it.
    pub fn message(&mut self, msg: &gst::Message) {
        let gst::MessageView::Warning(w) = msg.view() else { return };
        if w.error().matches(gst::ResourceError::Read)
            && w.debug().is_some_and(|d| d.as_str().contains("The server closed the connection"))
        {
            self.at = Some(Instant::now());
        }
    }

    /// Whether a close was noted and has not been followed by frames since (the source's end,
    /// which follows a close over TCP, comes within the grace).
    pub fn pending(&self) -> bool {
        self.at.is_some()
    }

    /// Whether the source is over: it closed [`Self::GRACE`] ago and no frame came in the
    /// second half of it (`last_frame`: when the last came). Frames still coming clear the close.
    pub fn over(&mut self, last_frame: Instant) -> bool {
        let Some(at) = self.at.filter(|at| at.elapsed() >= Self::GRACE) else { return false };
        self.at = None;
        last_frame < at + Self::GRACE / 2
    }
}

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

/// Whether `a` and `b` name one existing file, however spelt (`dir/../dir/a.jpg`, a link, a hard
/// link): writing one would then destroy the other. A path that does not exist yet names no
/// existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
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
    Uri(Remote),
    Camera(String),
}

/// A source at a URL: RTSP, HTTP, or any other scheme GStreamer reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Remote {
    pub url: String,
    pub reach: Reach,
}

/// How a URL source is reached, and how long it may stay silent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reach {
    /// How an rtsp:// source is received.
    pub transport: RtspTransport,
    /// The login the source asks for, given apart from the URL.
    pub login: Option<Login>,
    /// The certificate authorities an rtsps:// source's certificate must chain to (default: the
    /// system's).
    pub authorities: Option<Authorities>,
    /// How long the source may send no frame before it counts as hung (default: [`DEFAULT_STALL`]).
    pub stall: Option<Duration>,
}

impl Reach {
    /// Whether this asks for anything only a URL source has (the transport is a default every
    /// source carries).
    fn names_url_settings(&self) -> bool {
        self.login.is_some() || self.authorities.is_some() || self.stall.is_some()
    }
}

impl Remote {
    /// Reached as `reach` says. A URL that holds a password of its own takes no second login,
    /// and only a URL over TLS takes authorities.
    fn with(self, reach: Reach) -> Result<Self> {
        ensure!(
            reach.login.is_none() || !login::url_has_password(&self.url),
            "the source URL holds a password already: give the login one way (--source-user and its password file or variable)"
        );
        ensure!(
            reach.authorities.is_none() || self.url.starts_with("rtsps://") || self.url.starts_with("https://"),
            "certificate authorities are for rtsps:// and https:// sources"
        );
        Ok(Self { reach, ..self })
    }
}

impl StreamSource {
    /// A URL, a camera (`webcam` for the first, or a /dev/video device) or else a file's path.
    pub fn parse(text: &str) -> Self {
        if text.contains("://") {
            Self::Uri(Remote { url: text.to_string(), reach: Reach::default() })
        } else if text == "webcam" {
            Self::Camera("/dev/video0".into())
        } else if text.starts_with("/dev/video") {
            Self::Camera(text.to_string())
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// Reached as `reach` says; a login, authorities and a stall timeout are for URLs only.
    pub fn reached(self, reach: Reach) -> Result<Self> {
        match self {
            Self::Uri(remote) => Ok(Self::Uri(remote.with(reach)?)),
            other => {
                ensure!(!reach.names_url_settings(), "a login, certificate authorities or a stall timeout are for URL sources");
                Ok(other)
            }
        }
    }

    /// Live sources deliver at their own pace and are reconnected when they end; files end.
    pub fn is_live(&self) -> bool {
        !matches!(self, Self::File(_))
    }

    /// How long a live source may send no frame before the run counts it as hung.
    pub fn stall(&self) -> Duration {
        match self {
            Self::Uri(remote) => remote.reach.stall.unwrap_or(DEFAULT_STALL),
            _ => DEFAULT_STALL,
        }
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

/// A file of one of [`PICTURE_FORMATS`], or a HEIF photo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Picture {
    Still(ImageFormat),
    /// A GIF or WebP of more than one frame: a video without a container.
    Animated(ImageFormat),
    /// A HEIF file (a phone's HEIC photo, AVIF), recognised so that it is named as what it is,
    /// but not decoded: the image crate cannot, and Debian 12's libheif (1.15) is older than the
    /// Rust bindings need (1.17). GStreamer opens it as an MP4 with no playable stream.
    Heif,
}

/// The major brands of HEIF still images and sequences (ISO/IEC 23008-12, AV1 Image File Format).
const HEIF_BRANDS: &[&[u8; 4]] = &[b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"];

/// What picture `path` holds, judged by its first bytes, so that a photo named otherwise (or
/// not at all) is still read as one; by its extension where the bytes say nothing, so that a
/// damaged photo fails as a photo. `None` for anything else (a video).
pub fn picture(path: &Path) -> Option<Picture> {
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path).and_then(|f| f.take(64).read_to_end(&mut head)).ok()?;
    if head.get(4..8) == Some(b"ftyp") && head.get(8..12).is_some_and(|brand| HEIF_BRANDS.iter().any(|b| b[..] == *brand)) {
        return Some(Picture::Heif);
    }
    let format = image::guess_format(&head).ok().or_else(|| ImageFormat::from_path(path).ok())?;
    if !PICTURE_FORMATS.contains(&format) {
        return None;
    }
    Some(if is_animated(path, format) { Picture::Animated(format) } else { Picture::Still(format) })
}

/// What the user is told of a HEIF file.
pub fn heif_unread(path: &Path) -> String {
    format!(
        "{} is a HEIF photo (HEIC or AVIF), which faceveil cannot read: convert it to JPEG or PNG first \
         (for instance with heif-convert, in Debian's libheif-examples)",
        path.display()
    )
}

/// Whether a GIF or WebP holds more than one frame. A file that cannot be read that far is
/// taken for a still, whose decoding then says what is wrong.
fn is_animated(path: &Path, format: ImageFormat) -> bool {
    use image::AnimationDecoder;
    let Ok(file) = std::fs::File::open(path) else { return false };
    let reader = std::io::BufReader::new(file);
    match format {
        ImageFormat::Gif => image::codecs::gif::GifDecoder::new(reader).is_ok_and(|d| d.into_frames().take(2).count() > 1),
        ImageFormat::WebP => image::codecs::webp::WebPDecoder::new(reader).is_ok_and(|d| d.has_animation()),
        _ => false,
    }
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
        Ok(match picture(&path) {
            Some(Picture::Heif) => bail!("{}", heif_unread(&path)),
            Some(Picture::Still(_)) => Self::Image(path),
            // Animated pictures are decoded as videos (`animation`).
            Some(Picture::Animated(_)) | None => Self::Stream(StreamSource::File(path)),
        })
    }

    /// Reached as `reach` says; a login, authorities and a stall timeout are for URL inputs only.
    pub fn reached(self, reach: Reach) -> Result<Self> {
        match self {
            Self::Stream(source @ StreamSource::Uri(_)) => Ok(Self::Stream(source.reached(reach)?)),
            other => {
                ensure!(!reach.names_url_settings(), "--source-user, --source-ca and --stall-timeout are for URL inputs");
                Ok(other)
            }
        }
    }

    /// A video file of a folder run, found there (not parsed from the command line).
    pub fn video_file(path: &Path) -> Self {
        Self::Stream(StreamSource::File(path.to_path_buf()))
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

    /// Where an output goes when none is named: beside a local input, under its name with
    /// `_{what}` added (`clip.mp4` -> `clip_anonymized.mp4`, `photos/` -> `photos_anonymized`),
    /// in place of an `_anonymized` the name already ends in (`clip_anonymized.mp4` ->
    /// `clip_restored.mp4`). A video in a container faceveil does not write becomes an MP4, a
    /// photo not in PNG or JPEG a PNG. `None` for live sources and URLs.
    pub fn default_output(&self, what: &str) -> Option<PathBuf> {
        let named = self.local_path()?;
        // `.` and `..` name no folder of their own until resolved.
        let resolved = named.file_name().is_none().then(|| std::fs::canonicalize(named).ok()).flatten();
        let path = resolved.as_deref().unwrap_or(named);
        let stem = match self {
            Self::Directory(_) => path.file_name(),
            _ => path.file_stem(),
        }?
        .to_string_lossy();
        let stem = if what == "anonymized" { &stem } else { stem.strip_suffix("_anonymized").unwrap_or(&stem) };
        let extension = match self {
            Self::Directory(_) => None,
            Self::Stream(_) if !writes_container(path) => Some("mp4".to_string()),
            Self::Stream(_) => path.extension().map(|e| e.to_string_lossy().into_owned()),
            _ => Some(match (photo_format(path), path.extension()) {
                (Some(_), Some(extension)) => extension.to_string_lossy().into_owned(),
                _ => "png".to_string(),
            }),
        };
        let name = match extension {
            Some(extension) => format!("{stem}_{what}.{extension}"),
            None => format!("{stem}_{what}"),
        };
        Some(path.parent().unwrap_or(Path::new("")).join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_goes_to_urls_only_and_never_beside_a_password_in_the_url() {
        let file = std::env::temp_dir().join(format!("faceveil-input-login-{}", std::process::id()));
        std::fs::write(&file, "secret\n").unwrap();
        let login = || Reach {
            transport: RtspTransport::Udp,
            login: Some(Login::read("ops", Some(&file), None, "the input's login").unwrap()),
            authorities: None,
            stall: None,
        };
        let Input::Stream(StreamSource::Uri(remote)) = Input::parse("rtsp://cam/s").unwrap().reached(login()).unwrap() else {
            panic!("an rtsp input")
        };
        assert_eq!(remote.reach, login());
        let Err(twice) = Input::parse("rtsp://ops:other@cam/s").unwrap().reached(login()) else {
            panic!("a second login beside the URL's was taken")
        };
        assert!(twice.to_string().contains("holds a password already") && !twice.to_string().contains("other"), "{twice}");
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/faces_720p.mp4");
        assert!(Input::parse(sample).unwrap().reached(login()).is_err());
        assert!(StreamSource::parse("webcam").reached(login()).is_err());
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn a_stall_timeout_goes_to_urls_only() {
        let patient = Reach { stall: Some(Duration::from_secs(90)), ..Reach::default() };
        let Input::Stream(url) = Input::parse("rtsp://cam/s").unwrap().reached(patient.clone()).unwrap() else {
            panic!("an rtsp input")
        };
        assert_eq!(url.stall(), Duration::from_secs(90));
        assert_eq!(StreamSource::parse("rtsp://cam/s").stall(), DEFAULT_STALL);
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/faces_720p.mp4");
        let refused = Input::parse(sample).unwrap().reached(patient.clone()).err().expect("a file took a stall timeout");
        assert!(refused.to_string().contains("--stall-timeout are for URL inputs"), "{refused}");
        assert!(StreamSource::parse("webcam").reached(patient).is_err());
        assert_eq!(StreamSource::parse("webcam").stall(), DEFAULT_STALL);
    }

    #[test]
    fn reconnects_back_off_to_half_a_minute_and_start_over_after_frames() {
        let mut r = Reconnect::new();
        let waits: Vec<f64> = (0..9).map(|_| r.next_delay(false).as_secs_f64()).collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(r.next_delay(true), Duration::from_millis(500), "a run that brought frames starts the schedule over");
        assert_eq!(r.next_delay(false), Duration::from_secs(1));
    }

    #[test]
    fn an_output_left_unnamed_goes_beside_the_input_under_its_name() {
        let file = |p: &str| Input::Stream(StreamSource::File(p.into()));
        let named = |input: Input, what: &str| input.default_output(what).map(|p| p.display().to_string());
        assert_eq!(named(file("clips/a.mp4"), "anonymized").as_deref(), Some("clips/a_anonymized.mp4"));
        assert_eq!(named(file("a.mkv"), "anonymized").as_deref(), Some("a_anonymized.mkv"));
        assert_eq!(named(file("a.webm"), "anonymized").as_deref(), Some("a_anonymized.mp4"), "no WebM writer");
        assert_eq!(named(file("a_anonymized.mp4"), "restored").as_deref(), Some("a_restored.mp4"));
        assert_eq!(named(file("a_anonymized.mp4"), "anonymized").as_deref(), Some("a_anonymized_anonymized.mp4"));
        assert_eq!(named(Input::Image("p/b.JPG".into()), "anonymized").as_deref(), Some("p/b_anonymized.JPG"));
        assert_eq!(named(Input::Image("b.tiff".into()), "anonymized").as_deref(), Some("b_anonymized.png"), "PNG or JPEG only");
        assert_eq!(named(Input::Image("scan".into()), "anonymized").as_deref(), Some("scan_anonymized.png"));
        assert_eq!(named(Input::Directory("trip/photos/".into()), "anonymized").as_deref(), Some("trip/photos_anonymized"));
        assert_eq!(named(Input::Directory("photos_anonymized".into()), "restored").as_deref(), Some("photos_restored"));
        let here = std::env::current_dir().unwrap();
        let dot = Input::Directory(".".into()).default_output("anonymized").unwrap();
        assert_eq!(dot, here.parent().unwrap().join(format!("{}_anonymized", here.file_name().unwrap().to_string_lossy())));
        assert_eq!(named(Input::parse("rtsp://camera/stream").unwrap(), "anonymized"), None);
        assert_eq!(named(Input::parse("webcam").unwrap(), "anonymized"), None);
    }
}
