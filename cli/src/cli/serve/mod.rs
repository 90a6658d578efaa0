//! `faceveil serve CONFIG.toml`: many cameras in one process. Each camera runs its own pipeline
//! on its own thread (see [`camera`]); they share one RTSP server for their mounts and one
//! metrics endpoint. SIGHUP, or an edit of the file, reloads the config: cameras whose settings
//! changed are restarted, new ones started, removed ones stopped, and the others keep running
//! untouched. SIGTERM or Ctrl-C stops every camera, closing the segments being recorded.

mod camera;
mod config;
mod metrics;
mod mounts;
mod recording;
mod space;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use signal_hook::consts::SIGHUP;

use camera::Camera;
use config::{CameraConfig, Config, RtspConfig};
use metrics::Metrics;
use mounts::Mounts;

static RELOAD: AtomicBool = AtomicBool::new(false);

/// The elements a camera is built from, checked once so that a missing plugin is one clear
/// error at start rather than every camera failing over and over.
const ELEMENTS: &[&str] = &["faceveildetect", "faceveil", "x264enc", "h264parse", "splitmuxsink", "mpegtsmux", "uridecodebin"];

struct Supervisor {
    metrics: Arc<Metrics>,
    mounts: Option<Mounts>,
    cameras: BTreeMap<String, Camera>,
}

pub fn run(path: &Path) -> Result<()> {
    let config = load_where_it_runs(path)?;
    signal_hook::flag::register(SIGHUP, &RELOAD).context("cannot watch SIGHUP")?;
    let metrics = Arc::new(Metrics::new());
    if let Some(m) = &config.metrics {
        metrics.serve(m.listen)?;
        eprintln!("faceveil: metrics at http://{}/metrics", m.listen);
    }
    // The RTSP server lives on GLib's default main context.
    let main_loop = gst::glib::MainLoop::new(None, false);
    std::thread::Builder::new().name("rtsp".into()).spawn({
        let main_loop = main_loop.clone();
        move || main_loop.run()
    })?;
    let mut supervisor = Supervisor { metrics: metrics.clone(), mounts: None, cameras: BTreeMap::new() };
    supervisor.apply(&config)?;
    metrics.set_ready();
    eprintln!("faceveil: serving {} camera(s); SIGHUP or an edit of {} reloads it", config.cameras.len(), path.display());
    let mut current = config;
    let mut seen = stamp(path);
    // Ctrl-C and SIGTERM both stop it (`stop`).
    while !crate::cli::stop::requested() {
        metrics.tick();
        let now = stamp(path);
        if RELOAD.swap(false, Ordering::SeqCst) || now != seen {
            seen = now;
            reload(path, &mut supervisor, &mut current);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("faceveil: stopping every camera");
    supervisor.stop_all();
    main_loop.quit();
    Ok(())
}

/// The config at `path`, checked as far as it can be without starting a camera, on a machine
/// that has the GStreamer elements its cameras are built from.
fn load_where_it_runs(path: &Path) -> Result<Config> {
    let config = Config::load(path)?;
    crate::cli::media::elements::init()?;
    for name in ELEMENTS {
        gst::ElementFactory::find(name)
            .with_context(|| format!("GStreamer element '{name}' is missing (run scripts/setup.sh)"))?;
    }
    Ok(config)
}

/// `faceveil serve --check`: what `run` would start, said on standard output, nothing started.
pub fn check(path: &Path) -> Result<()> {
    let config = load_where_it_runs(path)?;
    println!("{}: {} camera(s)", path.display(), config.cameras.len());
    for camera in &config.cameras {
        println!("  {}", camera.summary());
    }
    Ok(())
}

/// The config file's modification time and size: an edit, or a Kubernetes ConfigMap update
/// (which swaps the file under its name), is noticed without a signal.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn reload(path: &Path, supervisor: &mut Supervisor, current: &mut Config) {
    let next = match Config::load(path) {
        Ok(next) => next,
        Err(e) => return eprintln!("faceveil: reload refused, the cameras keep running as they were: {e:#}"),
    };
    let restart_changes = next.rtsp.as_ref().map(RtspConfig::fixed) != current.rtsp.as_ref().map(RtspConfig::fixed);
    if (restart_changes && supervisor.mounts.is_some()) || next.metrics != current.metrics {
        eprintln!(
            "faceveil: the RTSP server's address, port and TLS (on or off), and [metrics], change when faceveil serve restarts"
        );
    }
    match supervisor.apply(&next) {
        Ok(()) => {
            eprintln!("faceveil: reloaded {}", path.display());
            *current = next;
        }
        Err(e) => eprintln!("faceveil: reload: {e:#}"),
    }
}

impl Supervisor {
    /// Brings the running cameras to `config`: stops removed and changed ones, starts changed
    /// and new ones, leaves the rest alone.
    fn apply(&mut self, config: &Config) -> Result<()> {
        let wanted: BTreeMap<&str, &CameraConfig> = config.cameras.iter().map(|c| (c.name.as_str(), c)).collect();
        let stale: Vec<String> = self
            .cameras
            .iter()
            .filter(|(name, cam)| wanted.get(name.as_str()) != Some(&&cam.config))
            .map(|(n, _)| n.clone())
            .collect();
        // Stopped together: each may take a moment to close its segment.
        let stopping: Vec<Camera> = stale.iter().filter_map(|n| self.cameras.remove(n)).collect();
        stopping.iter().for_each(Camera::request_stop);
        for cam in stopping {
            if let (Some(mounts), Some(mount)) = (&self.mounts, &cam.config.mount) {
                mounts.remove(mount);
            }
            if !wanted.contains_key(cam.config.name.as_str()) {
                self.metrics.forget(&cam.config.name);
                eprintln!("faceveil: camera {}: removed", cam.config.name);
            }
            cam.join();
        }
        if let Some(rtsp) = &config.rtsp {
            let access = rtsp.access()?;
            if self.mounts.is_none() {
                self.mounts = Some(Mounts::start(&rtsp.address, rtsp.port, access.certificate.is_some())?);
                eprintln!("faceveil: RTSP server at {}://{}:{}{}", access.scheme(), rtsp.address, rtsp.port, access.describe());
            }
            // A reload's viewers and certificate apply to the clients that come after it.
            if let Some(mounts) = &self.mounts {
                mounts.set_access(&access);
            }
        }
        for (name, cam) in wanted {
            if self.cameras.contains_key(name) {
                continue;
            }
            let outlet = match (&self.mounts, &cam.mount) {
                (Some(mounts), Some(mount)) => Some(mounts.add(mount, cam.viewers.as_deref())?),
                _ => None,
            };
            let started = Camera::start(cam.clone(), self.metrics.camera(name), outlet)?;
            eprintln!("faceveil: camera {name}: started");
            self.cameras.insert(name.to_string(), started);
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        self.cameras.values().for_each(Camera::request_stop);
        for (_, cam) in std::mem::take(&mut self.cameras) {
            cam.join();
        }
    }
}
