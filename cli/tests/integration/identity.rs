//! Who the faces are, judged by a face-recognition embedding (MobileFaceNet from ../shared; the
//! test skips without it): real photos anonymized with several passwords, and restored with a
//! wrong one, are other people; restored with the right one, the same people again.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::s;

use faceveil::faces::detect::{DetectionWorker, DetectorSettings};
use faceveil::frame::rgb::RgbImage;
use faceveil::runtime::{self, RuntimeOptions};
use ort::value::TensorRef;

/// ArcFace's five-point template in a 112 x 112 crop, which MobileFaceNet expects.
const TEMPLATE: [(f32, f32); 5] =
    [(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041)];

struct Embedder(ort::session::Session);

impl Embedder {
    /// The unit 128-d embedding of the face with landmarks `lm` in `img`.
    fn embed(&mut self, img: &RgbImage, lm: &[(f32, f32); 5]) -> Vec<f32> {
        let (a, b, tx, ty) = similarity(&TEMPLATE, lm);
        let mut input = vec![0f32; 3 * 112 * 112];
        for v in 0..112 {
            for u in 0..112 {
                // The template point (u, v) maps into the photo by the fitted similarity.
                let (x, y) = (a * u as f32 - b * v as f32 + tx, b * u as f32 + a * v as f32 + ty);
                let px = bilinear(img, x, y);
                for c in 0..3 {
                    // BGR, (x - 127.5) / 127.5
                    input[c * 112 * 112 + v * 112 + u] = (px[2 - c] - 127.5) / 127.5;
                }
            }
        }
        let t = TensorRef::from_array_view(([1usize, 3, 112, 112], input.as_slice())).unwrap();
        let out = self.0.run(ort::inputs![t]).unwrap();
        let (_, e) = out[0].try_extract_tensor::<f32>().unwrap();
        let n = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        e.iter().map(|v| v / n).collect()
    }
}

/// Least-squares similarity (x, y) = [a -b; b a](u, v) + t taking `from` onto `to`.
fn similarity(from: &[(f32, f32); 5], to: &[(f32, f32); 5]) -> (f32, f32, f32, f32) {
    let mean = |p: &[(f32, f32); 5]| {
        let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q.0, y + q.1));
        (sx / 5.0, sy / 5.0)
    };
    let ((fu, fv), (tx, ty)) = (mean(from), mean(to));
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for (p, q) in from.iter().zip(to) {
        let (u, v, x, y) = (p.0 - fu, p.1 - fv, q.0 - tx, q.1 - ty);
        num_a += u * x + v * y;
        num_b += u * y - v * x;
        den += u * u + v * v;
    }
    let (a, b) = (num_a / den, num_b / den);
    (a, b, tx - (a * fu - b * fv), ty - (b * fu + a * fv))
}

fn bilinear(img: &RgbImage, x: f32, y: f32) -> [f32; 3] {
    let (w, h) = (img.width as f32, img.height as f32);
    let (x, y) = (x.clamp(0.0, w - 1.001), y.clamp(0.0, h - 1.001));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |xx: usize, yy: usize, c: usize| img.data[(yy * img.width + xx) * 3 + c] as f32;
    std::array::from_fn(|c| {
        let top = p(x0, y0, c) * (1.0 - fx) + p(x0 + 1, y0, c) * fx;
        let bottom = p(x0, y0 + 1, c) * (1.0 - fx) + p(x0 + 1, y0 + 1, c) * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn faceveil(args: &[&str], password: &str) {
    let o = common::without_criticals(
        Command::new(env!("CARGO_BIN_EXE_faceveil")).args(args).env("FACEVEIL_PASSWORD", password).output().unwrap(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn anonymized_and_wrong_password_faces_are_other_people_and_restored_ones_are_not() {
    let (Some(scenes), Some(aligned), Some(model)) = (
        common::shared("data/faces/celeba_wild_scenes"),
        common::shared("data/faces/celeba_wild_aligned_256"),
        common::shared("models/mobilefacenet_128d.onnx"),
    ) else {
        return;
    };
    let dir = common::tmpdir("identity");
    let src = dir.join("in");
    std::fs::create_dir_all(&src).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&scenes).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let files: Vec<PathBuf> = files.into_iter().take(8).collect();
    for f in &files {
        // PNG copies, so that only faceveil changes pixels.
        common::open_image(f).to_rgb8().save(src.join(f.file_stem().unwrap()).with_extension("png")).unwrap();
    }
    let passwords = ["first password", "second password", "third password"];
    for (i, pw) in passwords.iter().enumerate() {
        let (anon, wrong, right) = (dir.join(format!("anon{i}")), dir.join(format!("wrong{i}")), dir.join(format!("right{i}")));
        faceveil(&["anonymize", s(&src), "-o", s(&anon)], pw);
        faceveil(&["restore", s(&anon), "-o", s(&wrong)], "not the password");
        faceveil(&["restore", s(&anon), "-o", s(&right)], pw);
    }

    let runtime = RuntimeOptions::default();
    let mut embedder = Embedder(runtime::session(&model, &runtime).unwrap());
    let worker = DetectionWorker::spawn(DetectorSettings { max_side: 1280, ..DetectorSettings::default() }, runtime).unwrap();
    let largest = |img: &mut RgbImage| {
        let (small, scale) = common::as_frame(img).downscaled_rgb(1280);
        let faces = worker.detect(small, scale).unwrap();
        faces.into_iter().filter(|f| f.landmarks.is_some()).max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
    };

    // The judge's threshold from the data: the same person in another photo, against others.
    let (mut same, mut other, mut originals) = (Vec::new(), Vec::new(), Vec::new());
    for f in &files {
        let id = f.file_stem().unwrap().to_str().unwrap().split('_').next().unwrap().to_string();
        let mut img = common::load_rgb(&src.join(f.file_stem().unwrap()).with_extension("png"));
        let Some(face) = largest(&mut img) else { continue };
        let lm = face.landmarks.unwrap();
        let mine = embedder.embed(&img, &lm);
        let mut photos: Vec<PathBuf> = std::fs::read_dir(aligned.join(&id)).unwrap().map(|e| e.unwrap().path()).collect();
        photos.sort();
        let mut ref_img = common::load_rgb(&photos[0]);
        if let Some(r) = largest(&mut ref_img) {
            same.push(cosine(&mine, &embedder.embed(&ref_img, &r.landmarks.unwrap())));
        }
        originals.push((f.file_stem().unwrap().to_owned(), lm, mine));
    }
    for (i, a) in originals.iter().enumerate() {
        for b in &originals[i + 1..] {
            other.push(cosine(&a.2, &b.2));
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(originals.len() >= 6 && same.len() >= 6, "faces found in only {} photos", originals.len());
    let (m_same, m_other) = (mean(&same), mean(&other));
    assert!(m_same > m_other + 0.2, "the embedding does not tell people apart: same {m_same:.2}, other {m_other:.2}");
    let threshold = (m_same + m_other) / 2.0;

    // Each output judged at the original's landmarks, as a viewer comparing the two would.
    let mut judged_same = |folder: &str| {
        let mut n = 0;
        for (stem, lm, mine) in &originals {
            let img = common::load_rgb(&dir.join(folder).join(stem).with_extension("png"));
            n += usize::from(cosine(mine, &embedder.embed(&img, lm)) >= threshold);
        }
        n
    };
    let total = originals.len();
    for i in 0..passwords.len() {
        let (anon, wrong, right) =
            (judged_same(&format!("anon{i}")), judged_same(&format!("wrong{i}")), judged_same(&format!("right{i}")));
        eprintln!(
            "password {i}: judged the original in {anon}/{total} anonymized, {wrong}/{total} wrong-password, {right}/{total} restored (threshold {threshold:.2})"
        );
        // sdn-0.6.0 leaks 6-8% to dlib (models/sdn/eval_sdn-0.6.0.json): one face in eight may
        // slip; a passthrough or a model that keeps identity leaks them all.
        assert!(anon * 4 <= total, "password {i}: {anon} of {total} anonymized faces are still the same person");
        assert!(wrong * 4 <= total, "password {i}: {wrong} of {total} wrong-password restores are the same person");
        assert!(right * 4 >= total * 3, "password {i}: only {right} of {total} restores are the person again");
    }
}
