//! The models and the secret that keys them: the SDN and its contract (sdn.json), ONNX Runtime
//! sessions, key derivation from the password, and where the runtime files are found.

pub mod assets;
pub mod keys;
pub mod runtime;
mod sdn;

pub use sdn::{CropSpec, Direction, SdnModel, SdnSpec, TensorNames, Variant, parse_attributes};
