//! The command-line front end. Media I/O is GStreamer's; everything else is the library's.

pub mod args;
mod bench;
mod images;
pub mod input;
mod keygen;
mod password;
mod progress;
mod rtsp;
mod sealing;
mod serve;
mod stop;
mod video;

use anyhow::{Context, Result, bail, ensure};
use faceveil::pipeline::{Anonymizer, Restorer};
use faceveil::stream::header::StreamHeader;
use faceveil::stream::sidecar;
use faceveil::veil::FaceFinder;

use args::{AnonymizeArgs, BenchArgs, Cli, Command, RestoreArgs};
use input::Input;

pub fn run(cli: Cli) -> Result<()> {
    stop::install();
    match cli.command {
        Command::Anonymize(a) => anonymize(a),
        Command::Restore(r) => restore(r),
        Command::Bench(b) => run_bench(b),
        Command::Keygen(k) => keygen::run(&k),
        Command::Serve(s) => serve::run(&s.config),
    }
}

fn anonymize(args: AnonymizeArgs) -> Result<()> {
    // Before any password prompt: a missing output is the user's first mistake to hear about.
    ensure!(args.output.is_some() || args.serve_rtsp.is_some(), "an output is required (-o OUTPUT), or use --serve-rtsp PORT");
    let config = faceveil::config::Config { keying: args.keying.into(), ..args.common.config(args.mode.into())? };
    let password = if config.mode == faceveil::faces::effects::Mode::Sdn { Some(password::obtain(&args.common)?) } else { None };
    let input = Input::parse(&args.input)?.with_rtsp_transport(args.common.rtsp_transport);
    let mut anonymizer = Anonymizer::new(&config, password.as_ref().map(|p| p.as_bytes()))?;
    let recipients = sealing::recipients(&args.recipients, args.recipients_file.as_ref())?;
    if !recipients.is_empty() {
        ensure!(
            matches!(input, Input::Image(_) | Input::Directory(_)),
            "sealed faces (--recipient) are carried in images only so far; videos and streams are not sealed yet"
        );
        anonymizer.seal_to(&recipients, args.recipients_threshold)?;
    }
    let mut finder = FaceFinder::new(&config)?;
    if let Some(port) = args.serve_rtsp {
        return rtsp::serve(&input, port, args.serve_bitrate, finder, anonymizer);
    }
    let output = args.output.as_deref().context("an output is required (-o OUTPUT)")?;
    let boxes = args.boxes_json.as_deref();
    match &input {
        Input::Image(path) => images::anonymize_file(path, output, &mut finder, &mut anonymizer, boxes),
        Input::Directory(dir) => images::anonymize_dir(dir, output, &mut finder, &mut anonymizer, boxes),
        Input::Stream(_) => video::anonymize(&input, output, finder, anonymizer, boxes),
    }
}

fn restore(args: RestoreArgs) -> Result<()> {
    let config = args.common.config(faceveil::faces::effects::Mode::Sdn)?;
    let identities = sealing::identities(&args.identities)?;
    // With identities, a password is used only when one is given outright (no prompt).
    let password = if identities.is_empty() { Some(password::obtain(&args.common)?) } else { password::given(&args.common)? };
    let input = Input::parse(&args.input)?.with_rtsp_transport(args.common.rtsp_transport);
    ensure!(
        identities.is_empty() || matches!(input, Input::Image(_) | Input::Directory(_)),
        "sealed faces (--identity) are carried in images only so far"
    );
    let output = &args.output;
    let restorer = move |header: &StreamHeader| match &password {
        Some(p) if identities.is_empty() => Restorer::new(&config, Some(p.as_bytes()), header),
        Some(p) => Restorer::new(&config, Some(p.as_bytes()), header)?.unseal_with(&identities, header),
        None => Restorer::sealed_only(&config, &identities, header),
    };
    match &input {
        Input::Image(path) => images::restore_file(path, output, &restorer),
        Input::Directory(dir) => images::restore_dir(dir, output, &restorer),
        Input::Stream(_) => {
            let sidecar_path = match (&args.sidecar, input.local_path()) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(local)) => Some(sidecar::path_for(local)).filter(|p| p.exists()),
                (None, None) => None,
            };
            let sidecar = sidecar_path.as_deref().map(sidecar::Sidecar::read).transpose()?;
            if sidecar.is_none() && args.header.is_none() && !input.is_live() && input.local_path().is_none() {
                bail!("no sidecar given for a remote stream; pass --sidecar or --header");
            }
            video::restore(&input, output, sidecar, args.header.as_deref(), restorer)
        }
    }
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let config = args.common.config(args.mode.into())?;
    let password = "faceveil bench";
    let describe = format!(
        "mode {}, variant {}, detector {}, detect every {} frame(s) at {} px, provider {}",
        config.mode.name(),
        config.variant.as_deref().unwrap_or("default"),
        config.detector.kind.name(),
        config.detect_every,
        config.detector.max_side,
        config.runtime.provider.name()
    );
    let anonymizer = Anonymizer::new(&config, Some(password.as_bytes()))?;
    bench::bench(&args.clip, &describe, FaceFinder::new(&config)?, anonymizer, args.baseline)
}
