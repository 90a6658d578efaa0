//! The classic modes that need no model: blur, pixelate and a solid fill. They are one-way.

use std::str::FromStr;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::frame::rgb::RgbImage;
use crate::frame::to_u8;

/// What replaces a face (in a config file by its lowercase name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The SDN model: a reversible synthetic identity keyed by the password.
    #[default]
    Sdn,
    Blur,
    Pixelate,
    Solid,
}

impl FromStr for Mode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sdn" => Ok(Self::Sdn),
            "blur" => Ok(Self::Blur),
            "pixelate" => Ok(Self::Pixelate),
            "solid" => Ok(Self::Solid),
            other => bail!("unknown mode '{other}' (expected sdn, blur, pixelate or solid)"),
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sdn => "sdn",
            Self::Blur => "blur",
            Self::Pixelate => "pixelate",
            Self::Solid => "solid",
        }
    }
}

/// Three box-blur passes approximate a Gaussian; the radius scales with the face so that a blurred
/// face keeps no recognisable detail at any size. The blur runs on a copy shrunk so that the face
/// spans about 32 pixels (the detail a strong blur keeps fits easily) and is sampled back up.
pub fn blur(img: &RgbImage, face_side: f32) -> RgbImage {
    let factor = ((face_side / 32.0).floor() as usize).max(1);
    let small = shrink(img, factor);
    let radius = ((face_side / 8.0 / factor as f32).round() as usize).max(2);
    let mut blurred = small;
    for _ in 0..3 {
        blurred = box_blur_rows(&blurred, radius);
        blurred = transpose(&box_blur_rows(&transpose(&blurred), radius));
    }
    if factor == 1 {
        return blurred;
    }
    // Bilinear, edge replicated, each row's and column's two taps worked out once: sampling
    // pixel by pixel (a floor, a clamp and a rounding call each) was most of blur mode's own CPU
    // time on the sample clip (perf, 2026-12-06).
    let inv = 1.0 / factor as f32;
    let xs = bilinear_taps(img.width, blurred.width, inv);
    let mut out = RgbImage::new(img.width, img.height);
    for (y, (y0, y1, fy)) in bilinear_taps(img.height, blurred.height, inv).into_iter().enumerate() {
        let (top, bottom) = (blurred.row(y0), blurred.row(y1));
        for (px, &(x0, x1, fx)) in out.row_mut(y).chunks_exact_mut(3).zip(&xs) {
            for (c, v) in px.iter_mut().enumerate() {
                let upper = top[x0 * 3 + c] as f32 * (1.0 - fx) + top[x1 * 3 + c] as f32 * fx;
                let lower = bottom[x0 * 3 + c] as f32 * (1.0 - fx) + bottom[x1 * 3 + c] as f32 * fx;
                *v = to_u8(upper * (1.0 - fy) + lower * fy);
            }
        }
    }
    out
}

/// For each of `len` output positions, the two source positions (of `source_len`) a bilinear
/// sample at `(i + 0.5) * inv - 0.5` reads, clamped to the source, and the second's weight.
fn bilinear_taps(len: usize, source_len: usize, inv: f32) -> Vec<(usize, usize, f32)> {
    let last = source_len - 1;
    (0..len)
        .map(|i| {
            let s = ((i as f32 + 0.5) * inv - 0.5).clamp(0.0, last as f32);
            let s0 = s.floor() as usize;
            (s0, (s0 + 1).min(last), s - s0 as f32)
        })
        .collect()
}

/// Area-averages `img` down by an integer `factor` (edge blocks may be partial).
fn shrink(img: &RgbImage, factor: usize) -> RgbImage {
    if factor == 1 {
        return img.clone();
    }
    let (w, h) = (img.width.div_ceil(factor), img.height.div_ceil(factor));
    let mut out = RgbImage::new(w, h);
    for oy in 0..h {
        for ox in 0..w {
            let (mut sum, mut n) = ([0u32; 3], 0u32);
            for y in oy * factor..((oy + 1) * factor).min(img.height) {
                for x in ox * factor..((ox + 1) * factor).min(img.width) {
                    let p = img.pixel(x, y);
                    for (acc, v) in sum.iter_mut().zip(p.iter()) {
                        *acc += *v as u32;
                    }
                    n += 1;
                }
            }
            let i = (oy * w + ox) * 3;
            for (c, s) in sum.iter().enumerate() {
                out.data[i + c] = (s / n) as u8;
            }
        }
    }
    out
}

/// Blocks of about a tenth of the face side, each the mean of its pixels.
pub fn pixelate(img: &RgbImage, face_side: f32, origin: (usize, usize)) -> RgbImage {
    let block = ((face_side / 10.0).round() as usize).max(4);
    let mut out = img.clone();
    // Blocks are aligned to the crop origin so that they stay put while the region moves.
    let (ox, oy) = (origin.0 % block, origin.1 % block);
    let starts = |first: usize, len: usize| {
        let mut v = vec![0];
        let mut s = if first == 0 { block } else { first };
        while s < len {
            v.push(s);
            s += block;
        }
        v
    };
    let ys = starts((block - oy) % block, img.height);
    let xs = starts((block - ox) % block, img.width);
    for (yi, &y0) in ys.iter().enumerate() {
        let y1 = ys.get(yi + 1).copied().unwrap_or(img.height);
        for (xi, &x0) in xs.iter().enumerate() {
            let x1 = xs.get(xi + 1).copied().unwrap_or(img.width);
            let mut sum = [0u32; 3];
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = img.pixel(x, y);
                    for c in 0..3 {
                        sum[c] += p[c] as u32;
                    }
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            for y in y0..y1 {
                for x in x0..x1 {
                    let i = (y * img.width + x) * 3;
                    for (c, s) in sum.iter().enumerate() {
                        out.data[i + c] = (s / n) as u8;
                    }
                }
            }
        }
    }
    out
}

fn box_blur_rows(img: &RgbImage, radius: usize) -> RgbImage {
    let mut out = RgbImage::new(img.width, img.height);
    let w = img.width;
    for y in 0..img.height {
        let src = img.row(y);
        let dst = out.row_mut(y);
        for c in 0..3 {
            let mut sum = 0u32;
            // Edge-replicated running sum over [x - radius, x + radius].
            let at = |x: isize| src[(x.clamp(0, w as isize - 1) as usize) * 3 + c] as u32;
            for k in -(radius as isize)..=(radius as isize) {
                sum += at(k);
            }
            let n = (2 * radius + 1) as u32;
            for x in 0..w {
                dst[x * 3 + c] = (sum / n) as u8;
                sum += at(x as isize + radius as isize + 1);
                sum -= at(x as isize - radius as isize);
            }
        }
    }
    out
}

fn transpose(img: &RgbImage) -> RgbImage {
    let mut out = RgbImage::new(img.height, img.width);
    for y in 0..img.height {
        for x in 0..img.width {
            let i = (x * img.height + y) * 3;
            out.data[i..i + 3].copy_from_slice(&img.pixel(x, y));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkerboard(n: usize) -> RgbImage {
        let data = (0..n * n).flat_map(|i| if (i % n + i / n).is_multiple_of(2) { [255u8; 3] } else { [0u8; 3] }).collect();
        RgbImage::from_raw(n, n, data).unwrap()
    }

    #[test]
    fn blur_removes_fine_detail_at_every_face_size() {
        for side in [24.0, 64.0, 200.0] {
            let out = blur(&checkerboard(side as usize), side);
            let (lo, hi) = out.data.iter().fold((255u8, 0u8), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
            assert!(hi - lo < 40, "side {side}: blurred checkerboard still spans {lo}..{hi}");
        }
        let out = blur(&checkerboard(64), 64.0);
        let (lo, hi) = out.data.iter().fold((255u8, 0u8), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        assert!(hi - lo < 40, "blurred checkerboard still spans {lo}..{hi}");
    }

    #[test]
    fn pixelate_makes_flat_blocks() {
        let img = RgbImage::from_raw(40, 40, (0..40 * 40 * 3).map(|i| (i % 251) as u8).collect()).unwrap();
        let out = pixelate(&img, 40.0, (0, 0));
        assert_eq!(out.pixel(0, 0), out.pixel(3, 3));
        assert_ne!(img.pixel(0, 0), img.pixel(3, 3));
    }
}
