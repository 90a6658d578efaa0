//! Video files, network streams and cameras through GStreamer: decode, run every frame through
//! the plugin's elements (`faceveildetect ! queue ! faceveil` to anonymize, `faceunveil` to
//! restore: the one frame path that gst-launch pipelines and applications use too), re-encode
//! with x264 and mux with the audio kept.

mod bus;
mod mux;
mod settings;
mod source;
mod transcode;
mod watch;

pub use bus::{WATCHED, element_words};
pub use settings::{Sealing, Settings, Source};
pub use source::{add_source, as_shown, each_payload_in_file, header_in_file, link_first_video};
pub use transcode::{Sei, Stage, transcode};

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use faceveil::model::Direction;
use faceveil::pipeline::WarmModels;
use faceveil::stream::sidecar;
use gst::prelude::*;
use gstfaceveil::streamdata;

use self::transcode::partial;
use crate::cli::media::colour;
use crate::cli::media::encoder::Quality;
use crate::cli::media::images::write_atomically;
use crate::cli::media::input::Input;
use crate::cli::progress;

/// Anonymizes a video file or stream into `output`; `audio`: whether its sound is written too.
pub fn anonymize(input: &Input, output: &Path, settings: &Settings, boxes: Option<&Path>, audio: bool) -> Result<()> {
    let side_path = sidecar::path_for(output);
    let side_tmp = partial(&side_path);
    let _warm = WarmModels::start(&settings.config, Direction::Anonymize);
    let elements = settings.anonymizer(Some(&side_tmp))?;
    let veil = elements.last().expect("the anonymizer has elements").clone();
    let boxes_out: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    if boxes.is_some() {
        // faceveildetect's faces ride on each frame through faceveil as region-of-interest metas.
        let src = veil.static_pad("src").expect("faceveil has src");
        let collected = boxes_out.clone();
        src.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &probe.data {
                let faces: Vec<progress::BoxJson> = streamdata::face_boxes(buffer).iter().map(progress::BoxJson::from).collect();
                let mut collected = collected.lock().unwrap();
                let frame = collected.len();
                collected.push(serde_json::json!({ "frame": frame, "pts": buffer.pts().map(|t| t.nseconds()), "faces": faces }));
            }
            gst::PadProbeReturn::Ok
        });
    }
    let t = match transcode(
        input,
        output,
        Stage {
            elements,
            sei: Sei::Write,
            pictures: settings.sealing.signing.clone(),
            signer: None,
            quality: settings.anonymized_quality(),
            audio,
            full_range: settings.sealing.full_range(),
        },
    ) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&side_tmp);
            return Err(e);
        }
    };
    // faceveil writes a sidecar where it has a header to put in it (sdn mode). A part of the
    // input that was kept keeps its sidecar and boxes too.
    let sidecar = side_tmp.exists();
    if sidecar {
        std::fs::rename(&side_tmp, &side_path)?;
    }
    if let Some(b) = boxes {
        write_atomically(b, serde_json::to_string_pretty(&*boxes_out.lock().unwrap())?.as_bytes())?;
    }
    let t = match t.whole() {
        Ok(t) => t,
        Err(e) if sidecar => bail!("{e:#} (restore data in {})", side_path.display()),
        Err(e) => return Err(e),
    };
    // What sealing cost, so that an operator weighing `--sealed-quantizer` sees it: the sealed
    // faces ride in the video (SEI) as bytes, and again in the sidecar. Only said: the output is
    // written whether or not its size can be read.
    let video = std::fs::metadata(output).ok().map(|m| m.len()).filter(|_| settings.sealing.seals());
    let sealed =
        video.map(|video| format!("{}, of which sealed faces {}", size(video), size(veil.property::<u64>("sealed-bytes"))));
    let notes: Vec<String> =
        sealed.into_iter().chain(sidecar.then(|| format!("restore data in {}", side_path.display()))).collect();
    let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
    eprintln!("{} anonymized -> {}{notes}", counted(t.frames, "frame"), output.display());
    Ok(())
}

/// "850 KB", "12.3 MB": a size as the closing line says it.
fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1_000_000 => format!("{} KB", b.div_ceil(1000)),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// Restores with the sidecar and the header where given; otherwise faceunveil finds the header
/// in the stream (SEI, tag). A stream without any fails at its end, and its output is removed.
pub fn restore(input: &Input, output: &Path, settings: &Settings, source: Source, quality: Quality) -> Result<()> {
    // Identities alone open only the sealed faces: the restore graph is not needed then.
    let _warm = settings.password.is_some().then(|| WarmModels::start(&settings.config, Direction::Restore));
    let elements = settings.restorer(source)?;
    let unveil = elements[0].clone();
    let t = transcode(
        input,
        output,
        Stage {
            elements,
            sei: Sei::Read,
            pictures: None,
            signer: settings.config.signer.clone(),
            quality,
            audio: true,
            full_range: colour::FullRange::AsYuv,
        },
    )?
    .whole()?;
    // What came back from the seals, and what stayed anonymized waiting for its face video:
    // a forensic restore is judged by both.
    let (opened, waiting) = (unveil.property::<u64>("faces-opened"), unveil.property::<u64>("faces-waiting"));
    let sealed = match (opened, waiting) {
        (0, 0) => String::new(),
        (opened, 0) => format!(" ({} from their seals)", counted(opened, "face")),
        (opened, waiting) => {
            format!(
                " ({} from their seals; {} left anonymized until their face video's next keyframe)",
                counted(opened, "face"),
                counted(waiting, "face")
            )
        }
    };
    eprintln!("{} restored -> {}{sealed}", counted(t.frames, "frame"), output.display());
    Ok(())
}

/// "1 frame", "2 frames": a count as the closing lines say it.
fn counted(n: u64, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}
