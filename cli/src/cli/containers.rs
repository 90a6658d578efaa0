//! Which containers faceveil writes videos in, known by a file's extension: the one table that
//! picks a muxer and that names the videos of a folder run.

use std::path::Path;

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
