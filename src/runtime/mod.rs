//! ONNX Runtime, loaded at run time from a shared library, and sessions on a chosen provider.

use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use ort::environment::Environment;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use serde::Deserialize;

pub mod assets;
mod shared;

pub use shared::{SharedSession, shared};

/// Where a model runs. A provider that was asked for and cannot load is an error: faceveil never
/// falls back to the CPU behind the user's back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[default]
    Cpu,
    Cuda,
    #[serde(alias = "trt")]
    TensorRt,
}

impl FromStr for Provider {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "tensorrt" | "trt" => Ok(Self::TensorRt),
            other => bail!("unknown provider '{other}' (expected cpu, cuda or tensorrt)"),
        }
    }
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::TensorRt => "tensorrt",
        }
    }

    fn dispatch(self, device_id: i32) -> Vec<ExecutionProviderDispatch> {
        let cuda = || ep::CUDA::default().with_device_id(device_id).build().error_on_failure();
        match self {
            Self::Cpu => vec![],
            Self::Cuda => vec![cuda()],
            // Nodes TensorRT cannot take run on CUDA, never on the CPU.
            Self::TensorRt => {
                vec![ep::TensorRT::default().with_device_id(device_id).with_fp16(true).build().error_on_failure(), cuda()]
            }
        }
    }
}

/// How sessions are built.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    pub provider: Provider,
    /// Threads inside one operator on the CPU; 0 lets ONNX Runtime choose (one per core), or
    /// [`Self::beside_another_model`] halve that.
    pub intra_threads: usize,
    pub device_id: i32,
}

impl RuntimeOptions {
    /// These options for a model that runs at the same time as another (an anonymizer's
    /// detector, on a thread of its own, beside the SDN on the frame's thread): where ONNX
    /// Runtime would choose (0), half the cores each, at least one. On two cores two sessions
    /// of two threads each took more CPU than they saved: CenterFace's int8 look at 640 x 384
    /// 24.6 ms of CPU against 18.7 on one thread, the SDN at a batch of two 3.1 against 2.2 ms,
    /// for no shorter run of the SDN, while decoding, coding and the frame path took the other
    /// core anyway. `faceveil anonymize samples/faces_720p.mp4`, five runs each alternated:
    /// 2.37 against 2.46 s, 4.22 against 4.47 CPU seconds (2-core AMD EPYC, 2026-12-06). A
    /// restore runs one model, which is its slowest stage, and keeps every core: on one thread
    /// it took 4.69 against 4.36 s.
    pub fn beside_another_model(&self) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let intra_threads = if self.intra_threads == 0 { (cores / 2).max(1) } else { self.intra_threads };
        Self { intra_threads, ..self.clone() }
    }
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self { provider: Provider::Cpu, intra_threads: 0, device_id: 0 }
    }
}

static LOADED: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Loads ONNX Runtime and creates its environment once per process; later calls return the
/// first outcome.
pub fn load() -> Result<Environment> {
    LOADED
        .get_or_init(|| {
            let path = assets::ort_library().map_err(|e| e.to_string())?;
            if !path.is_file() {
                return Err(format!(
                    "ONNX Runtime library not found at {} (run scripts/setup.sh or set ORT_DYLIB_PATH)",
                    path.display()
                ));
            }
            let builder = ort::init_from(&path).map_err(|e| format!("cannot load ONNX Runtime: {e}"))?;
            builder.with_name("faceveil").build().map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// The int8 CenterFace model that runs faster than the float one on this CPU, if one does: with
/// VNNI's dot products, the 8-bit one (1.6-1.8x); with AVX2 alone, the one with 7-bit weights
/// (about 1.25x on a Zen 3 EPYC; docs/SCALING.md, "A CPU without VNNI").
pub fn cpu_int8() -> Option<assets::Int8> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni") || std::arch::is_x86_feature_detected!("avxvnni") {
            Some(assets::Int8::Full)
        } else if std::arch::is_x86_feature_detected!("avx2") {
            Some(assets::Int8::ReducedRange)
        } else {
            None
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Opens a model on the requested provider, a session of its own; [`shared`] gives the one
/// already open in the process.
pub fn session(model: &Path, opts: &RuntimeOptions) -> Result<Session> {
    let env = load()?;
    if !model.is_file() {
        bail!("model not found: {}", model.display());
    }
    let build = || -> std::result::Result<Session, ort::Error> {
        let mut builder = Session::builder(&env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(ort::Error::<()>::from)?
            .with_execution_providers(opts.provider.dispatch(opts.device_id))
            .map_err(ort::Error::<()>::from)?;
        if opts.intra_threads > 0 {
            builder = builder.with_intra_threads(opts.intra_threads).map_err(ort::Error::<()>::from)?;
        }
        // The detector and the model run at once on different stages; threads that spin
        // waiting for work take the cores the other stage needs (measured at 720p on 2 cores:
        // 27 fps spinning, 42 fps not).
        builder = builder.with_intra_op_spinning(false).map_err(ort::Error::<()>::from)?;
        builder.commit_from_file(model)
    };
    build()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot open {} on the {} provider", model.display(), opts.provider.name()))
}
