//! Where the runtime finds what set-up fetched: the ONNX Runtime library, the CenterFace model and
//! the bundled SDN model. Environment variables win; otherwise the checkout's own folders.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

const ORT_LIBRARY: &str = "deps/onnxruntime/libonnxruntime.so.1.32.0";
const CENTERFACE: &str = "deps/centerface/centerface.onnx";
const SDN_DIR: &str = "models/sdn";

/// The checkout the library was built from; set-up puts its downloads there.
fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn from_env_or_checkout(var: &str, relative: &str) -> Result<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            let path = PathBuf::from(v);
            if !path.is_absolute() {
                bail!("{var} must be an absolute path, got {}", path.display());
            }
            Ok(path)
        }
        _ => Ok(checkout().join(relative)),
    }
}

/// ONNX Runtime's shared library: `ORT_DYLIB_PATH`, else the one set-up fetched.
pub fn ort_library() -> Result<PathBuf> {
    from_env_or_checkout("ORT_DYLIB_PATH", ORT_LIBRARY)
}

/// CenterFace's ONNX model: `FACEVEIL_CENTERFACE`, else the one set-up fetched.
pub fn centerface_model() -> Result<PathBuf> {
    from_env_or_checkout("FACEVEIL_CENTERFACE", CENTERFACE)
}

/// The SDN model folder (holding sdn.json): `FACEVEIL_MODEL`, else the bundled models/sdn.
pub fn sdn_model() -> Result<PathBuf> {
    from_env_or_checkout("FACEVEIL_MODEL", SDN_DIR)
}
