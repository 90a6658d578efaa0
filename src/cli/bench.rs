//! `faceveil bench CLIP`: end-to-end speed (decode, anonymize, encode) with a per-stage
//! breakdown, the latency faceveil adds to each frame, and peak memory.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use faceveil::pipeline::Anonymizer;
use faceveil::timing::StageTimes;

use super::input::Input;
use super::video::{self, FrameFn};

#[derive(Default)]
struct Latency {
    total: Duration,
    max: Duration,
    frames: u64,
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs the clip through decode and encode, with `anonymizer` (or nothing, for the baseline).
fn run(input: &Input, anonymizer: Option<Anonymizer>) -> Result<(u64, Duration, Latency, StageTimes)> {
    let out = std::env::temp_dir().join(format!("faceveil-bench-{}.mkv", std::process::id()));
    let latency = Arc::new(Mutex::new(Latency::default()));
    let times = Arc::new(Mutex::new(StageTimes::default()));
    let (lat, tim) = (latency.clone(), times.clone());
    let mut anonymizer = anonymizer;
    let process: FrameFn = Box::new(move |frame, _n, pts| {
        let start = Instant::now();
        if let Some(a) = anonymizer.as_mut() {
            a.process(frame, None, pts)?;
            *tim.lock().unwrap() = a.times();
        }
        let took = start.elapsed();
        let mut l = lat.lock().unwrap();
        l.total += took;
        l.max = l.max.max(took);
        l.frames += 1;
        Ok(())
    });
    let started = Instant::now();
    let t = video::transcode(input, &out, process, video::Carry::default());
    let wall = started.elapsed();
    let _ = std::fs::remove_file(&out);
    let t = t?;
    let latency = std::mem::take(&mut *latency.lock().unwrap());
    let times = times.lock().unwrap().clone();
    Ok((t.frames, wall, latency, times))
}

fn ms(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1000.0 / n.max(1) as f64
}

pub fn bench(clip: &Path, describe: &str, anonymizer: Anonymizer, baseline: bool) -> Result<()> {
    let input = Input::parse(clip.to_str().unwrap_or_default())?;
    if !matches!(input, Input::Stream(_)) {
        bail!("bench needs a video file");
    }
    if baseline {
        let (frames, wall, _, _) = run(&input, None)?;
        println!("decode + encode only: {frames} frames in {:.2} s = {:.1} fps", wall.as_secs_f64(), frames as f64 / wall.as_secs_f64());
    }
    let (frames, wall, latency, times) = run(&input, Some(anonymizer))?;
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
    if let Some(rss) = peak_rss_mb() {
        println!("peak RSS: {rss:.0} MB");
    }
    Ok(())
}
