//! The plugin as a user meets it: loaded from disk by gst-launch-1.0 and gst-inspect-1.0.

use std::path::PathBuf;
use std::process::Command;

/// target/<profile>, where cargo puts libgstfaceveil.so.
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gst(tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool).args(args).env("GST_PLUGIN_PATH", plugin_dir()).env("GST_REGISTRY_FORK", "no").output().unwrap()
}

#[test]
fn gst_inspect_documents_the_elements() {
    // `gst-inspect-1.0 faceveil` shows the element of that name; the plugin file lists all three.
    let library = plugin_dir().join("libgstfaceveil.so");
    let out = gst("gst-inspect-1.0", &[library.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for element in ["faceveildetect", "faceveil", "faceunveil"] {
        assert!(text.contains(element), "the plugin does not list {element}:\n{text}");
    }
    let element = String::from_utf8_lossy(&gst("gst-inspect-1.0", &["faceunveil"]).stdout).into_owned();
    assert!(element.contains("password") && element.contains("Write only"), "{element}");
}

#[test]
fn the_documented_gst_launch_pipeline_anonymizes_a_clip() {
    let out_dir = std::env::temp_dir().join(format!("faceveil-launch-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("out.mp4");
    let clip = repo().join("samples/two_faces_640x360.mp4");
    let pipeline = format!(
        "filesrc location={} ! decodebin ! videoconvert ! faceveil password=launch-test ! videoconvert ! x264enc ! mp4mux ! filesink location={}",
        clip.display(),
        out.display()
    );
    let args: Vec<&str> = pipeline.split(' ').collect();
    let run = gst("gst-launch-1.0", &args);
    assert!(run.status.success(), "{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(std::fs::metadata(&out).unwrap().len() > 10_000, "the output is a real clip");
}
