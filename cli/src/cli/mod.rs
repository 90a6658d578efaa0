//! The command-line front end. Media I/O is GStreamer's; everything else is the library's.
//!
//! `media` reads and writes pictures, videos and streams; `credentials` reads what the user
//! proves or holds (passwords, logins, recipients, keys); the commands (`bench`, `keygen`,
//! `verify`, `serve`, and anonymize and restore here) stand on both.

pub mod args;
mod bench;
mod credentials;
mod keygen;
mod media;
mod progress;
mod serve;
mod stop;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use faceveil::faces::detect::DetectorKind;
use faceveil::faces::effects::Mode;
use faceveil::finder::FaceFinder;
use faceveil::model::Direction;
use faceveil::model::keys::PasswordKeys;
use faceveil::pipeline::{Anonymizer, Restorer, Signing, WarmModels};
use faceveil::secrets::SealedLayout;
use faceveil::stream::header::StreamHeader;
use faceveil::stream::sidecar;

use args::{AnonymizeArgs, BenchArgs, Cli, Command, RestoreArgs};
use credentials::{access, login, password, sealing};
use media::encoder::{DEFAULT_CRF, LIVE_KEYFRAME_EVERY, Quality, SEALED_RESTORE_CRF};
use media::input::Input;
use media::{images, rtsp, video, virtualcam};

/// How an error reads to the user: its causes on one line, with the password of any URL hidden.
pub fn error_words(e: &anyhow::Error) -> String {
    login::hide_passwords(&format!("{e:#}"))
}

pub fn run(cli: Cli) -> Result<()> {
    stop::install();
    match cli.command {
        Command::Anonymize(a) => anonymize(a),
        Command::Restore(r) => restore(r),
        Command::Bench(b) => run_bench(b),
        Command::Keygen(k) => keygen::run(&k),
        Command::Serve(s) if s.check => serve::check(&s.config),
        Command::Serve(s) => serve::run(&s.config),
        Command::Verify(v) => verify::run(&v),
    }
}

fn anonymize(mut args: AnonymizeArgs) -> Result<()> {
    let input = args.common.input(&args.input)?;
    ensure!(!args.recursive || matches!(input, Input::Directory(_)), "--recursive is for folders");
    // Before any password prompt: a missing output is the user's first mistake to hear about.
    if args.serve_rtsp.is_none() && args.virtual_camera.is_none() {
        let otherwise = ", or use --serve-rtsp PORT or --virtual-camera DEVICE";
        args.output = Some(output_or_beside(args.output.take(), &input, "anonymized", otherwise)?);
    }
    let config = faceveil::config::Config { keying: args.keying.into(), ..args.common.config(args.mode.into())? };
    let recipients = sealing::recipients(&args.recipients, args.recipients_file.as_ref())?;
    let password = match config.mode {
        Mode::Sdn if recipients.is_empty() || args.seal_password => Some(password::obtain(&args.common)?),
        // Sealed to recipients, a password is asked for nowhere: the machine then holds no secret.
        Mode::Sdn => password::given_or_random(&args.common)?,
        _ => None,
    };
    let sealed = !recipients.is_empty() || args.seal_password;
    ensure!(!args.sealed_lossless || sealed, "--sealed-lossless needs --recipient, --recipients-file or --seal-password");
    ensure!(
        args.sealed_quantizer.is_none() || sealed,
        "--sealed-quantizer needs --recipient, --recipients-file or --seal-password"
    );
    ensure!(
        args.sealed_quantizer.is_none() || !args.sealed_lossless,
        "--sealed-quantizer and --sealed-lossless do not go together: lossless faces have no quantizer"
    );
    ensure!(!args.seal_password || password.is_some(), "--seal-password needs the sdn mode, whose password it seals to");
    ensure!(
        args.sign_with.is_none() || sealed,
        "--sign-with signs the header of sealed faces: give --recipient, --recipients-file or --seal-password too"
    );
    let signing = args.sign_with.as_deref().map(sealing::signing_key).transpose()?;
    // Videos and streams go through the plugin's elements, which build the anonymizer themselves.
    let sealing = video::Sealing {
        recipients: sealing::element_recipients(&recipients),
        threshold: u32::try_from(args.recipients_threshold).unwrap_or(u32::MAX),
        lossless: args.sealed_lossless,
        quantizer: args.sealed_quantizer,
        to_password: args.seal_password,
        signing: signing.clone(),
        ..Default::default()
    };
    let audio = !args.no_audio;
    let Input::Stream(_) = &input else {
        ensure!(args.serve_rtsp.is_none(), "--serve-rtsp needs a video file, an RTSP URL or a camera");
        ensure!(args.virtual_camera.is_none(), "--virtual-camera needs a camera, a video file or an RTSP URL");
        ensure!(audio || matches!(input, Input::Directory(_)), "--no-audio is for videos: a photo has no sound");
        ensure!(
            args.sealed_quantizer.is_none() || matches!(input, Input::Directory(_)),
            "--sealed-quantizer is for videos: a photo's faces are sealed bit-exact"
        );
        let mut anonymizer = match &password {
            None if config.mode == Mode::Sdn => Anonymizer::keyed_at_random(&config)?,
            password => Anonymizer::new(&config, password.as_ref().map(|p| p.as_bytes()))?,
        };
        if sealed {
            // A photo's pixels are not signed: its record and sealed faces are.
            let signing = signing.as_ref().map(|key| Signing { key, pictures: false });
            anonymizer.seal_to(&recipients, args.recipients_threshold, args.seal_password, SealedLayout::Lossless, signing)?;
        }
        // A photo has no next frame to track into: detection on it, at the full threshold.
        let mut finder = FaceFinder::new(&faceveil::config::Config { detect_every: 1, ..config.clone() })?;
        let output = args.output.as_deref().context("an output is required (-o OUTPUT)")?;
        let boxes = args.boxes_json.as_deref();
        let Input::Directory(dir) = &input else {
            let photo = input.local_path().context("an image has a path")?;
            return images::anonymize_file(photo, output, &mut finder, &mut anonymizer, boxes);
        };
        // A folder's videos each get their own stream: their own salt, header and sidecar.
        let settings = video::Settings { config: config.clone(), attributes: args.common.attributes.clone(), password, sealing };
        let video = |path: &Path, out: &Path| video::anonymize(&Input::video_file(path), out, &settings, None, audio);
        let folder = images::Folder::of(dir, output, args.recursive)?;
        return images::anonymize_dir(&folder, &mut finder, &mut anonymizer, boxes, &video);
    };
    let settings = video::Settings { config, attributes: args.common.attributes.clone(), password, sealing };
    if let Some(port) = args.serve_rtsp {
        let viewer = args
            .serve_user
            .as_deref()
            .map(|user| {
                login::Login::read_or_ask(user, args.serve_password_file.as_deref(), "FACEVEIL_SERVE_PASSWORD", "--serve-user")
            })
            .transpose()?;
        let certificate =
            args.serve_tls_cert.as_deref().map(|cert| access::certificate(cert, args.serve_tls_key.as_deref())).transpose()?;
        let access = access::Access { viewers: viewer.into_iter().collect(), certificate };
        let coding = rtsp::Coding {
            bitrate: args.serve_bitrate,
            keyframe_interval: args.serve_keyframe_interval.unwrap_or(LIVE_KEYFRAME_EVERY),
        };
        return rtsp::serve(&input, port, coding, &settings, &access);
    }
    if let Some(device) = &args.virtual_camera {
        return virtualcam::run(&input, device, &settings);
    }
    let output = args.output.as_deref().context("an output is required (-o OUTPUT)")?;
    video::anonymize(&input, output, &settings, args.boxes_json.as_deref(), audio)
}

/// The output named on the command line, or else the one beside the input
/// ([`Input::default_output`]), said so. A live source has none: `otherwise` ends that error.
/// A file's output goes into a folder that must be there (a folder's output is made, as deep as
/// it is named), so that a mistyped folder is said before a password is asked and any work done.
fn output_or_beside(given: Option<PathBuf>, input: &Input, what: &str, otherwise: &str) -> Result<PathBuf> {
    if let Some(output) = given {
        if !matches!(input, Input::Directory(_)) {
            let folder = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            match std::fs::metadata(folder) {
                Ok(meta) => ensure!(meta.is_dir(), "the output's folder {} is not a folder", folder.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bail!("the output's folder {} does not exist", folder.display())
                }
                Err(e) => bail!("the output's folder {} cannot be used: {e}", folder.display()),
            }
        }
        return Ok(output);
    }
    let output =
        input.default_output(what).with_context(|| format!("an output is required for a live source (-o OUTPUT){otherwise}"))?;
    eprintln!("faceveil: no -o given: writing {}", output.display());
    Ok(output)
}

fn restore(args: RestoreArgs) -> Result<()> {
    let input = args.common.input(&args.input)?;
    ensure!(!args.recursive || matches!(input, Input::Directory(_)), "--recursive is for folders");
    let output = &output_or_beside(args.output.clone(), &input, "restored", "")?;
    // A video's header is found once, before a password is asked for: an output that no
    // password restores is said so first.
    let video = match &input {
        Input::Stream(_) => Some(VideoHeader::find(&input, &args)?),
        _ => None,
    };
    if args.identities.is_empty() {
        let photo = match &input {
            Input::Image(path) => std::fs::read(path).ok().and_then(|bytes| images::embedded(path, &bytes).ok()),
            _ => None,
        };
        let header = photo.map(|(header, _)| header).or_else(|| video.as_ref().and_then(|v| v.known.clone()));
        if let Some(why) = header.and_then(|h| h.no_password_restores()) {
            bail!(why);
        }
    }
    // With identities, a password is used only when one is given outright (no prompt).
    let password =
        if args.identities.is_empty() { Some(password::obtain(&args.common)?) } else { password::given(&args.common)? };
    // Sealed faces alone open without the SDN: a key holder's machine needs no model.
    let mut config = args.common.config_with(Mode::Sdn, password.is_some())?;
    config.signer = args.signer.as_deref().map(str::parse).transpose()?;
    config.revoked = sealing::revoked(&args.revoked)?;
    // Only a stream has a video header to be found.
    let Some(video) = video else {
        let folder = matches!(input, Input::Directory(_));
        ensure!(folder || !args.lossless, "--lossless is for videos; an image is restored losslessly when written as PNG");
        ensure!(folder || !args.lossless_input, "--lossless-input is for videos; a PNG is restored exactly, a JPEG as lossy");
        ensure!(
            !folder || (args.sidecar.is_none() && args.header.is_none()),
            "--sidecar and --header name one video's: a folder's videos are restored with the sidecars beside them"
        );
        let identities = sealing::identities(&args.identities)?;
        // A folder's photos from one run share their salt: the key is derived once for them
        // all, and the restore graph stays open from one photo to the next.
        let keys = password.as_ref().map(|p| PasswordKeys::new(p.as_bytes()));
        let restorer = |header: &StreamHeader| {
            note_signer(header, config.signer.is_some());
            if password.is_some() && identities.is_empty() {
                note_sealed_to_recipients_only(header);
            }
            Restorer::open_with_keys(&config, keys.as_ref(), &identities, header)
        };
        let Input::Directory(dir) = &input else {
            return images::restore_file(input.local_path().context("an image has a path")?, output, &restorer);
        };
        let _warm = password.is_some().then(|| WarmModels::start(&config, Direction::Restore));
        let video = |path: &Path, out: &Path| {
            let input = Input::video_file(path);
            restore_video(&input, out, &args, config.clone(), password.clone(), VideoHeader::find(&input, &args)?)
        };
        return images::restore_dir(&images::Folder::of(dir, output, args.recursive)?, &restorer, &video);
    };
    restore_video(&input, output, &args, config, password, video)
}

/// Where a video's header comes from: the sidecar `args` names, else the one beside a file; the
/// header given on the command line, else, for a file without a sidecar, the first header its
/// stream data carries (so that a cut that begins between two headers is restored from its
/// first picture).
struct VideoHeader {
    sidecar: Option<PathBuf>,
    /// The header text the restore starts from, where it is not the sidecar's.
    text: Option<String>,
    /// The header, where one of these reads; a header that does not read is faceunveil's to
    /// report.
    known: Option<StreamHeader>,
}

impl VideoHeader {
    fn find(input: &Input, args: &RestoreArgs) -> Result<Self> {
        let sidecar = match (&args.sidecar, input.local_path()) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(local)) => Some(sidecar::path_for(local)).filter(|p| p.exists()),
            (None, None) => None,
        };
        if sidecar.is_none() && args.header.is_none() && !input.is_live() && input.local_path().is_none() {
            bail!("no sidecar given for a remote stream; pass --sidecar or --header");
        }
        let text = match (&args.header, &sidecar, input.local_path()) {
            (None, None, Some(local)) if !input.is_live() => video::header_in_file(local).map(|h| h.encode()),
            _ => args.header.clone(),
        };
        let known = match (&text, &sidecar) {
            (Some(text), _) => StreamHeader::decode(text).ok(),
            (None, Some(path)) => sidecar::read_header(path).ok(),
            (None, None) => None,
        };
        Ok(Self { sidecar, text, known })
    }
}

/// Restores one video file or stream into `output`, from where `found` says its header comes,
/// and written at the quality the faces it opens need.
fn restore_video(
    input: &Input,
    output: &Path,
    args: &RestoreArgs,
    config: faceveil::config::Config,
    password: Option<zeroize::Zeroizing<String>>,
    found: VideoHeader,
) -> Result<()> {
    let VideoHeader { sidecar, text: header, known: known_header } = found;
    let mut sealing = match args.identities.as_slice() {
        [] => video::Sealing::default(),
        paths => {
            let (identity, passphrase) = sealing::identity_files(paths)?;
            video::Sealing { identity: Some(identity), passphrase, ..Default::default() }
        }
    };
    sealing.revoked = sealing::element_revoked(&args.revoked)?;
    // Faces sealed to the password come back from their seals, like an identity's: the restored
    // file is written to keep them. Where the header only arrives in the stream (its SEI), the
    // password restore's quality is kept.
    if args.identities.is_empty() {
        known_header.iter().for_each(note_sealed_to_recipients_only);
    }
    if let Some(header) = &known_header {
        note_signer(header, args.signer.is_some());
    }
    let sealed_to_password = known_header.is_some_and(|h| h.sealed.is_some_and(|e| e.password.is_some()));
    let quality = match (args.lossless, args.identities.is_empty() && !sealed_to_password) {
        (true, _) => Quality::Lossless,
        (false, true) => Quality::Crf(DEFAULT_CRF),
        (false, false) => Quality::CrfUncapped(SEALED_RESTORE_CRF),
    };
    let settings = video::Settings { config, attributes: args.common.attributes.clone(), password, sealing };
    let source = video::Source {
        sidecar: sidecar.as_deref(),
        header: header.as_deref(),
        lossless: args.lossless_input,
        live: input.is_live(),
    };
    video::restore(input, output, &settings, source, quality)
}

/// Says, once a run, that a restore by password alone of faces sealed to recipients only gives
/// back the password restore of the surrogates, not the sealed faces, which need an identity.
fn note_sealed_to_recipients_only(header: &StreamHeader) {
    static SAID: std::sync::Once = std::sync::Once::new();
    if !header.keyed_at_random && header.sealed.as_ref().is_some_and(|envelope| envelope.password.is_none()) {
        SAID.call_once(|| {
            eprintln!(
                "faceveil: note: these faces are also sealed to recipients; the password restores the surrogates, \
                 and --identity gives back the sealed originals"
            )
        });
    }
}

/// Names who signed the output, once, where the command does not already require a signer: the
/// signature says who made it only to someone who checks that name.
fn note_signer(header: &StreamHeader, required: bool) {
    static SAID: std::sync::Once = std::sync::Once::new();
    if let (false, Ok(Some(signer))) = (required, header.signer()) {
        SAID.call_once(|| eprintln!("faceveil: note: this output is signed by {signer}; --signer {signer} refuses any other"));
    }
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let config = args.common.config(args.mode.into())?;
    // Which CenterFace model runs (int8 or float) changes the detect stage's time.
    let detector = match config.detector.kind {
        DetectorKind::CenterFace => {
            let model = config.detector.centerface_model(&config.runtime)?;
            format!("centerface ({})", model.path.file_name().unwrap_or_default().to_string_lossy())
        }
        kind => kind.name().to_string(),
    };
    let describe = format!(
        "mode {}, variant {}, detector {detector}, detect every {} frame(s) at {} px, provider {}",
        config.mode.name(),
        config.variant.as_deref().unwrap_or("default"),
        config.detect_every,
        config.detector.max_side,
        config.runtime.provider.name()
    );
    let recipients = sealing::recipients(&args.recipients, args.recipients_file.as_ref())?;
    ensure!(!args.sealed_lossless || !recipients.is_empty(), "--sealed-lossless needs --recipient or --recipients-file");
    let describe = match recipients.len() {
        0 => describe,
        n => format!("{describe}, sealed to {n} recipient(s){}", if args.sealed_lossless { " losslessly" } else { "" }),
    };
    let sealing = video::Sealing {
        recipients: sealing::element_recipients(&recipients),
        threshold: 1,
        lossless: args.sealed_lossless,
        ..Default::default()
    };
    let password = Some(zeroize::Zeroizing::new("faceveil bench".to_string()));
    let settings = video::Settings { config, attributes: args.common.attributes.clone(), password, sealing };
    bench::bench(&args.clip, &describe, &settings, args.baseline)
}
