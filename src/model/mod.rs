//! The SDN and the secret that keys it: the model's contract (sdn.json), its sessions in both
//! directions, and key derivation from the password.

pub mod keys;
mod sdn;

pub use sdn::{CropSpec, Direction, SdnModel, SdnSpec, TensorNames, Variant, parse_attributes};
