//! The classic modes that need no model: blur, pixelate and a solid fill. They are one-way.

use std::str::FromStr;

use anyhow::{Result, bail};

use crate::rgb::RgbImage;

/// What replaces a face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
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
/// face keeps no recognisable detail at any size.
pub fn blur(img: &RgbImage, face_side: f32) -> RgbImage {
    let radius = ((face_side / 8.0).round() as usize).max(2);
    let mut out = img.clone();
    for _ in 0..3 {
        out = box_blur_rows(&out, radius);
        out = transpose(&box_blur_rows(&transpose(&out), radius));
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
                    for c in 0..3 {
                        out.data[i + c] = (sum[c] / n) as u8;
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
        let data = (0..n * n).flat_map(|i| if (i % n + i / n) % 2 == 0 { [255u8; 3] } else { [0u8; 3] }).collect();
        RgbImage::from_raw(n, n, data).unwrap()
    }

    #[test]
    fn blur_removes_fine_detail() {
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
