//! One run of a video through the elements: decode, the stage, encode and mux, with what
//! stopped it short said as such.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use faceveil::secrets::{Signer, SigningKey};
use faceveil::timing::StageTimes;
use gst::prelude::*;
use gstfaceveil::streamdata;

use super::bus::run_to_eos;
use super::mux::{Container, add_chain, container_for, into_muxer, pass_aac_through};
use super::settings::stage_queue;
use super::source::{add_source, as_shown};
use super::watch::{Progress, count_frames, follow_goodbye, follow_input_end, guard_size_changes};
use crate::cli::media::checkpoint::CheckpointFile;
use crate::cli::media::colour;
use crate::cli::media::elements::{init, make};
use crate::cli::media::encoder::{Encoder, Quality};
use crate::cli::media::input::{self, Input, StreamSource};
use crate::cli::media::writes;
use crate::cli::progress;

/// What a transcode runs the decoded video through, and which way faceveil's SEI crosses the
/// codec.
pub struct Stage {
    /// Linked in this order between the decoded frames and the encoder.
    pub elements: Vec<gst::Element>,
    pub sei: Sei,
    /// Signs each coded picture where `sei` writes ([`Sealing::signing`](super::Sealing::signing)).
    pub pictures: Option<SigningKey>,
    /// Where `sei` reads: the signer a restore requires, whose signed pictures are checked
    /// before they are decoded.
    pub signer: Option<Signer>,
    pub quality: Quality,
    /// Whether the input's audio is written too.
    pub audio: bool,
    /// How a full-range input reaches the elements.
    pub full_range: colour::FullRange,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sei {
    /// The frames' SEI metas (from faceveil) are written into the encoded stream.
    Write,
    /// The input's SEI is put back on the decoded frames (for faceunveil).
    Read,
    /// Neither: a baseline without faceveil.
    Neither,
}

pub struct Transcode {
    pub frames: u64,
    /// Where the stage's time went (for `faceveil bench`).
    pub times: StageTimes,
    /// Why the output holds only a part of the input (cut short, a change of size it cannot
    /// hold, Ctrl-C or SIGTERM), where it does: the part is kept, with what belongs to it (the
    /// sidecar), and the run then ends in this error.
    pub incomplete: Option<String>,
}

impl Transcode {
    /// The run, or its [`Self::incomplete`] as the error it is.
    pub fn whole(self) -> Result<Self> {
        match self.incomplete {
            Some(why) => Err(anyhow!(why)),
            None => Ok(self),
        }
    }
}

/// The sink pads where the video and audio branches take the decoded input.
pub(super) type Entries = Arc<Mutex<Vec<gst::Pad>>>;

/// Decodes `input`, runs its video through `stage`, encodes to `output` (through a temporary
/// file, renamed on success), keeping the audio unless `stage` leaves it out; an anonymized
/// output keeps only faceveil's header among the tags
/// ([`faceveil_tags_only`](super::mux::faceveil_tags_only)).
pub fn transcode(input: &Input, output: &Path, stage: Stage) -> Result<Transcode> {
    init()?;
    let Input::Stream(source) = input else { bail!("not a video input") };
    if let Some(local) = input.local_path()
        && input::same_file(local, output)
    {
        bail!("refusing to overwrite the input {}", local.display());
    }
    let tmp = partial(output);
    let pipeline = gst::Pipeline::new();
    let dec = add_source(&pipeline, source)?;
    if stage.audio {
        pass_aac_through(&dec);
    }
    let progress = Arc::new(Progress::default());
    if let StreamSource::Uri(_) = source {
        follow_goodbye(&dec, progress.clone());
    }
    if stage.sei == Sei::Read {
        streamdata::sei_from_parser(&dec, stage.signer.clone())?;
    }
    let Container { muxer: mux, holds_size_changes } = container_for(output)?;
    let sink = gst::ElementFactory::make("filesink").property("location", tmp.to_str().context("non-UTF-8 path")?).build()?;
    pipeline.add_many([&mux, &sink])?;
    // A signed video keeps its newest checkpoint beside it while it is written; dropped after
    // the pipeline has stopped, when the stream's end is in the video and its sidecar, and kept
    // where writing failed midway.
    let mut checkpoints = match (stage.sei, &stage.pictures) {
        (Sei::Write, Some(_)) => Some(CheckpointFile::between(output, &pipeline, &mux, &sink)?),
        _ => {
            mux.link(&sink)?;
            None
        }
    };
    let live = input.is_live();
    // A live recording that a full disk stops is kept: what its last write left of a picture
    // is taken off again.
    let last_write = live.then(|| {
        let last = Arc::default();
        writes::watch(&sink, &last);
        last
    });
    let have_video = Arc::new(Mutex::new(false));
    let link_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::new(Mutex::new(None));
    let entries = Entries::default();
    {
        let (pipeline_weak, mux, progress, have_video, link_error, entries) =
            (pipeline.downgrade(), mux.clone(), progress.clone(), have_video.clone(), link_error.clone(), entries.clone());
        let (elements, sei, quality, audio, full_range) =
            (stage.elements.clone(), stage.sei, stage.quality, stage.audio, stage.full_range);
        let pictures = stage.pictures.clone();
        dec.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else { return };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(s) = caps.structure(0) else { return };
            follow_input_end(pad, progress.clone());
            let result = (|| -> Result<()> {
                if s.name().starts_with("video/") && !*have_video.lock().unwrap() {
                    *have_video.lock().unwrap() = true;
                    let odd = s.get::<i32>("width").unwrap_or(0) % 2 == 1 || s.get::<i32>("height").unwrap_or(0) % 2 == 1;
                    let filter = gst::ElementFactory::make("capsfilter")
                        .property("caps", colour::processing_caps(Some(&caps), full_range))
                        .build()?;
                    if !holds_size_changes {
                        guard_size_changes(&filter.static_pad("src").expect("capsfilter has src"), progress.clone());
                    }
                    let last = elements.last().unwrap_or(&filter).clone();
                    count_frames(&last.static_pad("src").context("the last stage element has no src pad")?, progress.clone());
                    // A queue after the stage lets encoding run beside it on the next frames.
                    // Turned upright after the size guard, which sees the stored size only.
                    let mut chain = vec![make("queue")?, make("videoconvert")?, filter];
                    chain.extend(as_shown()?);
                    chain.extend(elements.iter().cloned());
                    chain.push(stage_queue()?);
                    let encoder = Encoder::new(odd, live, quality)?;
                    if sei == Sei::Write {
                        encoder.write_sei(pictures.clone())?;
                    }
                    chain.extend(encoder.elements);
                    into_muxer(&pipeline, pad, &chain, &mux, &entries, sei)?;
                    if live {
                        let (w, h) = (s.get::<i32>("width").unwrap_or(0), s.get::<i32>("height").unwrap_or(0));
                        eprintln!("faceveil: source connected ({w}x{h})");
                    }
                } else if audio && s.name() == "audio/mpeg" {
                    // AAC as it came (`pass_aac_through`); aacparse frames it as the muxer
                    // wants (ADTS for MPEG-TS).
                    into_muxer(&pipeline, pad, &[make("queue")?, make("aacparse")?], &mux, &entries, sei)?;
                } else if audio && s.name().starts_with("audio/") {
                    let chain = vec![make("queue")?, make("audioconvert")?, make("audioresample")?, make("avenc_aac")?];
                    into_muxer(&pipeline, pad, &chain, &mux, &entries, sei)?;
                } else {
                    if s.name().starts_with("video/") {
                        // Left out rather than written as it came: its faces were never looked at.
                        eprintln!("faceveil: note: the input has another video stream, which is left out: only its first is processed and written");
                    }
                    let fake = make("fakesink")?;
                    add_chain(&pipeline, std::slice::from_ref(&fake))?;
                    pad.link(&fake.static_pad("sink").expect("fakesink has sink"))?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                link_error.lock().unwrap().get_or_insert(e);
            }
        });
    }
    let bar = progress::bar(0, "frames");
    let result = run_to_eos(&pipeline, &dec, &entries, &stage.elements, &progress, &bar, live.then(|| source.stall()));
    let duration = pipeline.query_duration::<gst::ClockTime>().map(|d| d.nseconds());
    // Read before the elements stop, which drops what they measured.
    let mut times = StageTimes::default();
    for element in &stage.elements {
        times.add(&streamdata::stage_times(element));
    }
    let _ = pipeline.set_state(gst::State::Null);
    bar.finish_and_clear();
    let frames = progress.frames.load(Ordering::SeqCst);
    let failure = link_error.lock().unwrap().take();
    // The bus says why an element failed (a bad header, a missing model); linking that element
    // only that it could not start.
    let outcome = match (failure, result) {
        (_, Err(e)) | (Some(e), Ok(())) => Err(e),
        (None, Ok(())) if frames == 0 && crate::cli::stop::requested() => {
            Err(anyhow!("stopped before the input delivered a video frame"))
        }
        (None, Ok(())) if frames == 0 && progress.closed.load(Ordering::SeqCst) => {
            Err(anyhow!("the RTSP server closed the connection before it sent a video frame"))
        }
        (None, Ok(())) if frames == 0 && progress.stalled.load(Ordering::SeqCst) => {
            Err(anyhow!("the source sent no video frame for {} s", source.stall().as_secs()))
        }
        (None, Ok(())) if !*have_video.lock().unwrap() => Err(anyhow!("the input has no video stream")),
        (None, Ok(())) if frames == 0 => Err(anyhow!("the input has no decodable video frames")),
        (None, Ok(())) => Ok(()),
    };
    if let Err(e) = outcome {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let unwritten = progress.unwritten.lock().unwrap().take();
    let cut = match (&unwritten, &last_write) {
        // One that cannot be cut back is kept as it is, and said.
        (Some(_), Some(last)) => last.lock().unwrap().cut_back().unwrap_or_else(|e| {
            eprintln!("faceveil: {e:#}");
            None
        }),
        _ => None,
    };
    std::fs::rename(&tmp, output).with_context(|| format!("cannot write {}", output.display()))?;
    // A file whose streams all end before its declared duration lost frames; what decoded is
    // kept. One stream reaching it is enough: the video of a whole file may end before its audio.
    let end = progress.end_ns.load(Ordering::SeqCst);
    let reached = end.max(progress.input_end_ns.load(Ordering::SeqCst));
    if let Some(checkpoints) = checkpoints.take().filter(|_| unwritten.is_some()) {
        checkpoints.keep();
    }
    let incomplete = if let Some(why) = unwritten {
        Some(format!(
            "{why}: the recording stopped there, and what was written of its {frames} frames is kept in {}, cut where writing failed{}",
            output.display(),
            cut.map_or(String::new(), |cut| format!(" (the {} bytes of its last write, cut short, taken off)", cut.bytes))
        ))
    } else if let Some(change) = progress.size_change.lock().unwrap().take() {
        Some(format!("{change}: the {frames} frames before it were written to {}", output.display()))
    } else if let Some(d) = duration.filter(|d| !live && !crate::cli::stop::requested() && reached + 200_000_000 < *d) {
        Some(format!(
            "the input ends early (truncated or damaged): {frames} frames up to {:.2} s of {:.2} s were written to {}",
            end as f64 / 1e9,
            d as f64 / 1e9,
            output.display()
        ))
    } else if progress.stalled.load(Ordering::SeqCst) {
        Some(format!(
            "the source sent no frame for {} s (a camera that hangs, a server that closed the connection without ending the stream): the {frames} frames before were written to {}",
            source.stall().as_secs(),
            output.display()
        ))
    } else if let Some(why) = progress.failed.lock().unwrap().take() {
        Some(format!("the source failed: {why}; the {frames} frames before were written to {}", output.display()))
    } else if progress.closed.load(Ordering::SeqCst) {
        Some(format!(
            "the RTSP server closed the connection without ending the stream (the server or its camera stopped, or the network failed): the {frames} frames before were written to {}",
            output.display()
        ))
    } else if !live && crate::cli::stop::requested() {
        // A file stopped before its end is a part of it: kept, and said so, not a finished run.
        let of = duration.map_or(String::new(), |d| format!(" of {:.2} s", d as f64 / 1e9));
        Some(format!(
            "stopped (Ctrl-C or SIGTERM): {frames} frames up to {:.2} s{of} were written to {}",
            end as f64 / 1e9,
            output.display()
        ))
    } else {
        None
    };
    Ok(Transcode { frames, times, incomplete })
}

/// `path` with ".partial" added: where a file is written before it is complete.
pub(super) fn partial(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}
