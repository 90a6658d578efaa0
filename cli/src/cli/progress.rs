//! Progress bars and the --boxes-json record format.

use faceveil::faces::track::Track;
use gstfaceveil::streamdata::FaceBox;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

pub fn bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}");
    bar.set_style(ProgressStyle::with_template(&template).expect("valid template"));
    bar
}

#[derive(Serialize)]
pub struct BoxJson {
    pub track: u64,
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub score: f32,
}

impl From<&Track> for BoxJson {
    fn from(t: &Track) -> Self {
        Self { track: t.id, x: t.bbox.x0, y: t.bbox.y0, width: t.bbox.width(), height: t.bbox.height(), score: t.score }
    }
}

impl From<&FaceBox> for BoxJson {
    fn from(f: &FaceBox) -> Self {
        Self { track: f.track, x: f.x as f32, y: f.y as f32, width: f.width as f32, height: f.height as f32, score: f.score }
    }
}
