//! `faceveil bench CLIP`: end-to-end speed (decode, anonymize, encode) with a per-stage
//! breakdown, the latency faceveil adds to each frame, and memory (peak, and over the run).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use faceveil::model::Direction;
use faceveil::pipeline::WarmModels;
use faceveil::timing::StageTimes;
use gst::prelude::*;

use crate::cli::media::colour::FullRange;
use crate::cli::media::encoder::{DEFAULT_CRF, Quality};
use crate::cli::media::input::Input;
use crate::cli::media::video::{self, Sei, Settings, Stage};

#[derive(Default)]
struct Latency {
    total: Duration,
    max: Duration,
    frames: u64,
}

impl Latency {
    fn add(&mut self, took: Duration) {
        self.total += took;
        self.max = self.max.max(took);
        self.frames += 1;
    }
}

/// A field of /proc/self/status in MB: VmHWM (peak) or VmRSS (now).
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resident memory is sampled every this many frames, to show whether it stays flat.
const RSS_EVERY: u64 = 150;

/// Up to ten samples, evenly spread over the run, and the last one.
fn rss_summary(samples: &[(u64, f64)]) -> String {
    let step = samples.len().div_ceil(10).max(1);
    let mut picked: Vec<&(u64, f64)> = samples.iter().step_by(step).collect();
    if let Some(last) = samples.last().filter(|l| picked.last() != Some(l)) {
        picked.push(last);
    }
    picked.iter().map(|(f, mb)| format!("{f}: {mb:.0}")).collect::<Vec<_>>().join(", ")
}

/// Frames, wall time, latency, stage times, memory samples (frame, MB) and the time to the first
/// anonymized frame, of one run.
type RunResult = (u64, Duration, Latency, StageTimes, Vec<(u64, f64)>, Option<Duration>);

/// Times the work of `element` on each frame: when a frame goes in, and what its time inside
/// comes to when it leaves (frames leave in the order they came).
fn time_element(element: &gst::Element, took: impl Fn(Duration) + Send + Sync + 'static) {
    let entered: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let (sink, src) = (element.static_pad("sink").expect("a filter has sink"), element.static_pad("src").expect("and src"));
    let arrivals = entered.clone();
    sink.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        arrivals.lock().unwrap().push_back(Instant::now());
        gst::PadProbeReturn::Ok
    });
    src.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if let Some(at) = entered.lock().unwrap().pop_front() {
            took(at.elapsed());
        }
        gst::PadProbeReturn::Ok
    });
}

/// Runs the clip through decode and encode, with the elements `faceveil anonymize` uses (or
/// nothing, for the baseline).
fn run(input: &Input, settings: Option<&Settings>) -> Result<RunResult> {
    let out = std::env::temp_dir().join(format!("faceveil-bench-{}.mkv", std::process::id()));
    let latency = Arc::new(Mutex::new(Latency::default()));
    let rss: Arc<Mutex<Vec<(u64, f64)>>> = Arc::default();
    let first_frame: Arc<Mutex<Option<Duration>>> = Arc::default();
    // Start-up counts from here: the elements are made, then their models load and the key is
    // derived as the pipeline starts, then the first frame is decoded and anonymized.
    let started = Instant::now();
    let _warm = settings.map(|s| WarmModels::start(&s.config, Direction::Anonymize));
    let stage = match settings {
        Some(settings) => {
            let elements = settings.anonymizer(None)?;
            let (detect, veil) = (&elements[0], elements.last().expect("the anonymizer has elements"));
            // A frame's added latency is its time in faceveildetect plus its time in faceveil.
            // Time spent waiting in the queue between them is left out: reading a file fills
            // it, a live source at its own rate does not.
            let found_in: Arc<Mutex<VecDeque<Duration>>> = Arc::default();
            let f_in = found_in.clone();
            time_element(detect, move |took| f_in.lock().unwrap().push_back(took));
            let (lat, samples, first) = (latency.clone(), rss.clone(), first_frame.clone());
            time_element(veil, move |took| {
                first.lock().unwrap().get_or_insert_with(|| started.elapsed());
                let found = found_in.lock().unwrap().pop_front().unwrap_or_default();
                let mut lat = lat.lock().unwrap();
                lat.add(found + took);
                if lat.frames.is_multiple_of(RSS_EVERY)
                    && let Some(mb) = status_mb("VmRSS:")
                {
                    samples.lock().unwrap().push((lat.frames, mb));
                }
            });
            Stage {
                elements,
                sei: Sei::Write,
                pictures: None,
                signer: None,
                // As `faceveil anonymize` codes it.
                quality: settings.anonymized_quality(),
                audio: true,
                full_range: FullRange::AsRgb,
            }
        }
        None => Stage {
            elements: Vec::new(),
            sei: Sei::Neither,
            pictures: None,
            signer: None,
            quality: Quality::Crf(DEFAULT_CRF),
            audio: true,
            full_range: FullRange::AsRgb,
        },
    };
    let t = video::transcode(input, &out, stage);
    let wall = started.elapsed();
    let _ = std::fs::remove_file(&out);
    let t = t?.whole()?;
    let latency = std::mem::take(&mut *latency.lock().unwrap());
    let rss = std::mem::take(&mut *rss.lock().unwrap());
    let first_frame = *first_frame.lock().unwrap();
    Ok((t.frames, wall, latency, t.times, rss, first_frame))
}

fn ms(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1000.0 / n.max(1) as f64
}

pub fn bench(clip: &Path, describe: &str, settings: &Settings, baseline: bool) -> Result<()> {
    let input = Input::parse(clip.to_str().unwrap_or_default())?;
    if !matches!(input, Input::Stream(_)) {
        bail!("bench needs a video file");
    }
    // The anonymization runs first so that its memory numbers are its own: memory a pipeline
    // freed stays with the process, and a baseline run before would count in them.
    let (frames, wall, latency, times, rss, first_frame) = run(&input, Some(settings))?;
    let peak = status_mb("VmHWM:");
    println!("clip: {}", clip.display());
    println!("setting: {describe}");
    println!("end to end: {frames} frames in {:.2} s = {:.1} fps", wall.as_secs_f64(), frames as f64 / wall.as_secs_f64());
    if let Some(first) = first_frame {
        println!(
            "start-up: first frame anonymized {:.0} ms after the run began (models, key, decoder)",
            first.as_secs_f64() * 1000.0
        );
    }
    println!(
        "added latency per frame: mean {:.2} ms, max {:.2} ms",
        ms(latency.total, latency.frames),
        latency.max.as_secs_f64() * 1000.0
    );
    println!(
        "detections: {} of {} frames ({} at scene cuts, {} of the changed part only; {} more left out, nothing had changed; \
         large faces sat {} looks out; {} put off a frame, every face sure), \
         faces processed: {}",
        times.detections,
        times.frames,
        times.cut_detections,
        times.region_detections,
        times.skipped_detections,
        times.rested_faces,
        times.sure_waits,
        times.faces
    );
    println!("ms per frame by stage:");
    for (name, d) in times.stages() {
        println!("  {name:<11} {:>8.2}", ms(d, times.frames));
    }
    if let Some(peak) = peak {
        println!("peak RSS: {peak:.0} MB");
    }
    if !rss.is_empty() {
        println!("RSS by frame (MB): {}", rss_summary(&rss));
    }
    if baseline {
        let (frames, wall, ..) = run(&input, None)?;
        println!(
            "decode + encode only: {frames} frames in {:.2} s = {:.1} fps",
            wall.as_secs_f64(),
            frames as f64 / wall.as_secs_f64()
        );
    }
    Ok(())
}
