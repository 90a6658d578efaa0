//! Pictures, videos and streams in and out: what the user points faceveil at (`input`), photos
//! (`images`), video files, cameras and pipelines through GStreamer (`video`, `animation`,
//! `colour`, `containers`), the newest checkpoint of a signed video being written
//! (`checkpoint`), a write a full disk cut short taken off again (`writes`), RTSP read and served
//! (`rtsp`, `stuck`) and the virtual camera (`virtualcam`).

pub mod animation;
pub mod checkpoint;
pub mod colour;
pub mod containers;
pub mod elements;
pub mod encoder;
pub mod images;
pub mod input;
pub mod mp4;
pub mod rtsp;
pub mod stuck;
pub mod video;
pub mod virtualcam;
pub mod writes;
