//! GStreamer-side plumbing shared by the plugin and the `faceveil` command (which includes this
//! file by path, since a binary of the core package cannot depend on the plugin crate): mapping
//! GStreamer frames onto faceveil frames, and faceveil's data in SEI messages and tags.

use faceveil::frame::{FrameMut, PixelFormat, Plane, YuvMatrix};
use faceveil::header::{FrameRecord, StreamHeader};
use gst_video::VideoFormat;
use gst_video::prelude::*;
use serde_json::json;

pub fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    Some(match format {
        VideoFormat::I420 => PixelFormat::I420,
        VideoFormat::Nv12 => PixelFormat::Nv12,
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::Rgbx | VideoFormat::Rgba => PixelFormat::Rgbx,
        VideoFormat::Bgrx | VideoFormat::Bgra => PixelFormat::Bgrx,
        VideoFormat::Xrgb | VideoFormat::Argb => PixelFormat::Xrgb,
        VideoFormat::Xbgr | VideoFormat::Abgr => PixelFormat::Xbgr,
        VideoFormat::Gray8 => PixelFormat::Gray8,
        _ => return None,
    })
}

/// Views a mapped GStreamer frame as a faceveil frame.
pub fn frame_view<'a>(frame: &'a mut gst_video::VideoFrameRef<&mut gst::BufferRef>) -> Result<FrameMut<'a>, String> {
    let info = frame.info().clone();
    let format = pixel_format(info.format()).ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
    let matrix = match info.colorimetry().matrix() {
        gst_video::VideoColorMatrix::Bt709 => YuvMatrix::Bt709,
        gst_video::VideoColorMatrix::Unknown => YuvMatrix::default_for_height(info.height() as usize),
        _ => YuvMatrix::Bt601,
    };
    let strides: Vec<usize> = info.stride().iter().map(|s| *s as usize).collect();
    let n = info.n_planes() as usize;
    let planes: Vec<Plane<'a>> = frame
        .planes_data_mut()
        .into_iter()
        .take(n)
        .zip(strides)
        .map(|(data, stride)| Plane { data, stride })
        .collect();
    FrameMut::new(format, info.width() as usize, info.height() as usize, matrix, planes).map_err(|e| e.to_string())
}

/// The user-data-unregistered SEI identifier of faceveil payloads.
pub const SEI_UUID: [u8; 16] = *b"faceveil-sdn-v1\0";

/// SEI payload: the frame's crops, plus the header on the first frame and periodically after,
/// so that a restore can join mid-stream.
pub fn sei_payload(record: &FrameRecord, header: Option<&StreamHeader>) -> Vec<u8> {
    let mut v = json!({ "record": record });
    if let Some(h) = header {
        v["header"] = serde_json::to_value(h).expect("header serializes");
    }
    serde_json::to_vec(&v).expect("payload serializes")
}

/// The faceveil SEI payload of a buffer, if it carries one.
pub fn read_sei(buf: &gst::BufferRef) -> Option<(Option<String>, Option<FrameRecord>)> {
    buf.iter_meta::<gst_video::video_meta::VideoSeiUserDataUnregisteredMeta>()
        .find(|m| m.uuid() == SEI_UUID)
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m.data()).unwrap_or_default();
            let header = v.get("header").map(|h| h.to_string());
            let record = v.get("record").and_then(|r| serde_json::from_value(r.clone()).ok());
            (header, record)
        })
}

/// Prefix of the tag comment that carries the header through containers.
pub const TAG_PREFIX: &str = "faceveil-header:";

