//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use faceveil::config::Config;
use faceveil::faces::detect::{DetectorKind, DetectorSettings};
use faceveil::faces::effects::Mode;
use faceveil::model::keys::Keying;
use faceveil::runtime::Provider;

use crate::cli::credentials::access::Authorities;
use crate::cli::credentials::login::{self, Login};
use crate::cli::media::input::{Input, MAX_STALL_SECONDS, Reach, RtspTransport};

const EXAMPLES: &str = "\
Examples:
  # Anonymize a clip with the SDN model (password from the environment); audio is kept (leave it
  # out with --no-audio) and a sidecar out.mp4.faceveil is written for restores
  FACEVEIL_PASSWORD='correct horse' faceveil anonymize in.mp4 -o out.mp4

  # Blur every face in a folder of photos (no password needed)
  faceveil anonymize photos/ -o blurred/ --mode blur

  # Anonymize a camera and publish it at rtsp://localhost:8554/faceveil
  faceveil anonymize rtsp://camera.local/stream --serve-rtsp 8554 --password-file key.txt

  # Many cameras from one config (RTSP mounts, recordings, metrics)
  faceveil serve cameras.toml

  # Get the original faces back
  FACEVEIL_PASSWORD='correct horse' faceveil restore out.mp4 -o restored.mp4";

#[derive(Parser)]
#[command(name = "faceveil", version, about = "Reversible, real-time face anonymization", after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Replace the faces in an image, a folder of photos and videos, a video file, an RTSP feed or a webcam.
    Anonymize(AnonymizeArgs),
    /// Restore faces anonymized in sdn mode, with the same password and attributes, or sealed faces with an identity.
    Restore(RestoreArgs),
    /// Measure end-to-end speed (decode, anonymize, encode) on a clip, with a per-stage breakdown.
    Bench(BenchArgs),
    /// Make an identity for sealed restores (or, with --signing, a key that signs them): writes
    /// the private key file, prints its recipient (or signer).
    Keygen(KeygenArgs),
    /// Run many cameras from a config file: RTSP mounts, recorded segments, metrics; edits reload it.
    Serve(ServeArgs),
    /// Check that a signed output is its signer's and whole, without opening any face: the
    /// header's signature, every frame record's and every coded picture's, that no frame is
    /// missing, that the records reach the recording's signed end, and that each picture is
    /// shown at the time its record gives.
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Anonymized photo or video file, or a folder of videos (serve's segments) checked as one
    /// recording in the order of their names, with the signed ends (or checkpoints) kept beside
    /// them
    pub input: String,
    /// The signer it must be signed by (faceveil-signer-..., printed by `faceveil keygen
    /// --signing`); without it, the signer found is named and its signatures checked
    #[arg(long, value_name = "PUBLIC")]
    pub signer: Option<String>,
    /// Refuse an output signed by the key this revocation file revokes (`faceveil keygen
    /// --revoke`); repeat it for several
    #[arg(long, value_name = "FILE")]
    pub revoked: Vec<PathBuf>,
    /// Check this sidecar's records instead of the video's own (by default its SEI, and the
    /// sidecar beside it only where the SEI was lost)
    #[arg(long, value_name = "FILE")]
    pub sidecar: Option<PathBuf>,
    /// Accept a recording without its signed end: one still being written, or whose writer was
    /// stopped before it could end it (a crash, a kill). Frames cut off its end then do not show,
    /// but for those before a checkpoint serve kept in their place
    #[arg(long)]
    pub open_end: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The cameras and outputs (TOML; see docs/serve.example.toml)
    pub config: PathBuf,
    /// Check the config as a start would (its secrets, recipients, signing keys and source files
    /// read, the GStreamer elements looked for), say what it would run, and exit without
    /// starting anything: for a change before it is deployed
    #[arg(long)]
    pub check: bool,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Where the identity (private key) is written, or the signing key, or the revocation; an
    /// existing file is never overwritten
    #[arg(short, long)]
    pub output: PathBuf,
    /// Make a signing key for `anonymize --sign-with` instead, and print its signer (the public
    /// key `restore --signer` takes)
    #[arg(long)]
    pub signing: bool,
    /// Write the revocation of this signing key instead (to --output, which may be public): kept
    /// apart from the key, it is what its owner gives `verify --revoked` and `restore --revoked`
    /// once the key may have been copied. Make it as soon as the key is made: a key lost with its
    /// machine can no longer make one
    #[arg(long, value_name = "KEY", conflicts_with_all = ["signing", "passphrase", "passphrase_file"])]
    pub revoke: Option<PathBuf>,
    /// Protect the file with a passphrase ($FACEVEIL_IDENTITY_PASSPHRASE, or
    /// $FACEVEIL_SIGNING_PASSPHRASE for a signing key; else asked twice)
    #[arg(long)]
    pub passphrase: bool,
    /// Protect the file with the passphrase on this file's first line
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Video file to run
    pub clip: PathBuf,
    #[arg(long, value_enum, default_value = "sdn")]
    pub mode: ModeArg,
    /// Also time decode and encode alone, for the cost faceveil adds
    #[arg(long)]
    pub baseline: bool,
    /// Also seal each face to this recipient, as `anonymize --recipient` does, and time it (the
    /// `seal` stage); repeatable
    #[arg(long = "recipient", value_name = "PUBLIC")]
    pub recipients: Vec<String>,
    /// Recipients to seal to, one per line
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
    /// Seal bit-exact, as `anonymize --sealed-lossless` does
    #[arg(long)]
    pub sealed_lossless: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Reversible synthetic identity keyed by the password
    Sdn,
    /// Strong blur (one-way; --recipient seals the originals for the recipients alone)
    Blur,
    /// Coarse blocks (one-way; as blur)
    Pixelate,
    /// Black fill (one-way; as blur)
    Solid,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Sdn => Mode::Sdn,
            ModeArg::Blur => Mode::Blur,
            ModeArg::Pixelate => Mode::Pixelate,
            ModeArg::Solid => Mode::Solid,
        }
    }
}

#[derive(Args)]
pub struct AnonymizeArgs {
    /// Image, folder of photos and videos, video file, rtsp:// URL, or `webcam` / /dev/videoN
    pub input: String,
    /// Output image, folder or video file (.mp4, .mkv, or .ts, which also holds resolution
    /// changes); default: beside the input, NAME_anonymized.EXT (.mp4 for videos in other containers)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// A folder's subfolders too, each written into the same subfolder of the output
    #[arg(short, long)]
    pub recursive: bool,
    #[arg(long, value_enum, default_value = "sdn")]
    pub mode: ModeArg,
    /// Write every frame's detected faces to this JSON file
    #[arg(long, value_name = "FILE")]
    pub boxes_json: Option<PathBuf>,
    /// Write the video without its sound: faceveil replaces faces, not voices, and a voice
    /// identifies a person as a face does (--serve-rtsp and --virtual-camera send no sound)
    #[arg(long, conflicts_with_all = ["serve_rtsp", "virtual_camera"])]
    pub no_audio: bool,
    /// Publish the anonymized stream at rtsp://0.0.0.0:PORT/faceveil instead of writing a file
    #[arg(long, value_name = "PORT")]
    pub serve_rtsp: Option<u16>,
    /// Write the anonymized picture to this v4l2loopback device (e.g. /dev/video10), which
    /// video-call applications then offer as a camera; the input is usually a webcam
    #[arg(long, value_name = "DEVICE", conflicts_with_all = ["output", "serve_rtsp", "boxes_json"])]
    pub virtual_camera: Option<PathBuf>,
    /// Bitrate of the served stream in kbit/s (x264 with live settings, constant bitrate);
    /// by default it follows the frame size and rate: 3.1 Mbit/s at 1280x720 and 24 fps
    #[arg(long, value_name = "KBPS", requires = "serve_rtsp",
          value_parser = clap::value_parser!(u32).range(64..=200_000))]
    pub serve_bitrate: Option<u32>,
    /// Key the served stream at most this many pictures apart (it keys wherever a client starts
    /// to play as well); default 250. Fewer shortens what a client over UDP shows of a lost
    /// packet, which lasts until the next keyframe, at a cost in bits: a keyframe of live x264
    /// takes them from the pictures around it. Over TCP nothing is lost
    #[arg(long, value_name = "FRAMES", requires = "serve_rtsp",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub serve_keyframe_interval: Option<u32>,
    /// Ask every client of --serve-rtsp for this user's login (RTSP digest authentication); its
    /// password from --serve-password-file or $FACEVEIL_SERVE_PASSWORD, else a prompt. Without
    /// it anyone who reaches the port may play the stream
    #[arg(long, value_name = "USER", requires = "serve_rtsp")]
    pub serve_user: Option<String>,
    /// Read the password of --serve-user from this file (first line)
    #[arg(long, value_name = "FILE", requires = "serve_user")]
    pub serve_password_file: Option<PathBuf>,
    /// Serve over TLS (rtsps://) with this certificate chain (PEM, with its private key unless
    /// --serve-tls-key names the key's file)
    #[arg(long, value_name = "FILE", requires = "serve_rtsp")]
    pub serve_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --serve-tls-cert
    #[arg(long, value_name = "FILE", requires = "serve_tls_cert")]
    pub serve_tls_key: Option<PathBuf>,
    /// How sdn faces are keyed: `track` gives every tracked face its own key, so that a key
    /// fitted on one known face opens no other; `stream` shares one key, which is what a
    /// restore from the pixels alone (no SEI, no sidecar) needs
    #[arg(long, value_enum, default_value = "track")]
    pub keying: KeyingArg,
    /// Also seal each face's original pixels to this recipient (age1..., printed by `faceveil
    /// keygen`), for a restore with its identity; repeatable. Sealed faces ride in the image's
    /// metadata (lossless), or in the video's SEI and sidecar (a small video of each tracked
    /// face, restored to about 45 dB; see --sealed-lossless). With no password given outright
    /// ($FACEVEIL_PASSWORD, --password-file) none is asked for: the surrogates are keyed at
    /// random and only the recipients get the faces back
    #[arg(long = "recipient", value_name = "PUBLIC")]
    pub recipients: Vec<String>,
    /// Recipients to seal to, one per line
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
    /// How many of the recipients must unseal together (1: any one of them)
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub recipients_threshold: usize,
    /// Seal a video's faces bit-exact (each tracked face as a lossless x264 video, 1.3 to 3.2
    /// times the default's size), for a restore with --lossless that gives the original's bytes
    #[arg(long)]
    pub sealed_lossless: bool,
    /// x264's constant quantizer for a video's sealed faces: 13 by default, which restores them
    /// to 45 dB or more; each step up takes about a tenth off their size and half a decibel off
    /// the restored faces (docs/SECURITY.md, "Smaller sealed faces")
    #[arg(long, value_name = "QP", value_parser = clap::value_parser!(u32).range(sealed_quantizers()))]
    pub sealed_quantizer: Option<u32>,
    /// Also seal each face's original pixels to the password, so that `restore` with the password
    /// alone gives them back as sealed (about 45 dB for a video, bit-exact for an image) and
    /// refuses a wrong password; the output grows by the sealed faces (docs/SECURITY.md)
    #[arg(long)]
    pub seal_password: bool,
    /// Sign the stream header of the sealed faces with this signing key (`faceveil keygen
    /// --signing`), so that `restore --signer` can tell this output from one a forger rebuilt
    /// with other faces; a protected key's passphrase comes from $FACEVEIL_SIGNING_PASSPHRASE or
    /// a prompt
    #[arg(long, value_name = "FILE")]
    pub sign_with: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeyingArg {
    Track,
    Stream,
}

impl From<KeyingArg> for Keying {
    fn from(k: KeyingArg) -> Self {
        match k {
            KeyingArg::Track => Keying::Track,
            KeyingArg::Stream => Keying::Stream,
        }
    }
}

#[derive(Args)]
pub struct RestoreArgs {
    /// Anonymized image, folder, video file or rtsp:// URL
    pub input: String,
    /// Output image, folder or video file; default: beside the input, NAME_restored.EXT (NAME
    /// without an _anonymized it ends in)
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// A folder's subfolders too, each written into the same subfolder of the output
    #[arg(short, long)]
    pub recursive: bool,
    /// Sidecar written at anonymization (default: INPUT.faceveil when it exists)
    #[arg(long, value_name = "FILE")]
    pub sidecar: Option<PathBuf>,
    /// The stream header as text, when neither the stream nor a sidecar carries it
    #[arg(long, value_name = "JSON")]
    pub header: Option<String>,
    /// Open the sealed faces with this identity (from `faceveil keygen`); repeat it where the
    /// output needs several together. Without a password only the sealed faces come back
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Write a restored video losslessly (x264 at quantizer 0), so that faces sealed with
    /// --sealed-lossless stay bit-exact in the file; by default restores that open sealed faces
    /// (with identities, or with the password they were sealed to) are written at x264 CRF 1,
    /// others at CRF 23
    #[arg(long)]
    pub lossless: bool,
    /// The video never went through a lossy codec (x264 at quantizer 0, FFV1): the password
    /// restore then undoes the surrogate exactly. By default it eases off where the surrogate is
    /// nearly black or white, where a codec's error would be multiplied, and leaves out the
    /// finest colour detail that 4:2:0 kept too little of
    #[arg(long)]
    pub lossless_input: bool,
    /// Restore only an output whose header this signer signed (faceveil-signer-..., printed by
    /// `faceveil keygen --signing`): an output unsigned, signed by another key or altered since
    /// is refused and nothing is written, but for a last picture not as signed (where a writer
    /// killed within a picture stops), which is left out with a warning
    #[arg(long, value_name = "PUBLIC")]
    pub signer: Option<String>,
    /// Refuse an output signed by the key this revocation file revokes (`faceveil keygen
    /// --revoke`), with or without --signer, and write nothing; repeat it for several
    #[arg(long, value_name = "FILE")]
    pub revoked: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct CommonArgs {
    /// Read the password from this file (first line); default: $FACEVEIL_PASSWORD, else a prompt
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// SDN model folder or sdn.json (default: the bundled model)
    #[arg(long, value_name = "PATH", env = "FACEVEIL_MODEL")]
    pub model: Option<PathBuf>,
    /// Model variant from sdn.json; default: the model's default, and for restore the input's own
    #[arg(long)]
    pub variant: Option<String>,
    /// ONNX Runtime execution provider: cpu, cuda or tensorrt (never falls back silently)
    #[arg(long, default_value = "cpu")]
    pub provider: Provider,
    /// CPU threads each model (detector, SDN) may use; 0: half the cores each while anonymizing (the two run at once), every core for a restore
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Face detector: centerface or seeta
    #[arg(long, default_value = "centerface")]
    pub detector: DetectorKind,
    #[arg(long, default_value_t = DetectorSettings::default().threshold, help = threshold_help())]
    pub threshold: f32,
    /// Ignore faces smaller than this many pixels
    #[arg(long, default_value_t = DetectorSettings::default().min_face_size)]
    pub min_face_size: f32,
    #[arg(long, default_value_t = DetectorSettings::default().max_side, help = detect_size_help())]
    pub detect_size: usize,
    #[arg(long, default_value_t = faceveil::config::DEFAULT_DETECT_EVERY, help = detect_interval_help())]
    pub detect_interval: u32,
    /// Scale of the blended ellipse (1 = as trained)
    #[arg(long, default_value_t = 1.0)]
    pub mask_scale: f32,
    /// Attribute factors and edits, e.g. "smiling=1,mustache=-2"; needed again to restore
    #[arg(long, default_value = "")]
    pub attributes: String,
    /// How rtsp:// inputs are received: tcp (no lost frames), udp, or auto
    #[arg(long, value_enum, default_value = "tcp")]
    pub rtsp_transport: RtspTransport,
    /// The user an rtsp:// or http(s):// input logs in as; its password from
    /// --source-password-file or $FACEVEIL_SOURCE_PASSWORD, else a prompt (one written in the
    /// URL shows in the process list)
    #[arg(long, value_name = "USER")]
    pub source_user: Option<String>,
    /// Read the input's login password from this file (first line)
    #[arg(long, value_name = "FILE", requires = "source_user")]
    pub source_password_file: Option<PathBuf>,
    /// Certificate authorities (PEM) an rtsps:// or https:// input's certificate must chain to,
    /// instead of the system's (a camera's own, say)
    #[arg(long, value_name = "FILE")]
    pub source_ca: Option<PathBuf>,
    /// For a URL input: how long it may send no frame before it counts as hung (20 s by
    /// default); a recording then ends with its frames kept, a served stream connects again. A
    /// camera that streams only while something moves needs longer
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_STALL_SECONDS))]
    pub stall_timeout: Option<u64>,
}

/// What needs no SDN model, for the error that says one is missing.
const RUNS_WITHOUT_MODEL: &str = "blur, pixelate, solid and a restore with --identity alone need none";

impl CommonArgs {
    /// The input named `text`, with how a URL is received and the login it is given. A URL
    /// with a password in it is taken, with a warning.
    pub fn input(&self, text: &str) -> Result<Input> {
        let login = self
            .source_user
            .as_deref()
            .map(|user| {
                Login::read_or_ask(user, self.source_password_file.as_deref(), "FACEVEIL_SOURCE_PASSWORD", "the input's login")
            })
            .transpose()?;
        let authorities = self.source_ca.as_deref().map(Authorities::read).transpose()?;
        let stall = self.stall_timeout.map(Duration::from_secs);
        let input = Input::parse(text)?.reached(Reach { transport: self.rtsp_transport, login, authorities, stall })?;
        if login::url_has_password(text) {
            eprintln!(
                "faceveil: warning: the input URL holds a password, which other users of this machine can read in the process \
                 list: give it with --source-user and $FACEVEIL_SOURCE_PASSWORD or --source-password-file instead"
            );
        }
        Ok(input)
    }

    /// The configuration for `mode`; the sdn mode needs its model, detection and the one-way
    /// modes run without one.
    pub fn config(&self, mode: Mode) -> Result<Config> {
        self.config_with(mode, mode == Mode::Sdn)
    }

    /// The configuration for `mode`, with `needs_model`: whether a missing SDN model is an error
    /// (a restore that opens sealed faces alone never runs the model).
    pub fn config_with(&self, mode: Mode, needs_model: bool) -> Result<Config> {
        let model = match &self.model {
            Some(m) => m.clone(),
            None if !needs_model => faceveil::runtime::assets::sdn_model().unwrap_or_default(),
            None => faceveil::runtime::assets::sdn_model().with_context(|| format!("no SDN model ({RUNS_WITHOUT_MODEL})"))?,
        };
        let mut c = Config::new(model);
        c.mode = mode;
        c.variant = self.variant.clone();
        c.runtime.provider = self.provider;
        c.runtime.intra_threads = self.threads;
        c.detector = DetectorSettings {
            kind: self.detector,
            threshold: self.threshold,
            min_face_size: self.min_face_size,
            max_side: self.detect_size,
            ..DetectorSettings::default()
        };
        c.detect_every = self.detect_interval.max(1);
        c.mask_scale = self.mask_scale;
        c.attributes = faceveil::model::parse_attributes(&self.attributes)?;
        Ok(c)
    }
}

/// --detect-size's help, with the face width below which faces may be missed (the rule of the
/// note a large video gets).
fn detect_size_help() -> String {
    let sure = faceveil::faces::detect::SURE_FACE_WIDTH;
    format!(
        "Longest side frames are downscaled to for detection (video; a larger photo is also searched in full-resolution tiles). Faces narrower than about {sure:.0} px at that size may be missed: {:.0} px in a 1920x1080 video at 640",
        sure * 3.0
    )
}

/// --detect-interval's help, with how often the frame path looks at the whole frame.
fn detect_interval_help() -> String {
    format!(
        "Run the detector every N frames and track in between (and at once on a scene cut); above 1, each run looks only where the picture changed, and at the whole frame every {} frames, every N+1 frames while every face in view scores at least {} times the threshold, and the whole frame on every frame while a face in view that is not large and still scores less",
        faceveil::finder::WHOLE_FRAME_EVERY,
        faceveil::finder::SURE_SCORE_FACTOR
    )
}

/// --threshold's help, with the factor scheduled detections apply as the frame path defines it.
fn threshold_help() -> String {
    format!(
        "Minimum detection confidence (with --detect-interval above 1, faces from {} of it are looked at again on the frames between)",
        faceveil::finder::SCHEDULED_THRESHOLD_FACTOR
    )
}

/// The quantizers `--sealed-quantizer` takes: the faceveil element's, as clap's ranges are
/// written (in i64).
fn sealed_quantizers() -> std::ops::RangeInclusive<i64> {
    let range = gstfaceveil::SEALED_QUANTIZERS;
    i64::from(*range.start())..=i64::from(*range.end())
}
