//! The plugin as a user meets it: loaded from disk by gst-launch-1.0 and gst-inspect-1.0.

use std::path::PathBuf;
use std::process::Command;

#[path = "../../tests/common/mod.rs"]
mod common;
use common::repo;

/// target/<profile>, where cargo puts libgstfaceveil.so.
fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn gst(tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool).args(args).env("GST_PLUGIN_PATH", plugin_dir()).env("GST_REGISTRY_FORK", "no").output().unwrap()
}

#[test]
fn gst_inspect_documents_the_elements() {
    // `gst-inspect-1.0 faceveil` shows the element of that name; the plugin file lists all five.
    let library = plugin_dir().join("libgstfaceveil.so");
    let out = gst("gst-inspect-1.0", &[library.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for element in ["faceveildetect", "faceveil", "faceunveil", "faceveilsei", "faceveilcheckpoint"] {
        assert!(text.contains(element), "the plugin does not list {element}:\n{text}");
    }
    let element = String::from_utf8_lossy(&gst("gst-inspect-1.0", &["faceunveil"]).stdout).into_owned();
    assert!(element.contains("password") && element.contains("Write only"), "{element}");
}

/// Mean absolute difference of two 640x360 RGB frames in each 16x16 block.
fn block_differences(a: &[u8], b: &[u8]) -> Vec<f64> {
    let (w, h) = (640usize, 360usize);
    let mut blocks = Vec::new();
    for by in 0..h / 16 {
        for bx in 0..w / 16 {
            let mut sum = 0u64;
            for y in by * 16..by * 16 + 16 {
                for x in bx * 16 * 3..(bx * 16 + 16) * 3 {
                    sum += a[y * w * 3 + x].abs_diff(b[y * w * 3 + x]) as u64;
                }
            }
            blocks.push(sum as f64 / (16.0 * 16.0 * 3.0));
        }
    }
    blocks
}

#[test]
fn the_documented_gst_launch_pipelines_anonymize_a_clip_and_restore_it_from_its_sei() {
    let out_dir = common::TestDir::new("launch");
    let (out, restored) = (out_dir.join("out.mp4"), out_dir.join("restored.mp4"));
    let clip = repo().join("samples/two_faces_640x360.mp4");
    // The password from a file, as the README shows it: never on the command line.
    let key = out_dir.join("key.txt");
    std::fs::write(&key, "launch-test\n").unwrap();
    let launch = |pipeline: String| {
        let args: Vec<&str> = pipeline.split(' ').collect();
        let run = gst("gst-launch-1.0", &args);
        assert!(run.status.success(), "{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    };
    launch(format!(
        "filesrc location={} ! decodebin ! videoconvert ! videoflip video-direction=auto ! faceveil password-file={} ! videoconvert ! faceveilx264enc ! h264parse ! faceveilsei ! mp4mux ! filesink location={}",
        clip.display(),
        key.display(),
        out.display()
    ));
    // faceveilsei wrote every frame's data into the stream (100 frames, each with faces).
    let bytes = std::fs::read(&out).unwrap();
    let uuid = faceveil::stream::SEI_UUID;
    let written = bytes.windows(uuid.len()).filter(|w| *w == uuid).count();
    assert_eq!(written, 100, "frames whose access unit carries faceveil's SEI");
    // Per-track keys: without the SEI's records the restore could not key a single face.
    launch(format!(
        "filesrc location={} ! decodebin ! videoconvert ! faceunveil password-file={} ! videoconvert ! x264enc ! mp4mux ! filesink location={}",
        out.display(),
        key.display(),
        restored.display()
    ));
    // Frame by frame against the input, in 16x16 blocks: the faces' blocks changed, and the rest
    // only by what re-encoding costs. A passthrough or a blanked frame fails one or the other.
    let orig = first_frame_rgb(&clip, &out_dir.join("orig.rgb"));
    let anon = first_frame_rgb(&out, &out_dir.join("anon.rgb"));
    let back = first_frame_rgb(&restored, &out_dir.join("restored.rgb"));
    let changed = block_differences(&orig, &anon);
    let mut sorted = changed.clone();
    sorted.sort_by(f64::total_cmp);
    let (median, top) = (sorted[sorted.len() / 2], sorted[sorted.len() * 99 / 100]);
    assert!(top > 20.0, "the faces did not change (99th percentile block difference {top:.1})");
    assert!(median < 4.0, "the background changed (median block difference {median:.1})");
    // The blocks the anonymization changed most come back close to the original.
    let faces: Vec<usize> = (0..changed.len()).filter(|&i| changed[i] > 20.0).collect();
    let restored_diff = block_differences(&orig, &back);
    let mean = |d: &[f64]| faces.iter().map(|&i| d[i]).sum::<f64>() / faces.len() as f64;
    let (anonymized, restored) = (mean(&changed), mean(&restored_diff));
    assert!(restored < anonymized / 3.0, "face blocks differ by {restored:.1} restored, {anonymized:.1} anonymized");
}

/// The first frame of a clip as packed RGB (640x360), through gst-launch-1.0.
fn first_frame_rgb(clip: &std::path::Path, raw: &std::path::Path) -> Vec<u8> {
    let pipeline = format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! identity eos-after=1 ! filesink location={}",
        clip.display(),
        raw.display()
    );
    let args: Vec<&str> = pipeline.split(' ').collect();
    let run = gst("gst-launch-1.0", &args);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    std::fs::read(raw).unwrap()
}
