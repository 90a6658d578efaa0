//! `faceveil bench CLIP`: end-to-end speed (decode, anonymize, encode) with a per-stage
//! breakdown, the latency faceveil adds to each frame, and memory (peak, and over the run).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use faceveil::pipeline::Anonymizer;
use faceveil::timing::StageTimes;
use faceveil::veil::FaceFinder;

use super::input::Input;
use super::video::{self, FindFn, FrameFn};

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

/// Frames, wall time, latency, stage times and memory samples (frame, MB) of one run.
type RunResult = (u64, Duration, Latency, StageTimes, Vec<(u64, f64)>);

/// Runs the clip through decode and encode, with the two stages of an anonymization (or
/// nothing, for the baseline) as `faceveil anonymize` runs them.
fn run(input: &Input, work: Option<(FaceFinder, Anonymizer)>) -> Result<RunResult> {
    let out = std::env::temp_dir().join(format!("faceveil-bench-{}.mkv", std::process::id()));
    let latency = Arc::new(Mutex::new(Latency::default()));
    let find_times = Arc::new(Mutex::new(StageTimes::default()));
    let veil_times = Arc::new(Mutex::new(StageTimes::default()));
    // A frame's added latency is the work of its find stage plus that of its anonymization
    // (the stages see frames in the same order). Time spent waiting in the queues between
    // them is left out: reading a file fills them, a live source at its own rate does not.
    let found_in: Arc<Mutex<VecDeque<Duration>>> = Arc::default();
    let rss: Arc<Mutex<Vec<(u64, f64)>>> = Arc::default();
    let (find, process): (Option<FindFn>, FrameFn) = match work {
        Some((mut finder, mut anonymizer)) => {
            let (ft, vt, lat, f_in, f_out) =
                (find_times.clone(), veil_times.clone(), latency.clone(), found_in.clone(), found_in.clone());
            let samples = rss.clone();
            let find: FindFn = Box::new(move |frame| {
                let start = Instant::now();
                let tracks = finder.find(frame)?.to_vec();
                *ft.lock().unwrap() = finder.times().clone();
                f_in.lock().unwrap().push_back(start.elapsed());
                Ok(tracks)
            });
            let process: FrameFn = Box::new(move |frame, n, pts, tracks| {
                if (n + 1) % RSS_EVERY == 0
                    && let Some(mb) = status_mb("VmRSS:")
                {
                    samples.lock().unwrap().push((n + 1, mb));
                }
                let start = Instant::now();
                anonymizer.process(frame, tracks, pts)?;
                *vt.lock().unwrap() = anonymizer.times().clone();
                let found = f_out.lock().unwrap().pop_front().unwrap_or_default();
                lat.lock().unwrap().add(found + start.elapsed());
                Ok(())
            });
            (Some(find), process)
        }
        None => {
            let lat = latency.clone();
            (
                None,
                Box::new(move |_, _, _, _| {
                    lat.lock().unwrap().add(Duration::ZERO);
                    Ok(())
                }),
            )
        }
    };
    let started = Instant::now();
    let t = video::transcode(input, &out, find, process, video::Carry::default());
    let wall = started.elapsed();
    let _ = std::fs::remove_file(&out);
    let t = t?;
    let latency = std::mem::take(&mut *latency.lock().unwrap());
    let mut times = find_times.lock().unwrap().clone();
    times.add(&veil_times.lock().unwrap());
    let rss = std::mem::take(&mut *rss.lock().unwrap());
    Ok((t.frames, wall, latency, times, rss))
}

fn ms(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1000.0 / n.max(1) as f64
}

pub fn bench(clip: &Path, describe: &str, finder: FaceFinder, anonymizer: Anonymizer, baseline: bool) -> Result<()> {
    let input = Input::parse(clip.to_str().unwrap_or_default())?;
    if !matches!(input, Input::Stream(_)) {
        bail!("bench needs a video file");
    }
    // The anonymization runs first so that its memory numbers are its own: memory a pipeline
    // freed stays with the process, and a baseline run before would count in them.
    let (frames, wall, latency, times, rss) = run(&input, Some((finder, anonymizer)))?;
    let peak = status_mb("VmHWM:");
    println!("clip: {}", clip.display());
    println!("setting: {describe}");
    println!("end to end: {frames} frames in {:.2} s = {:.1} fps", wall.as_secs_f64(), frames as f64 / wall.as_secs_f64());
    println!(
        "added latency per frame: mean {:.2} ms, max {:.2} ms",
        ms(latency.total, latency.frames),
        latency.max.as_secs_f64() * 1000.0
    );
    println!("detections: {} of {} frames, faces processed: {}", times.detections, times.frames, times.faces);
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
