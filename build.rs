//! Embeds rustface's SeetaFace model, which the rustface crate ships as a file but does not embed,
//! so that the `seeta` detector needs nothing at run time.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let rustface = meta["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "rustface"))
        .and_then(|p| p["manifest_path"].as_str())
        .expect("rustface is a dependency");
    let model = PathBuf::from(rustface).with_file_name("model").join("seeta_fd_frontal_v1.0.bin");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("seeta_fd_frontal_v1.0.bin");
    std::fs::copy(&model, &out).unwrap_or_else(|e| panic!("copy {}: {e}", model.display()));
    println!("cargo:rerun-if-changed=build.rs");
}
