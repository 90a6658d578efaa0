//! GStreamer plugin `faceveil`: thin elements over the faceveil library.
//!
//! - `faceveildetect` finds and tracks faces and attaches them as region-of-interest metas;
//! - `faceveil` anonymizes faces (SDN with a password, or blur, pixelate, solid);
//! - `faceunveil` restores SDN-anonymized faces with the password;
//! - `faceveilsei`, after an encoder, writes `faceveil`'s per-frame data into H.264/H.265 as SEI;
//! - `faceveilcheckpoint`, before a file sink, keeps a signed recording's newest checkpoint beside it;
//! - `faceveilx264enc` codes H.264 with libx264, the faces `faceveil` recorded a few steps finer.
//!
//! The plugin loads from its shared library (gst-launch-1.0, applications) or is registered
//! statically with `plugin_register_static()` by a program that links this crate (the `faceveil`
//! command). [`streamdata`] is public for such programs: it carries the SEI metas the elements
//! read and write through encoders and decoders; so is [`outofband`], the tags, messages and
//! queries beside the frames, [`timestamps`], which keeps frames from sharing a timestamp, and
//! [`cutmp4`], which reads an MP4 the CLI finished that was cut short after.

use gst::glib;

mod common;
pub mod cutmp4;
mod faceunveil;
mod faceveil;
pub use faceveil::FaceVeil;
mod faceveilcheckpoint;
mod faceveildetect;
mod faceveilsei;
mod faceveilx264enc;
mod facevideo;
pub use facevideo::SEALED_QUANTIZERS;
pub mod outofband;
mod rois;
mod settings;
pub mod streamdata;
pub mod timestamps;
mod x264;
/// Whether `faceveilx264enc` can code here: it loads libx264 when it starts.
pub use x264::loads as libx264_loads;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // The host process (gst-launch-1.0, an application) lives elsewhere: runtime files are
    // looked for beside the plugin's own file. Registered statically the plugin has no file, and
    // they are found beside the program that links it, which is faceveil's own binary.
    if let Some(dir) = plugin.filename().as_deref().and_then(std::path::Path::parent) {
        ::faceveil::runtime::assets::set_install_dir(dir);
    }
    rois::register_scan_meta();
    faceveildetect::register(plugin)?;
    faceveil::register(plugin)?;
    faceunveil::register(plugin)?;
    faceveilsei::register(plugin)?;
    faceveilx264enc::register(plugin)?;
    faceveilcheckpoint::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    faceveil,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
