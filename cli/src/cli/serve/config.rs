//! The `faceveil serve` configuration file (TOML): a shared RTSP server, a metrics endpoint and
//! the cameras. Relative paths are taken from the config file's folder, so that a config and its
//! password files can be moved together. Everything is checked at load, so that a bad config (or a
//! reload of one) fails before any camera is touched.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use faceveil::faces::detect::DetectorKind;
use faceveil::faces::effects::Mode;
use faceveil::runtime::Provider;
use faceveil::secrets::SigningKey;
use gstfaceveil::SEALED_QUANTIZERS;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::space::FreeSpace;
use crate::cli::credentials::access::{self, Access, Authorities};
use crate::cli::credentials::login::{self, Login};
use crate::cli::credentials::sealing;
use crate::cli::media::input::{DEFAULT_STALL, MAX_STALL_SECONDS, Reach, RtspTransport, StreamSource};

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub rtsp: Option<RtspConfig>,
    pub metrics: Option<MetricsConfig>,
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RtspConfig {
    pub port: u16,
    /// Where the server listens: loopback unless the config opens it ("0.0.0.0" in a container).
    #[serde(default = "loopback")]
    pub address: String,
    /// The logins a client must give to play any mount (none: anyone who reaches the port).
    #[serde(default, rename = "viewer")]
    pub viewers: Vec<Viewer>,
    /// Serve over TLS (rtsps://) with this certificate chain (PEM, with its private key unless
    /// `tls_key` names the key's file).
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// One login of the RTSP server's clients; its password from a file or a variable.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Viewer {
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

impl RtspConfig {
    /// What the server asks of its clients: the viewers' logins, read now from their files or
    /// variables, and its certificate.
    pub fn access(&self) -> Result<Access> {
        let viewers = self
            .viewers
            .iter()
            .map(|v| Login::read(&v.user, v.password_file.as_deref(), v.password_env.as_deref(), &format!("viewer {}", v.user)))
            .collect::<Result<_>>()?;
        let certificate =
            self.tls_certificate.as_deref().map(|cert| access::certificate(cert, self.tls_key.as_deref())).transpose()?;
        Ok(Access { viewers, certificate })
    }

    /// What only a restart changes: where the server listens and whether it speaks TLS (its
    /// viewers and its certificate change on a reload).
    pub fn fixed(&self) -> (&str, u16, bool) {
        (&self.address, self.port, self.tls_certificate.is_some())
    }

    fn check(&mut self, base: &Path) -> Result<()> {
        let mut users = HashSet::new();
        for viewer in &mut self.viewers {
            ensure!(users.insert(viewer.user.clone()), "[rtsp]: two viewers are named {}", viewer.user);
            ensure!(
                viewer.password_file.is_none() || viewer.password_env.is_none(),
                "viewer {}: give password_file or password_env, not both",
                viewer.user
            );
            if let Some(path) = &mut viewer.password_file {
                *path = base.join(&*path);
            }
        }
        ensure!(self.tls_key.is_none() || self.tls_certificate.is_some(), "[rtsp]: a tls_key, but no tls_certificate");
        for path in [&mut self.tls_certificate, &mut self.tls_key].into_iter().flatten() {
            *path = base.join(&*path);
        }
        // Read once now so that a missing password or certificate fails the load, not a client later.
        self.access()?;
        Ok(())
    }
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Names the camera in logs, metrics labels and recording folders.
    pub name: String,
    /// rtsp:// (or any other) URL, /dev/videoN, or a video file.
    pub source: String,
    /// The user the source URL logs in as (a password in the URL is refused).
    pub source_user: Option<String>,
    /// For source_user: the file whose first line is its password.
    pub source_password_file: Option<PathBuf>,
    /// For source_user: the environment variable that holds its password.
    pub source_password_env: Option<String>,
    /// For an rtsps:// source: the certificate authorities (PEM) its certificate must chain to,
    /// instead of the system's.
    pub source_ca: Option<PathBuf>,
    /// For a URL source: the seconds it may send no frame before it counts as hung and is
    /// connected again (20 where not given); a camera that streams only while something moves
    /// needs longer.
    pub stall_timeout: Option<u64>,
    /// Files at their own frame rate (dropping frames that cannot keep up, as a live camera
    /// would); `false` reads them as fast as they can be processed, every frame.
    #[serde(default = "yes")]
    pub realtime: bool,
    #[serde(default)]
    pub mode: Mode,
    /// For sdn: the file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// For sdn: the environment variable that holds the password.
    pub password_env: Option<String>,
    #[serde(default)]
    pub detector: DetectorKind,
    #[serde(default = "detect_every")]
    pub detect_interval: u32,
    /// Faces scoring below this are not covered (with detect_interval above 1 those from a share
    /// of it, `finder::SCHEDULED_THRESHOLD_FACTOR`, are looked at again on the frames between);
    /// higher costs less in crowds and covers fewer faces.
    #[serde(default = "threshold")]
    pub threshold: f32,
    /// CPU threads for each of the camera's models; 0: half the cores each.
    #[serde(default)]
    pub threads: u32,
    /// Where the camera's models run: cpu, cuda or tensorrt. A provider that cannot load stops
    /// the camera with the reason; it never falls back to the CPU.
    #[serde(default)]
    pub provider: Provider,
    /// The most frames between the camera's keyframes; one also comes where a segment starts
    /// and where a client starts to play the mount. Fewer heal sooner a picture damaged by a
    /// lost packet (RTSP clients over UDP), for more bits or a poorer picture.
    #[serde(default = "keyframe_every")]
    pub keyframe_interval: u32,
    /// Path on the shared RTSP server, e.g. "/cam1".
    pub mount: Option<String>,
    /// The viewers (users of `[[rtsp.viewer]]`) who may play the mount; every viewer where it
    /// is not given.
    pub viewers: Option<Vec<String>>,
    pub record: Option<Record>,
    /// Age recipients (age1..., from `faceveil keygen`) to whom each face's original pixels are
    /// also sealed inside the stream, whatever the mode. In sdn mode with no password, the
    /// surrogates are keyed at random and only the recipients get the faces back.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Recipients to seal to, one per line.
    pub recipients_file: Option<PathBuf>,
    /// How many of the recipients must unseal together.
    #[serde(default = "one")]
    pub recipients_threshold: u32,
    /// For sdn: also seal each face to the password, for a restore with the password alone.
    #[serde(default)]
    pub seal_password: bool,
    /// x264's constant quantizer for the sealed face videos (1-51; 13 where not given, which
    /// restores faces to 45 dB or more): higher trades quality for size.
    pub sealed_quantizer: Option<u32>,
    /// Sign the header, each record and each coded picture of the sealed faces with this signing
    /// key (`faceveil keygen --signing`), for restores with `--signer` and `faceveil verify`.
    pub sign_with: Option<PathBuf>,
    /// For a passphrase-protected `sign_with`: the file whose first line is its passphrase.
    pub sign_with_passphrase_file: Option<PathBuf>,
    /// For a passphrase-protected `sign_with`: the environment variable that holds it (serve
    /// runs unattended: a service manager's credential, say).
    pub sign_with_passphrase_env: Option<String>,
    // Accepted only to be refused with the reason, rather than as an unknown key.
    password: Option<toml::Value>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Segments go to DIR/CAMERA-NAME/.
    pub dir: PathBuf,
    #[serde(default = "minute")]
    pub segment_seconds: u32,
    /// Segment files kept per camera: whenever a segment closes, the oldest beyond this are deleted.
    #[serde(default = "hour_of_minutes")]
    pub keep: u32,
    /// Space kept free on the disk that holds `dir`: whenever a segment closes, the oldest
    /// segments of every camera recording into `dir` are deleted until it is.
    pub min_free: Option<FreeSpace>,
}

fn loopback() -> String {
    "127.0.0.1".into()
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn threshold() -> f32 {
    faceveil::faces::detect::DEFAULT_THRESHOLD
}
fn detect_every() -> u32 {
    faceveil::config::DEFAULT_DETECT_EVERY
}
fn keyframe_every() -> u32 {
    crate::cli::media::encoder::LIVE_KEYFRAME_EVERY
}
fn minute() -> u32 {
    60
}
fn hour_of_minutes() -> u32 {
    60
}

impl CameraConfig {
    /// Where the camera's frames come from, read as the CLI reads its input. RTSP is received
    /// over TCP, the CLI's default too: over UDP a busy receiver loses packets, and with them
    /// whole frames.
    pub fn source(&self) -> Result<StreamSource> {
        let login = self
            .source_user
            .as_deref()
            .map(|user| {
                let what = format!("camera {}: source_user", self.name);
                Login::read(user, self.source_password_file.as_deref(), self.source_password_env.as_deref(), &what)
            })
            .transpose()?;
        let authorities = self.source_ca.as_deref().map(Authorities::read).transpose()?;
        let stall = self.stall_timeout.map(Duration::from_secs);
        StreamSource::parse(&self.source)
            .reached(Reach { transport: RtspTransport::Tcp, login, authorities, stall })
            .with_context(|| format!("camera {}", self.name))
    }

    /// Whether the source is live (a camera or a URL) rather than a file.
    pub fn is_live(&self) -> bool {
        StreamSource::parse(&self.source).is_live()
    }

    /// What the camera runs, on one line, for `faceveil serve --check` (no secret: the config
    /// holds none, and a source URL no password).
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{}: {}", self.name, self.source), self.mode.name().to_string()];
        let recipients = sealing::recipients(&self.recipients, self.recipients_file.as_ref()).map_or(0, |r| r.len());
        if recipients > 0 {
            parts.push(format!("sealed to {recipients} recipient(s)"));
        }
        if self.seal_password {
            parts.push("sealed to the password".into());
        }
        if self.sign_with.is_some() {
            parts.push("signed".into());
        }
        if let Some(mount) = &self.mount {
            parts.push(format!("mount {mount}"));
        }
        if let Some(record) = &self.record {
            let segments = format!("{} s segments, {} kept", record.segment_seconds, record.keep);
            parts.push(format!("recorded into {} ({segments})", record.dir.join(&self.name).display()));
        }
        parts.join(", ")
    }

    /// How long the source may send no frame before it counts as hung.
    pub fn stall(&self) -> Duration {
        self.stall_timeout.map_or(DEFAULT_STALL, Duration::from_secs)
    }

    /// The sdn password, read now from its file or variable (`None` for the one-way modes, and
    /// for sdn sealed to recipients alone).
    pub fn password(&self) -> Result<Option<Zeroizing<String>>> {
        let secret = match (&self.password_file, &self.password_env) {
            (Some(path), _) => faceveil::secrets::first_line(path, "password file")?,
            (None, Some(var)) => Zeroizing::new(
                std::env::var(var).with_context(|| format!("camera {}: ${var} (password_env) is not set", self.name))?,
            ),
            (None, None) => return Ok(None),
        };
        ensure!(!secret.is_empty(), "camera {}: the password is empty", self.name);
        Ok(Some(secret))
    }

    /// The signing key, read now with its passphrase where it needs one (`None` without
    /// `sign_with`).
    pub fn signing_key(&self) -> Result<Option<SigningKey>> {
        let Some(path) = &self.sign_with else { return Ok(None) };
        let passphrase = match (&self.sign_with_passphrase_file, &self.sign_with_passphrase_env) {
            (Some(file), _) => Some(faceveil::secrets::first_line(file, "passphrase file")?),
            (None, Some(var)) => Some(Zeroizing::new(
                std::env::var(var)
                    .with_context(|| format!("camera {}: ${var} (sign_with_passphrase_env) is not set", self.name))?,
            )),
            (None, None) => None,
        };
        let key = SigningKey::from_file(path, || passphrase.as_ref().map(|p| p.as_str().to_owned().into()))
            .with_context(|| format!("camera {}: sign_with", self.name))?;
        Ok(Some(key))
    }

    /// The recipients, checked, as the faceveil element's `recipients` value (`None`: not sealed).
    pub fn recipients(&self) -> Result<Option<String>> {
        let parsed = sealing::recipients(&self.recipients, self.recipients_file.as_ref())
            .with_context(|| format!("camera {}: recipients", self.name))?;
        Ok((!parsed.is_empty()).then(|| parsed.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")))
    }

    fn check(&mut self, base: &Path, rtsp: bool) -> Result<()> {
        let name = self.name.clone();
        ensure!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "camera name {name:?}: use letters, digits, '-' and '_' (it names files and metric labels)"
        );
        if self.password.is_some() {
            bail!(
                "camera {name}: a password is never written in the config; name a file (password_file) or an environment variable (password_env)"
            );
        }
        ensure!(!self.source.is_empty(), "camera {name}: source is empty");
        if let StreamSource::File(path) = StreamSource::parse(&self.source) {
            let path = base.join(path);
            ensure!(path.is_file(), "camera {name}: source {} does not exist", path.display());
            self.source = path.display().to_string();
        }
        ensure!(
            !login::url_has_password(&self.source),
            "camera {name}: a password is never written in the config: give the source's login as source_user with \
             source_password_file or source_password_env"
        );
        one_secret(
            &name,
            ("a source password", "source_user", self.source_user.is_some()),
            ("source_password_file", self.source_password_file.is_some()),
            ("source_password_env", self.source_password_env.is_some()),
        )?;
        let paths = [
            &mut self.source_password_file,
            &mut self.source_ca,
            &mut self.password_file,
            &mut self.recipients_file,
            &mut self.sign_with,
            &mut self.sign_with_passphrase_file,
        ];
        for path in paths.into_iter().flatten() {
            *path = base.join(&*path);
        }
        if let Some(seconds) = self.stall_timeout {
            ensure!(
                (1..=MAX_STALL_SECONDS).contains(&seconds),
                "camera {name}: stall_timeout must be between 1 and {MAX_STALL_SECONDS} seconds, not {seconds}"
            );
        }
        // Read once now, as the password below.
        self.source()?;
        // Sealed to recipients alone, the surrogates are keyed at random: the machine holds no secret.
        let sealed_to_recipients = !self.recipients.is_empty() || self.recipients_file.is_some();
        match (self.mode, &self.password_file, &self.password_env) {
            (Mode::Sdn, None, None) if !sealed_to_recipients || self.seal_password => bail!(
                "camera {name}: mode sdn needs a password: set password_file (a file) or password_env (a variable's name), or seal to recipients alone"
            ),
            (Mode::Sdn, Some(_), Some(_)) => bail!("camera {name}: give password_file or password_env, not both"),
            (Mode::Sdn, _, _) => {}
            (mode, Some(_), _) | (mode, _, Some(_)) => {
                bail!("camera {name}: mode {} takes no password (only sdn is keyed)", mode.name())
            }
            _ => {}
        }
        one_secret(
            &name,
            ("a passphrase for sign_with", "sign_with", self.sign_with.is_some()),
            ("sign_with_passphrase_file", self.sign_with_passphrase_file.is_some()),
            ("sign_with_passphrase_env", self.sign_with_passphrase_env.is_some()),
        )?;
        self.signing_key()?;
        // Read once now so that a missing secret or a bad recipient fails the load, not the camera later.
        self.password()?;
        let sealed_to = self.recipients()?.map_or(0, |r| r.split(',').count());
        ensure!(!self.seal_password || self.mode == Mode::Sdn, "camera {name}: seal_password needs mode sdn");
        if let Some(quantizer) = self.sealed_quantizer {
            let (lowest, highest) = (SEALED_QUANTIZERS.start(), SEALED_QUANTIZERS.end());
            ensure!(
                SEALED_QUANTIZERS.contains(&quantizer),
                "camera {name}: sealed_quantizer is x264's, {lowest} to {highest}, not {quantizer}"
            );
            ensure!(
                sealed_to > 0 || self.seal_password,
                "camera {name}: sealed_quantizer is for sealed faces: set recipients or seal_password too"
            );
        }
        ensure!(
            self.sign_with.is_none() || sealed_to > 0 || self.seal_password,
            "camera {name}: sign_with signs the header of sealed faces: set recipients or seal_password too"
        );
        ensure!(
            !self.seal_password || self.recipients_threshold <= 1,
            "camera {name}: seal_password opens alone, so it cannot stand beside recipients_threshold {}",
            self.recipients_threshold
        );
        ensure!(
            (1..=sealed_to.max(1)).contains(&(self.recipients_threshold as usize)),
            "camera {name}: recipients_threshold {} must be between 1 and the number of recipients ({sealed_to})",
            self.recipients_threshold
        );
        ensure!(self.detect_interval >= 1, "camera {name}: detect_interval must be 1 or more");
        ensure!(self.keyframe_interval >= 1, "camera {name}: keyframe_interval must be 1 or more");
        ensure!((0.01..=1.0).contains(&self.threshold), "camera {name}: threshold {} must be between 0.01 and 1", self.threshold);
        ensure!(self.mount.is_some() || self.record.is_some(), "camera {name}: no output: set mount, record or both");
        if let Some(mount) = &self.mount {
            ensure!(mount.len() > 1 && mount.starts_with('/'), "camera {name}: mount {mount:?} must look like \"/{name}\"");
            ensure!(rtsp, "camera {name}: mount {mount} needs an [rtsp] section with the server's port");
        }
        if let Some(record) = &mut self.record {
            ensure!(record.segment_seconds >= 1, "camera {name}: record.segment_seconds must be 1 or more");
            ensure!(record.keep >= 1, "camera {name}: record.keep must be 1 or more");
            record.dir = base.join(&record.dir);
        }
        Ok(())
    }
}

/// A camera's secret that a file or a variable gives (`file`, `env`: each key and whether it is
/// set): only beside the setting that uses it (`secret`'s words, that setting's key, whether it
/// is set), and one way.
fn one_secret(camera: &str, secret: (&str, &str, bool), file: (&str, bool), env: (&str, bool)) -> Result<()> {
    let (words, owner, owned) = secret;
    ensure!(owned || !(file.1 || env.1), "camera {camera}: {words}, but no {owner}");
    ensure!(!(file.1 && env.1), "camera {camera}: give {} or {}, not both", file.0, env.0);
    Ok(())
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("config {}", path.display()))
    }

    fn parse(text: &str, base: &Path) -> Result<Self> {
        // The line and the message, not toml's quote of the line: a mistyped key's value may be a secret.
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |span| text[..span.start].matches('\n').count() + 1);
            anyhow::anyhow!("line {line}: {}", e.message().trim_end())
        })?;
        ensure!(!config.cameras.is_empty(), "no [[camera]]");
        let (mut names, mut mounts) = (HashSet::new(), HashSet::new());
        let rtsp = config.rtsp.is_some();
        if let Some(server) = &mut config.rtsp {
            server.check(base)?;
        }
        let logins: Vec<&str> = config.rtsp.iter().flat_map(|r| &r.viewers).map(|v| v.user.as_str()).collect();
        for camera in &mut config.cameras {
            camera.check(base, rtsp)?;
            if let Some(viewers) = &camera.viewers {
                let name = &camera.name;
                ensure!(camera.mount.is_some(), "camera {name}: viewers are for a mount, and it has none");
                ensure!(!viewers.is_empty(), "camera {name}: viewers = [] would let no one play its mount");
                if let Some(unknown) = viewers.iter().find(|v| !logins.contains(&v.as_str())) {
                    bail!("camera {name}: viewer {unknown} has no login: add it as [[rtsp.viewer]] user = \"{unknown}\"");
                }
            }
            ensure!(names.insert(camera.name.clone()), "two cameras are named {}", camera.name);
            if let Some(mount) = &camera.mount {
                ensure!(mounts.insert(mount.clone()), "two cameras are mounted at {mount}");
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::media::input::Remote;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    const BLUR: &str = "[[camera]]\nname = \"a\"\nsource = \"faces_720p.mp4\"\nmode = \"blur\"\n";

    #[test]
    fn a_camera_takes_its_defaults_and_paths_from_the_config_folder() {
        let c = parse(&format!("[rtsp]\nport = 8554\n{BLUR}mount = \"/a\"\nrecord = {{ dir = \"rec\" }}\n")).unwrap();
        let cam = &c.cameras[0];
        assert!(
            cam.realtime
                && cam.detect_interval == faceveil::config::DEFAULT_DETECT_EVERY
                && cam.detector == DetectorKind::CenterFace
                && cam.threshold == faceveil::faces::detect::DetectorSettings::default().threshold
        );
        let crowd = parse(&format!("{BLUR}record = {{ dir = \"r\" }}\nthreshold = 0.6\n")).unwrap();
        assert_eq!(crowd.cameras[0].threshold, 0.6);
        assert_eq!(cam.provider, Provider::Cpu);
        let gpu = parse(&format!("{BLUR}record = {{ dir = \"r\" }}\nprovider = \"cuda\"\n")).unwrap();
        assert_eq!(gpu.cameras[0].provider, Provider::Cuda);
        assert!(
            matches!(cam.source().unwrap(), StreamSource::File(p) if p.is_absolute() || p.starts_with(env!("CARGO_MANIFEST_DIR")))
        );
        let record = cam.record.as_ref().unwrap();
        assert!(record.dir.ends_with("samples/rec") && record.segment_seconds == 60 && record.keep == 60);
        assert_eq!(record.min_free, None, "no space kept free unless asked");
        let roomy = parse(&format!("{BLUR}record = {{ dir = \"r\", min_free = \"5%\" }}\n")).unwrap();
        assert_eq!(roomy.cameras[0].record.as_ref().unwrap().min_free, Some(FreeSpace::Percent(5.0)));
        assert_eq!(cam.password().unwrap(), None);
        assert_eq!(cam.keyframe_interval, crate::cli::media::encoder::LIVE_KEYFRAME_EVERY);
        let keyed = parse(&format!("{BLUR}record = {{ dir = \"r\" }}\nkeyframe_interval = 30\n")).unwrap();
        assert_eq!(keyed.cameras[0].keyframe_interval, 30);
    }

    #[test]
    fn a_camera_sealed_to_recipients_alone_needs_no_password_and_one_sealed_to_its_password_does_in_any_mode() {
        let sdn = "[[camera]]\nname = \"a\"\nsource = \"faces_720p.mp4\"\nrecord = { dir = \"r\" }\n";
        let recipient = "recipients = [\"age1uwftpe82lnsr0ywwngrgyn0f4q30rq2l7jkc4c2wt8m2tcgwvp0sf4tucs\"]\n";
        let sealed = parse(&format!("{sdn}{recipient}")).unwrap();
        assert_eq!(sealed.cameras[0].password().unwrap(), None, "keyed at random");
        assert!(error(&format!("{sdn}{recipient}seal_password = true\n")).contains("mode sdn needs a password"));
        assert!(parse(&format!("{BLUR}record = {{ dir = \"r\" }}\n{recipient}")).is_ok(), "a blurred camera seals too");
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = error(&format!("{BLUR}record = {{ dir = \"r\" }}\npasswd = \"hunter2\"\n"));
        assert!(unknown.contains("line 6: unknown field `passwd`") && !unknown.contains("hunter2"), "{unknown}");
        assert!(error(&format!("{BLUR}\n")).contains("no output"));
        let space = error(&format!("{BLUR}record = {{ dir = \"r\", min_free = \"lots\" }}\n"));
        assert!(space.contains("line 5") && space.contains("neither a size (\"2 GiB\""), "{space}");
        let gpu = error(&format!("{BLUR}record = {{ dir = \"r\" }}\nprovider = \"gpu\"\n"));
        assert!(gpu.contains("line 6") && gpu.contains("`cpu`, `cuda`"), "{gpu}");
        assert!(error(&format!("{BLUR}mount = \"/a\"\n")).contains("needs an [rtsp] section"));
        let sdn = "[[camera]]\nname = \"a\"\nsource = \"faces_720p.mp4\"\nrecord = { dir = \"r\" }\n";
        assert!(error(sdn).contains("mode sdn needs a password"));
        assert!(error(&format!("{sdn}password = \"hunter2\"\n")).contains("never written in the config"));
        assert!(error(&format!("{sdn}password_env = \"FACEVEIL_TEST_UNSET_VARIABLE\"\n")).contains("is not set"));
        assert!(error(&format!("{sdn}password_file = \"no-such-file\"\n")).contains("cannot read password file"));
        assert!(error(&format!("{sdn}password_env = \"PATH\"\nrecipients = [\"age1x\"]\n")).contains("camera a: recipients"));
        assert!(
            error(&format!("{BLUR}record = {{ dir = \"r\" }}\nrecipients_file = \"none\"\n"))
                .contains("cannot read recipients file")
        );
        assert!(error(&format!("{sdn}password_env = \"PATH\"\nrecipients_threshold = 2\n")).contains("between 1 and the number"));
        assert!(
            error(&format!("{BLUR}record = {{ dir = \"r\" }}\nseal_password = true\n")).contains("seal_password needs mode sdn")
        );
        assert!(error(&format!("{sdn}password_env = \"PATH\"\nsign_with = \"none.key\"\n")).contains("cannot read signing key"));
        let unsealed = error(&format!("{sdn}password_env = \"PATH\"\nsealed_quantizer = 20\n"));
        assert!(unsealed.contains("sealed_quantizer is for sealed faces"), "{unsealed}");
        let quantizer = error(&format!("{sdn}password_env = \"PATH\"\nseal_password = true\nsealed_quantizer = 60\n"));
        assert!(quantizer.contains("sealed_quantizer is x264's, 1 to 51, not 60"), "{quantizer}");
        assert!(error(&format!("{BLUR}record = {{ dir = \"r\" }}\nthreshold = 1.5\n")).contains("threshold 1.5 must be between"));
        assert!(
            error(&format!("{BLUR}record = {{ dir = \"r\" }}\nkeyframe_interval = 0\n")).contains("keyframe_interval must be 1")
        );
        let twice = format!("{BLUR}record = {{ dir = \"r\" }}\n{BLUR}record = {{ dir = \"r\" }}\n");
        assert!(error(&twice).contains("two cameras are named a"));
        assert!(error("[[camera]]\nname = \"a b\"\nsource = \"x\"\n").contains("use letters"));
        assert!(error("[[camera]]\nname = \"a\"\nsource = \"none.mp4\"\nmode = \"blur\"\n").contains("does not exist"));
    }

    #[test]
    fn a_signing_key_signs_only_sealed_faces() {
        let dir = std::env::temp_dir().join(format!("faceveil-serve-signing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cam.key"), SigningKey::generate().to_file_text(None).unwrap().as_bytes()).unwrap();
        let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/faces_720p.mp4");
        let camera = format!(
            "[[camera]]\nname = \"a\"\nsource = \"{}\"\nrecord = {{ dir = \"r\" }}\npassword_env = \"PATH\"\nsign_with = \"cam.key\"\n",
            clip.display()
        );
        let unsealed = format!("{:#}", Config::parse(&camera, &dir).unwrap_err());
        assert!(unsealed.contains("sign_with signs the header of sealed faces"), "{unsealed}");
        let sealed = Config::parse(&format!("{camera}seal_password = true\n"), &dir).unwrap();
        assert_eq!(sealed.cameras[0].sign_with.as_deref(), Some(dir.join("cam.key").as_path()));
        // A protected key opens with its passphrase from a file or a variable, and not without.
        let locked = SigningKey::generate();
        let text = locked.to_file_text(Some("camera words".to_string().into())).unwrap();
        std::fs::write(dir.join("locked.key"), text.as_bytes()).unwrap();
        std::fs::write(dir.join("locked.pass"), "camera words\n").unwrap();
        let protected = camera.replace("cam.key", "locked.key") + "seal_password = true\n";
        let refused = format!("{:#}", Config::parse(&protected, &dir).unwrap_err());
        assert!(refused.contains("passphrase-protected"), "{refused}");
        let from_file = Config::parse(&format!("{protected}sign_with_passphrase_file = \"locked.pass\"\n"), &dir).unwrap();
        assert_eq!(from_file.cameras[0].signing_key().unwrap().unwrap().signer(), locked.signer());
        let unset = format!("{protected}sign_with_passphrase_env = \"FACEVEIL_TEST_UNSET_VARIABLE\"\n");
        assert!(format!("{:#}", Config::parse(&unset, &dir).unwrap_err()).contains("is not set"));
        let blur = camera.replace("password_env = \"PATH\"\nsign_with = \"cam.key\"\n", "mode = \"blur\"\n");
        let stray = format!("{:#}", Config::parse(&format!("{blur}sign_with_passphrase_env = \"PATH\"\n"), &dir).unwrap_err());
        assert!(stray.contains("a passphrase for sign_with, but no sign_with"), "{stray}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_documented_example_loads() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let text = std::fs::read_to_string(dir.join("serve.example.toml")).unwrap();
        // Its password variable is the reader's to set; PATH stands in for it.
        let c = Config::parse(&text.replace("FACEVEIL_ENTRANCE_PASSWORD", "PATH"), &dir).unwrap();
        assert_eq!(c.cameras.len(), 2);
        assert_eq!(c.rtsp.unwrap().address, "127.0.0.1");
    }

    #[test]
    fn live_sources_are_told_from_files() {
        let cam = |source: &str| CameraConfig {
            source: source.into(),
            ..parse(&format!("{BLUR}record = {{ dir = \"r\" }}")).unwrap().cameras[0].clone()
        };
        let remote = Remote { url: "rtsp://10.0.0.2/s".into(), reach: Reach::default() };
        assert_eq!(cam("rtsp://10.0.0.2/s").source().unwrap(), StreamSource::Uri(remote));
        assert_eq!(cam("/dev/video2").source().unwrap(), StreamSource::Camera("/dev/video2".into()));
        assert_eq!(cam("webcam").source().unwrap(), StreamSource::Camera("/dev/video0".into()));
        assert!(cam("rtsp://h/s").is_live() && !cam("a.mp4").is_live());
        // A stall timeout of its own: for URL sources, checked as the config loads.
        let patient = CameraConfig { stall_timeout: Some(90), ..cam("rtsp://10.0.0.2/s") };
        assert_eq!((patient.stall(), patient.source().unwrap().stall()), (Duration::from_secs(90), Duration::from_secs(90)));
        assert_eq!(cam("rtsp://10.0.0.2/s").stall(), DEFAULT_STALL);
        let url = "source = \"rtsp://10.0.0.2/s\"\nmode = \"blur\"\nrecord = { dir = \"r\" }\n";
        let camera = |rest: &str| format!("[[camera]]\nname = \"a\"\n{url}{rest}");
        assert!(parse(&camera("stall_timeout = 90\n")).is_ok());
        assert!(error(&camera("stall_timeout = 0\n")).contains("stall_timeout must be between 1 and 86400 seconds, not 0"));
        assert!(
            error(&format!("{BLUR}record = {{ dir = \"r\" }}\nstall_timeout = 90\n")).contains("a stall timeout are for URL")
        );
    }

    #[test]
    fn logins_come_from_files_and_variables_never_from_the_config() {
        let dir = std::env::temp_dir().join(format!("faceveil-serve-logins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cam.pass"), "camera-secret\n").unwrap();
        let camera = |source: &str, login: &str| {
            format!("[[camera]]\nname = \"a\"\nsource = \"{source}\"\nmode = \"blur\"\nrecord = {{ dir = \"r\" }}\n{login}")
        };
        let said = |text: &str| format!("{:#}", Config::parse(text, &dir).unwrap_err());
        let inline = said(&camera("rtsp://admin:camera-secret@10.0.0.2/s", ""));
        assert!(inline.contains("never written in the config") && !inline.contains("camera-secret"), "{inline}");
        let login =
            Config::parse(&camera("rtsp://10.0.0.2/s", "source_user = \"admin\"\nsource_password_file = \"cam.pass\"\n"), &dir)
                .unwrap();
        let StreamSource::Uri(remote) = login.cameras[0].source().unwrap() else { panic!("an rtsp source") };
        let expected = Login::read("admin", Some(&dir.join("cam.pass")), None, "x").unwrap();
        assert_eq!(remote.reach.login, Some(expected));
        assert!(!format!("{login:?}").contains("camera-secret"), "the config prints no password");
        let unset = said(&camera(
            "rtsp://10.0.0.2/s",
            "source_user = \"admin\"\nsource_password_env = \"FACEVEIL_TEST_UNSET_VARIABLE\"\n",
        ));
        assert!(unset.contains("$FACEVEIL_TEST_UNSET_VARIABLE"), "{unset}");
        let file = dir.join("clip.mp4");
        std::fs::write(&file, b"not read here").unwrap();
        let on_a_file =
            said(&camera(&file.display().to_string(), "source_user = \"admin\"\nsource_password_file = \"cam.pass\"\n"));
        assert!(on_a_file.contains("are for URL sources"), "{on_a_file}");
        assert!(said(&camera("rtsp://h/s", "source_password_file = \"cam.pass\"\n")).contains("no source_user"));

        // The server's viewers: read at load, each name once.
        let viewers = |rest: &str| format!("[rtsp]\nport = 8554\n{rest}{}mount = \"/a\"\n", camera("rtsp://h/s", ""));
        let served = Config::parse(&viewers("[[rtsp.viewer]]\nuser = \"ops\"\npassword_file = \"cam.pass\"\n"), &dir).unwrap();
        let logins = served.rtsp.unwrap().access().unwrap().viewers;
        assert_eq!(logins, vec![Login::read("ops", Some(&dir.join("cam.pass")), None, "x").unwrap()]);
        assert!(said(&viewers("[[rtsp.viewer]]\nuser = \"ops\"\n")).contains("name a file"));
        let twice = "[[rtsp.viewer]]\nuser = \"ops\"\npassword_env = \"PATH\"\n".repeat(2);
        assert!(said(&viewers(&twice)).contains("two viewers are named ops"));
        // A camera for some viewers: named among the logins, and mounted.
        let ops = "[[rtsp.viewer]]\nuser = \"ops\"\npassword_env = \"PATH\"\n";
        let some = Config::parse(&format!("{}viewers = [\"ops\"]\n", viewers(ops)), &dir).unwrap();
        assert_eq!(some.cameras[0].viewers, Some(vec!["ops".to_string()]));
        let unknown = said(&format!("{}viewers = [\"guest\"]\n", viewers(ops)));
        assert!(unknown.contains("viewer guest has no login"), "{unknown}");
        assert!(said(&format!("{}viewers = []\n", viewers(ops))).contains("would let no one play"));
        let unmounted = format!("[rtsp]\nport = 8554\n{ops}{}viewers = [\"ops\"]\n", camera("rtsp://h/s", ""));
        assert!(said(&unmounted).contains("viewers are for a mount"), "{}", said(&unmounted));
        // TLS: a certificate and its key that can be read, authorities for rtsps:// sources only.
        assert!(said(&viewers("tls_key = \"cam.pass\"\n")).contains("a tls_key, but no tls_certificate"));
        assert!(said(&viewers("tls_certificate = \"cam.pass\"\n")).contains("cannot read the TLS certificate"));
        let ca = |source: &str| said(&camera(source, "source_ca = \"cam.pass\"\n"));
        assert!(ca("rtsps://h/s").contains("cannot read the certificate authorities"), "{}", ca("rtsps://h/s"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
