//! faceveil: reversible, real-time face anonymization.
//!
//! The library holds everything but media I/O, grouped by what it is about:
//! - [`faces`]: detection, tracking, cropping, blending, one-way effects;
//! - [`model`]: the SDN and the keys derived from a password;
//! - [`secrets`]: age identities and recipients, and faces sealed to them;
//! - [`runtime`]: ONNX Runtime sessions and where the runtime files are found;
//! - [`stream`]: the header and per-frame records a restore needs, and how they travel;
//! - [`frame`]: raw frames in the pixel formats handled.
//!
//! [`veil`] and [`pipeline`] put them together into the per-frame work, shaped by [`config`].
//! The GStreamer elements (plugins/) and the command-line tool (cli/) are thin layers over it.

pub mod config;
pub mod error;
pub mod faces;
pub mod finder;
pub mod frame;
pub mod model;
pub mod pipeline;
pub mod runtime;
pub mod secrets;
pub mod stream;
pub mod timing;
pub mod veil;

pub use error::Error;
