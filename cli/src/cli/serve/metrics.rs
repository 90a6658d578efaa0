//! Per-camera metrics in the Prometheus (OpenMetrics) text format at /metrics, with /ready and
//! /health for orchestrators. prometheus-client keeps the registry and encodes it; tiny_http
//! serves it on its own thread, so a busy pipeline never delays a scrape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Liveness fails when the supervisor loop has not run for this long (it ticks every 200 ms).
const STALE_AFTER_S: u64 = 10;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CameraLabel {
    camera: String,
}

type Latency = Family<CameraLabel, Histogram, fn() -> Histogram>;

/// One camera's handles; clones update the same series.
#[derive(Clone)]
pub struct CameraMetrics {
    pub frames: Counter,
    pub dropped: Counter,
    pub faces: Counter,
    /// Bytes of original faces sealed into the camera's outputs.
    pub sealed: Counter,
    pub reconnects: Counter,
    pub fps: Gauge<f64, AtomicU64>,
    pub up: Gauge,
    pub recording: Gauge,
    pub latency: Histogram,
}

pub struct Metrics {
    registry: Registry,
    frames: Family<CameraLabel, Counter>,
    dropped: Family<CameraLabel, Counter>,
    faces: Family<CameraLabel, Counter>,
    sealed: Family<CameraLabel, Counter>,
    reconnects: Family<CameraLabel, Counter>,
    fps: Family<CameraLabel, Gauge<f64, AtomicU64>>,
    up: Family<CameraLabel, Gauge>,
    recording: Family<CameraLabel, Gauge>,
    latency: Latency,
    ready: AtomicBool,
    /// Unix seconds of the supervisor's latest tick.
    tick: AtomicU64,
}

fn latency_histogram() -> Histogram {
    // 5 ms to 10 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("faceveil_camera");
        let m = Self {
            frames: Family::default(),
            dropped: Family::default(),
            faces: Family::default(),
            sealed: Family::default(),
            reconnects: Family::default(),
            fps: Family::default(),
            up: Family::default(),
            recording: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            ready: AtomicBool::new(false),
            tick: AtomicU64::new(now_s()),
            registry: Registry::default(),
        };
        registry.register("frames", "Frames anonymized and handed to the outputs", m.frames.clone());
        registry.register(
            "frames_dropped",
            "Frames dropped by the bounded queues (a camera faster than its processing, or a slow output)",
            m.dropped.clone(),
        );
        registry.register("faces", "Faces covered, summed over frames", m.faces.clone());
        registry.register(
            "sealed_bytes",
            "Bytes of original faces sealed into the camera's outputs (to recipients or the password): what sealing adds to its recording and stream",
            m.sealed.clone(),
        );
        registry.register("reconnects", "Restarts after the source failed or ended", m.reconnects.clone());
        registry.register("fps", "Frames anonymized per second over the last second or so", m.fps.clone());
        registry.register("up", "1 while frames flow, 0 while reconnecting or after a file ended", m.up.clone());
        registry.register(
            "recording",
            "1 while the camera's recording is written, 0 while it is not (none configured, or paused after a write failed)",
            m.recording.clone(),
        );
        registry.register(
            "latency_seconds",
            "From decoded frame to the encoder, detection and anonymization included",
            m.latency.clone(),
        );
        Self { registry, ..m }
    }

    pub fn camera(&self, name: &str) -> CameraMetrics {
        let l = CameraLabel { camera: name.to_string() };
        CameraMetrics {
            frames: self.frames.get_or_create_owned(&l),
            dropped: self.dropped.get_or_create_owned(&l),
            faces: self.faces.get_or_create_owned(&l),
            sealed: self.sealed.get_or_create_owned(&l),
            reconnects: self.reconnects.get_or_create_owned(&l),
            fps: self.fps.get_or_create_owned(&l),
            up: self.up.get_or_create_owned(&l),
            recording: self.recording.get_or_create_owned(&l),
            latency: self.latency.get_or_create_owned(&l),
        }
    }

    /// Drops a removed camera's series.
    pub fn forget(&self, name: &str) {
        let l = CameraLabel { camera: name.to_string() };
        self.frames.remove(&l);
        self.dropped.remove(&l);
        self.faces.remove(&l);
        self.sealed.remove(&l);
        self.reconnects.remove(&l);
        self.fps.remove(&l);
        self.up.remove(&l);
        self.recording.remove(&l);
        self.latency.remove(&l);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// The supervisor is alive (see /health).
    pub fn tick(&self) {
        self.tick.store(now_s(), Ordering::SeqCst);
    }

    fn encode(&self) -> Result<String> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Answers scrapes and probes at `listen` on a thread of its own.
    pub fn serve(self: &Arc<Self>, listen: SocketAddr) -> Result<()> {
        let server = tiny_http::Server::http(listen).map_err(|e| anyhow!("cannot listen for metrics on {listen}: {e}"))?;
        let metrics = self.clone();
        std::thread::Builder::new().name("metrics".into()).spawn(move || {
            for request in server.incoming_requests() {
                let response = metrics.answer(request.url());
                let _ = request.respond(response);
            }
        })?;
        Ok(())
    }

    fn answer(&self, url: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
        let text = |code: u16, body: &str| tiny_http::Response::from_string(body).with_status_code(code);
        match url {
            "/metrics" => match self.encode() {
                Ok(body) => tiny_http::Response::from_string(body).with_header(
                    "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8"
                        .parse::<tiny_http::Header>()
                        .expect("a valid header"),
                ),
                Err(e) => text(500, &format!("cannot encode the metrics: {e}\n")),
            },
            "/ready" if self.ready.load(Ordering::SeqCst) => text(200, "ready\n"),
            "/ready" => text(503, "starting\n"),
            "/health" if now_s().saturating_sub(self.tick.load(Ordering::SeqCst)) <= STALE_AFTER_S => text(200, "ok\n"),
            "/health" => text(503, "the supervisor loop is stuck\n"),
            _ => text(404, "try /metrics, /ready or /health\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_are_labelled_and_forgotten() {
        let m = Metrics::new();
        let a = m.camera("a");
        a.frames.inc_by(3);
        a.sealed.inc_by(5);
        a.up.set(1);
        m.camera("b").reconnects.inc();
        let text = m.encode().unwrap();
        assert!(text.contains("faceveil_camera_frames_total{camera=\"a\"} 3"), "{text}");
        assert!(text.contains("faceveil_camera_reconnects_total{camera=\"b\"} 1"), "{text}");
        assert!(text.contains("faceveil_camera_sealed_bytes_total{camera=\"a\"} 5"), "{text}");
        assert!(text.contains("faceveil_camera_up{camera=\"a\"} 1"), "{text}");
        m.forget("a");
        assert!(!m.encode().unwrap().contains("camera=\"a\""));
        assert_eq!(m.answer("/ready").status_code().0, 503);
        m.set_ready();
        assert_eq!(m.answer("/ready").status_code().0, 200);
        assert_eq!(m.answer("/health").status_code().0, 200);
    }
}
