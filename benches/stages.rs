//! Per-stage benchmarks: detection, tracking, crop and blend, an SDN batch, key derivation.
//! Run with `cargo bench --bench stages` (set-up must have fetched deps/).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use faceveil::faces::blend::{BlendShape, FaceBands, FineDetail};
use faceveil::faces::detect::{DetectionWorker, DetectorSettings, Face};
use faceveil::faces::geometry::{BBox, CropSquare};
use faceveil::faces::resample::{MapCache, Upsampling};
use faceveil::faces::track::{Tracker, TrackerSettings};
use faceveil::frame::rgb::RgbImage;
use faceveil::frame::{FrameMut, PixelFormat, Plane, YuvMatrix};
use faceveil::model::keys::{KdfParams, SecretKey};
use faceveil::model::{Direction, SdnModel};
use faceveil::runtime::{Provider, RuntimeOptions};
use ndarray::{Array2, Array3, Array4};

/// The project root: where the bench was built, else the working directory (a bench binary
/// copied to a GPU machine runs from a copy of the project there, see scripts/gpu_stages.sh).
fn root() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if built.join("samples").is_dir() { built } else { std::env::current_dir().unwrap() }
}

/// The astronaut photo centred on a 1280x720 grey frame.
fn frame_720p() -> RgbImage {
    let path = root().join("samples/astronaut.jpg");
    let photo = image::open(path).unwrap().to_rgb8();
    let mut canvas = image::RgbImage::from_pixel(1280, 720, image::Rgb([120, 120, 120]));
    image::imageops::overlay(&mut canvas, &photo, 384, 104);
    RgbImage::from_raw(1280, 720, canvas.into_raw()).unwrap()
}

fn view(img: &mut RgbImage) -> FrameMut<'_> {
    let (w, h) = (img.width, img.height);
    FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut img.data).unwrap()
}

/// Where the models run: `FACEVEIL_BENCH_PROVIDER` (cpu, cuda or tensorrt; cpu when unset), so
/// that the same bench measures a GPU machine's provider.
fn runtime() -> RuntimeOptions {
    let provider = std::env::var("FACEVEIL_BENCH_PROVIDER").map_or(Provider::Cpu, |p| p.parse().unwrap());
    RuntimeOptions { provider, ..RuntimeOptions::default() }
}

fn stages(c: &mut Criterion) {
    let mut img = frame_720p();
    let worker = DetectionWorker::spawn(DetectorSettings::default(), runtime()).unwrap();
    c.bench_function("downscale 720p to 640", |b| {
        let frame = view(&mut img);
        b.iter(|| black_box(frame.downscaled_rgb(640)))
    });
    // The decoders' usual format: what the CLI and the elements downscale.
    let (mut y, mut u, mut v) = (vec![0u8; 1280 * 720], vec![128u8; 640 * 360], vec![128u8; 640 * 360]);
    for (dst, px) in y.iter_mut().zip(img.data.chunks_exact(3)) {
        *dst = ((66 * px[0] as u32 + 129 * px[1] as u32 + 25 * px[2] as u32 + 128) >> 8) as u8 + 16;
    }
    c.bench_function("downscale 720p I420 to 640", |b| {
        let planes =
            vec![Plane { data: &mut y, stride: 1280 }, Plane { data: &mut u, stride: 640 }, Plane { data: &mut v, stride: 640 }];
        let frame = FrameMut::new(PixelFormat::I420, 1280, 720, YuvMatrix::Bt601, planes).unwrap();
        b.iter(|| black_box(frame.downscaled_rgb(640)))
    });
    let (small, scale) = view(&mut img).downscaled_rgb(640);
    c.bench_function("detect centerface 640x360", |b| b.iter(|| black_box(worker.detect(small.clone(), scale).unwrap())));

    let faces: Vec<Face> = (0..5)
        .map(|i| Face {
            bbox: BBox { x0: i as f32 * 200.0, y0: 100.0, x1: i as f32 * 200.0 + 80.0, y1: 200.0 },
            score: 0.9,
            landmarks: None,
        })
        .collect();
    c.bench_function("track 5 faces", |b| {
        let mut tracker = Tracker::new(TrackerSettings::default());
        b.iter(|| tracker.update(black_box(&faces)))
    });

    let crop = CropSquare { cx: 640.0, cy: 300.0, side: 200.0 };
    // A restore does a little more than an anonymize (it brings the fine detail back first); a
    // moving face's square is new every frame, a still face's maps come from the cache.
    // Since 2026-12-07 (night) outputs write the change smoothly (`Upsampling::Smooth`); streams made
    // before restore with blocks.
    for (name, fine, still, upsampling) in [
        ("anonymize, new square", FineDetail::Keep(0.25), false, Upsampling::Smooth),
        ("anonymize, new square, blocks", FineDetail::Keep(0.25), false, Upsampling::Blocks),
        ("anonymize, same square", FineDetail::Keep(0.25), true, Upsampling::Smooth),
        ("restore, new square", FineDetail::Restore(0.25), false, Upsampling::Smooth),
    ] {
        c.bench_function(&format!("crop 200px face to 128x128 ({name})"), |b| {
            let frame = view(&mut img);
            let mut cache = MapCache::new(upsampling);
            b.iter(|| {
                if !still {
                    cache = MapCache::new(upsampling);
                }
                let bands = FaceBands::read(&frame, crop, &BlendShape::default(), 128, fine, &mut cache).unwrap();
                let mut t = Array3::zeros((3, 128, 128));
                bands.to_tensor(t.view_mut());
                black_box(t)
            })
        });
    }
    let patch = Array3::from_elem((3, 128, 128), 0.1f32);
    c.bench_function("blend 128x128 back into 200px", |b| {
        let mut cache = MapCache::new(Upsampling::Smooth);
        let bands =
            FaceBands::read(&view(&mut img), crop, &BlendShape::default(), 128, FineDetail::Keep(0.25), &mut cache).unwrap();
        b.iter(|| {
            let mut frame = view(&mut img);
            bands.composite(&mut frame, patch.view());
        })
    });

    // A video call's face in the decoders' format: most of the frame, converted both ways.
    let call = CropSquare { cx: 640.0, cy: 360.0, side: 600.0 };
    c.bench_function("crop 600px I420 face to 128x128 (anonymize, same square)", |b| {
        let planes =
            vec![Plane { data: &mut y, stride: 1280 }, Plane { data: &mut u, stride: 640 }, Plane { data: &mut v, stride: 640 }];
        let frame = FrameMut::new(PixelFormat::I420, 1280, 720, YuvMatrix::Bt601, planes).unwrap();
        let mut cache = MapCache::new(Upsampling::Smooth);
        b.iter(|| {
            let bands = FaceBands::read(&frame, call, &BlendShape::default(), 128, FineDetail::Keep(0.25), &mut cache).unwrap();
            let mut t = Array3::zeros((3, 128, 128));
            bands.to_tensor(t.view_mut());
            black_box(t)
        })
    });
    for (name, upsampling) in [("", Upsampling::Smooth), (" (blocks)", Upsampling::Blocks)] {
        c.bench_function(&format!("blend 128x128 back into 600px I420{name}"), |b| {
            let planes = vec![
                Plane { data: &mut y, stride: 1280 },
                Plane { data: &mut u, stride: 640 },
                Plane { data: &mut v, stride: 640 },
            ];
            let mut frame = FrameMut::new(PixelFormat::I420, 1280, 720, YuvMatrix::Bt601, planes).unwrap();
            let mut cache = MapCache::new(upsampling);
            let bands = FaceBands::read(&frame, call, &BlendShape::default(), 128, FineDetail::Keep(0.25), &mut cache).unwrap();
            b.iter(|| bands.composite(&mut frame, patch.view()))
        });
    }

    let model_dir = root().join("models/sdn");
    let mut model = SdnModel::open(&model_dir, None, Direction::Anonymize, &runtime()).unwrap();
    let s = model.input_size();
    let attrs = vec![0.0f32; model.spec.attributes.len()];
    // 32 and 64: a GPU's batch across cameras.
    for n in [1usize, 2, 8, 32, 64] {
        // Not zeros: some kernels run faster on them than on pictures.
        let crops =
            Array4::from_shape_fn((n, 3, s, s), |(i, c, y, x)| ((i * 31 + c * 17 + y * 7 + x * 3) % 255) as f32 / 127.5 - 1.0);
        let keys = Array2::ones((n, model.spec.key_bits));
        let landmarks = model.landmark_mean().map(|m| Array2::from_shape_fn((n, m.len()), |(_, j)| m[j]));
        let sides = vec![200.0f32; n];
        c.bench_function(&format!("sdn batch of {n}"), |b| {
            b.iter(|| {
                black_box(
                    model.run(crops.view(), keys.view(), &attrs, landmarks.as_ref().map(|l| l.view()), &sides, None).unwrap(),
                )
            })
        });
    }
    // A face whose square reaches past the frame's left edge (a quarter of its grid), which the
    // model fits to its part inside, alone in its batch.
    if model.fits_cut_faces() {
        let crop = Array4::from_shape_fn((1, 3, s, s), |(_, c, y, x)| ((c * 17 + y * 7 + x * 3) % 255) as f32 / 127.5 - 1.0);
        let inside = Array4::from_shape_fn((1, 1, s, s), |(_, _, _, x)| if x < s / 4 { 0.0 } else { 1.0 });
        let keys = Array2::ones((1, model.spec.key_bits));
        let landmarks = model.landmark_mean().map(|m| Array2::from_shape_fn((1, m.len()), |(_, j)| m[j]));
        c.bench_function("sdn face cut by the frame's edge", |b| {
            b.iter(|| {
                let landmarks = landmarks.as_ref().map(|l| l.view());
                black_box(model.run(crop.view(), keys.view(), &attrs, landmarks, &[200.0], Some(inside.view())).unwrap())
            })
        });
    }

    let mut group = c.benchmark_group("keys");
    group.sample_size(10);
    group.bench_function("argon2id 64 MiB t=3", |b| {
        b.iter(|| black_box(SecretKey::derive(b"correct horse", &[7; 16], &KdfParams::default()).unwrap().key_vector(128)))
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
