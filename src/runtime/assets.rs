//! Where the runtime finds the files set-up fetched: the ONNX Runtime library, the CenterFace and
//! SeetaFace detector models and the bundled SDN model. An environment variable wins; otherwise
//! set-up's folders (`deps/`, `models/sdn`) are looked for beside the running program and in the
//! folders above it, so that a checkout's `target/release/` and an install copied anywhere with
//! its `deps/` and `models/` both find them. Nothing of the build machine is baked in.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

const ORT_DIR: &str = "deps/onnxruntime";
/// ONNX Runtime's library is versioned (libonnxruntime.so.1.32.0); any version set-up put there.
const ORT_PREFIX: &str = "libonnxruntime.so";
const CENTERFACE: &str = "deps/centerface/centerface.onnx";
/// Made from it by set-up (scripts/centerface_int8.py) for the CPU: 8-bit weights for a CPU with
/// VNNI, 7-bit ones for a CPU with AVX2 and without VNNI.
const CENTERFACE_INT8: &str = "deps/centerface/centerface_int8.onnx";
const CENTERFACE_INT8_REDUCED: &str = "deps/centerface/centerface_int8_reduced.onnx";
const SEETA: &str = "deps/seeta/seeta_fd_frontal_v1.0.bin";
const SDN_DIR: &str = "models/sdn";
/// How far above the program's folder to look: target/release/deps/ holds test programs, three
/// levels under a checkout.
const LEVELS_UP: usize = 3;

static INSTALL_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Where the library was loaded from, for a caller whose process is not its own (the GStreamer
/// plugin inside gst-launch-1.0 or an application). Without it, the running program's folder.
pub fn set_install_dir(dir: &Path) {
    let _ = INSTALL_DIR.set(dir.to_path_buf());
}

/// The folders searched, nearest first.
fn search_dirs() -> Vec<PathBuf> {
    let start =
        INSTALL_DIR.get().cloned().or_else(|| std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)));
    start.map(|dir| dir.ancestors().take(LEVELS_UP + 1).map(Path::to_path_buf).collect()).unwrap_or_default()
}

fn from_env(var: &str) -> Result<Option<PathBuf>> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            let path = PathBuf::from(v);
            if !path.is_absolute() {
                bail!("{var} must be an absolute path, got {}", path.display());
            }
            Ok(Some(path))
        }
        _ => Ok(None),
    }
}

/// `var`, else the first of the search folders holding `relative`.
fn locate(var: &str, relative: &str) -> Result<PathBuf> {
    if let Some(path) = from_env(var)? {
        return Ok(path);
    }
    let dirs = search_dirs();
    dirs.iter().map(|d| d.join(relative)).find(|p| p.exists()).with_context(|| {
        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("{relative} not found beside the program (looked in {}); run scripts/setup.sh or set {var}", looked.join(", "))
    })
}

/// ONNX Runtime's shared library: `ORT_DYLIB_PATH`, else the one set-up fetched into deps/.
pub fn ort_library() -> Result<PathBuf> {
    if let Some(path) = from_env("ORT_DYLIB_PATH")? {
        return Ok(path);
    }
    let dir = locate("ORT_DYLIB_PATH", ORT_DIR)?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(ORT_PREFIX)))
        .collect();
    // The most specific name (libonnxruntime.so.1.32.0 over a libonnxruntime.so link).
    found.sort_by_key(|p| p.as_os_str().len());
    found.pop().with_context(|| format!("no {ORT_PREFIX}* in {}", dir.display()))
}

/// Which of the int8 models set-up makes from CenterFace's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8 {
    /// 8-bit weights, for a CPU whose dot products (VNNI) add 8-bit products without saturating.
    Full,
    /// 7-bit weights, for a CPU with AVX2 and without VNNI, whose 8-bit kernels add pairs of
    /// products in 16 bits: 8-bit weights could saturate them.
    ReducedRange,
}

/// A CenterFace model file, and which int8 model set-up made it is, if it is one.
#[derive(Clone, Debug, PartialEq)]
pub struct CenterFaceModel {
    pub path: PathBuf,
    pub int8: Option<Int8>,
}

/// CenterFace's ONNX model: `FACEVEIL_CENTERFACE` (taken as a float model), else the one set-up
/// fetched, or with `int8` that int8 model set-up made from it (an install copied without it runs
/// the float one, which finds the same faces, slower).
pub fn centerface_model(int8: Option<Int8>) -> Result<CenterFaceModel> {
    if let Some(path) = from_env("FACEVEIL_CENTERFACE")? {
        return Ok(CenterFaceModel { path, int8: None });
    }
    let file = |kind| match kind {
        Int8::Full => CENTERFACE_INT8,
        Int8::ReducedRange => CENTERFACE_INT8_REDUCED,
    };
    if let Some(kind) = int8
        && let Ok(path) = locate("FACEVEIL_CENTERFACE", file(kind))
    {
        return Ok(CenterFaceModel { path, int8: Some(kind) });
    }
    Ok(CenterFaceModel { path: locate("FACEVEIL_CENTERFACE", CENTERFACE)?, int8: None })
}

/// SeetaFace's frontal cascade (shipped in the rustface package): `FACEVEIL_SEETA`, else the
/// one set-up fetched.
pub fn seeta_model() -> Result<PathBuf> {
    locate("FACEVEIL_SEETA", SEETA)
}

/// The SDN model folder (holding sdn.json): `FACEVEIL_MODEL`, else the bundled models/sdn.
pub fn sdn_model() -> Result<PathBuf> {
    locate("FACEVEIL_MODEL", SDN_DIR)
}
