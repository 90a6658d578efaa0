//! Embeds rustface's SeetaFace model, which the rustface crate ships as a file but does not embed,
//! so that the `seeta` detector needs nothing at run time.
//!
//! The file sits in the unpacked rustface package. Cargo unpacks every package a build needs
//! before any build script runs, so the locked version is looked up in the registry sources
//! first; `cargo metadata --offline` is the fallback for other layouts (vendored or patched
//! sources). Metadata alone is not enough on a fresh machine: it wants every package of the
//! graph, dev- and other-platform dependencies included, which a build never downloads.

use std::path::{Path, PathBuf};
use std::process::Command;

const MODEL: &str = "seeta_fd_frontal_v1.0.bin";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let model = from_registry(&manifest_dir)
        .or_else(|| from_metadata(&manifest_dir))
        .unwrap_or_else(|| panic!("cannot find rustface's {MODEL}: is rustface a dependency?"));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join(MODEL);
    std::fs::copy(&model, &out).unwrap_or_else(|e| panic!("copy {}: {e}", model.display()));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
}

/// The version of rustface that Cargo.lock pins.
fn locked_version(manifest_dir: &Path) -> Option<String> {
    let lock = std::fs::read_to_string(manifest_dir.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"rustface\"" {
            let version = lines.next()?.trim().strip_prefix("version = \"")?.strip_suffix('"')?;
            return Some(version.to_string());
        }
    }
    None
}

fn from_registry(manifest_dir: &Path) -> Option<PathBuf> {
    let version = locked_version(manifest_dir)?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry").join("src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(format!("rustface-{version}")).join("model").join(MODEL))
        .find(|p| p.is_file())
}

fn from_metadata(manifest_dir: &Path) -> Option<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
        .output()
        .ok()?;
    if !output.status.success() {
        println!("cargo:warning=cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        return None;
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let rustface = meta["packages"].as_array()?.iter().find(|p| p["name"] == "rustface")?;
    let path = PathBuf::from(rustface["manifest_path"].as_str()?).with_file_name("model").join(MODEL);
    path.is_file().then_some(path)
}
