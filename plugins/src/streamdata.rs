//! GStreamer-side plumbing shared by the elements and the `faceveil` command: mapping GStreamer
//! frames onto faceveil frames, and faceveil's stream data in SEI metas and tags.

use faceveil::frame::{FrameMut, PixelFormat, Plane, YuvMatrix};
use faceveil::stream::header::StreamHeader;
use faceveil::stream::{SEI_UUID, SeiPayload, TAG_PREFIX};
use gst_video::VideoFormat;
use gst_video::prelude::*;

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
    let planes: Vec<Plane<'a>> =
        frame.planes_data_mut().into_iter().take(n).zip(strides).map(|(data, stride)| Plane { data, stride }).collect();
    FrameMut::new(format, info.width() as usize, info.height() as usize, matrix, planes).map_err(|e| e.to_string())
}

/// The faceveil SEI payload of a buffer, if it carries one (an unreadable or altered one is an
/// error, not an absence).
pub fn read_sei(buf: &gst::BufferRef) -> Option<Result<SeiPayload, faceveil::Error>> {
    buf.iter_meta::<gst_video::video_meta::VideoSeiUserDataUnregisteredMeta>()
        .find(|m| m.uuid() == SEI_UUID)
        .map(|m| SeiPayload::decode(m.data()))
}

/// Attaches a frame's payload as a SEI meta, for an encoder downstream to write into the stream.
pub fn attach_sei(buf: &mut gst::BufferRef, payload: &SeiPayload) {
    gst_video::video_meta::VideoSeiUserDataUnregisteredMeta::add(buf, &SEI_UUID, &payload.encode());
}

/// The header as a container comment tag.
pub fn header_tag(header: &StreamHeader) -> String {
    format!("{TAG_PREFIX}{}", header.encode())
}

/// The header text a comment tag carries, if it is faceveil's.
pub fn header_from_tag(comment: &str) -> Option<&str> {
    comment.strip_prefix(TAG_PREFIX)
}
