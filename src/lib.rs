//! faceveil: reversible, real-time face anonymization.
//!
//! The library holds everything but media I/O: detection and tracking, the SDN model and its
//! keys, classic effects, cropping and blending, and the stream header that makes a restore
//! possible. The GStreamer elements (plugins/) and the command-line tool (src/main.rs) are thin
//! layers over it.

pub mod assets;
pub mod blend;
pub mod detect;
pub mod frame;
pub mod geometry;
pub mod rgb;
pub mod runtime;
pub mod effects;
pub mod header;
pub mod keys;
pub mod model;
pub mod track;
pub mod veil;
pub mod sidecar;
pub mod pipeline;
pub mod imagemeta;
pub mod timing;
pub mod sei;
