//! Which containers faceveil writes videos in, and which formats photos, known by a file's
//! extension: the one table that picks a muxer or an encoder and that names outputs (a folder
//! run's files, an output left unnamed).

use std::path::Path;

use image::ImageFormat;

/// The containers faceveil writes videos in.
pub enum MuxerKind {
    Mp4,
    Matroska,
    MpegTs,
}

/// `path`'s extension in lower case (empty where it has none).
pub fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default()
}

/// The container a video written to `path` gets, by the path's extension; `None` where faceveil
/// writes none by that name.
pub fn muxer_kind(path: &Path) -> Option<MuxerKind> {
    match extension(path).as_str() {
        "mp4" | "m4v" | "mov" => Some(MuxerKind::Mp4),
        "mkv" => Some(MuxerKind::Matroska),
        "ts" | "m2ts" => Some(MuxerKind::MpegTs),
        _ => None,
    }
}

/// Whether faceveil writes a video under `path`'s own name.
pub fn writes_container(path: &Path) -> bool {
    muxer_kind(path).is_some()
}

/// The format a photo written to `path` gets, by the path's extension: PNG or JPEG, whose
/// metadata carry the restore data; `None` where faceveil writes no photo by that name.
pub fn photo_format(path: &Path) -> Option<ImageFormat> {
    match ImageFormat::from_path(path) {
        Ok(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => Some(format),
        _ => None,
    }
}
