//! Sealed restore of photos: the original faces, sealed to recipients inside the output, come
//! back bit-exact with an identity, for any one recipient or only for a threshold of them
//! together; a stranger, a moved face and a video are refused clearly.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faceveil(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faceveil"));
    cmd.args(args).env_remove("FACEVEIL_PASSWORD").env_remove("FACEVEIL_IDENTITY_PASSPHRASE");
    if let Some(p) = password {
        cmd.env("FACEVEIL_PASSWORD", p);
    }
    cmd.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn failed(o: &Output, says: &str) {
    assert!(!o.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(says), "expected '{says}' in: {err}");
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faceveil-sealed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The astronaut photo as a lossless PNG, so that "exact" can be checked pixel for pixel.
fn lossless_photo(dir: &Path) -> (PathBuf, image::RgbImage) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let img = image::open(repo.join("samples/astronaut.jpg")).unwrap().to_rgb8();
    let path = dir.join("in.png");
    img.save(&path).unwrap();
    (path, img)
}

fn pixels(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.age"));
    let recipient = ok(&faceveil(&["keygen", "-o", s(&file)], None));
    (file, recipient)
}

#[test]
fn a_sealed_photo_comes_back_exactly_for_either_recipient_and_not_for_a_stranger() {
    let dir = tmpdir("any");
    let (input, original) = lossless_photo(&dir);
    let ((a, ra), (b, rb), (stranger, _)) = (keygen(&dir, "a"), keygen(&dir, "b"), keygen(&dir, "c"));
    let recipients = dir.join("recipients.txt");
    std::fs::write(&recipients, format!("# the two investigators\n{rb}\n")).unwrap();
    let anon = dir.join("anon.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &ra, "--recipients-file", s(&recipients)], Some("pw")));
    let anonymized = pixels(&anon);
    let changed = anonymized.pixels().zip(original.pixels()).filter(|(p, q)| p != q).count();
    assert!(changed > 5000, "the face was anonymized ({changed} pixels changed)");

    for (who, id) in [("a", &a), ("b", &b)] {
        let out = dir.join(format!("restored-{who}.png"));
        ok(&faceveil(&["restore", s(&anon), "-o", s(&out), "--identity", s(id)], None));
        assert!(pixels(&out) == original, "{who}: the sealed face comes back bit-exact");
    }
    // With the password too, sealed wins: still exact.
    let both = dir.join("restored-both.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&both), "--identity", s(&a)], Some("pw")));
    assert!(pixels(&both) == original);

    let out = dir.join("stranger.png");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&out), "--identity", s(&stranger)], None), "not a recipient");
    assert!(!out.exists(), "nothing is written for a stranger");
}

#[test]
fn a_threshold_of_two_needs_both_identities() {
    let dir = tmpdir("threshold");
    let (input, original) = lossless_photo(&dir);
    let ((a, ra), (b, rb)) = (keygen(&dir, "a"), keygen(&dir, "b"));
    let anon = dir.join("anon.png");
    let args = ["anonymize", s(&input), "-o", s(&anon), "--recipient", &ra, "--recipient", &rb, "--recipients-threshold", "2"];
    ok(&faceveil(&args, Some("pw")));
    let one = dir.join("one.png");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&one), "--identity", s(&a)], None), "1 of the 2");
    assert!(!one.exists());
    let two = dir.join("two.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&two), "--identity", s(&a), "--identity", s(&b)], None));
    assert!(pixels(&two) == original);
}

#[test]
fn a_sealed_face_moved_in_its_record_does_not_open_and_videos_are_refused() {
    let dir = tmpdir("moved");
    let (input, _) = lossless_photo(&dir);
    let (a, ra) = keygen(&dir, "a");
    let anon = dir.join("anon.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &ra], Some("pw")));
    // Shift the recorded square by one pixel and embed the record again.
    let bytes = std::fs::read(&anon).unwrap();
    let text = faceveil::stream::imagemeta::extract(&bytes).unwrap();
    let mut data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cx = &mut data["record"]["faces"][0]["square"][0];
    *cx = serde_json::json!(cx.as_f64().unwrap() + 1.0);
    let moved = dir.join("moved.png");
    std::fs::write(&moved, faceveil::stream::imagemeta::embed(&bytes, &data.to_string()).unwrap()).unwrap();
    let out = dir.join("out.png");
    failed(&faceveil(&["restore", s(&moved), "-o", s(&out), "--identity", s(&a)], None), "frame 0, face 0");
    assert!(!out.exists());

    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let clip = repo.join("samples/two_faces_640x360.mp4");
    let o = faceveil(&["anonymize", s(&clip), "-o", s(&dir.join("v.mp4")), "--recipient", &ra], Some("pw"));
    failed(&o, "images only");
}
