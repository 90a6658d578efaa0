//! GStreamer plugin `faceveil`: thin elements over the faceveil library.
//!
//! - `faceveildetect` finds and tracks faces and attaches them as region-of-interest metas;
//! - `faceveil` anonymizes faces (SDN with a password, or blur, pixelate, solid);
//! - `faceunveil` restores SDN-anonymized faces with the password.
//!
//! [`streamdata`] is public for the `faceveil` command, which maps frames and stream data the
//! same way.

use gst::glib;

mod common;
mod faceunveil;
mod faceveil;
mod faceveildetect;
pub mod streamdata;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // The host process (gst-launch-1.0, an application) lives elsewhere: runtime files are
    // looked for beside the plugin's own file.
    if let Some(dir) = plugin.filename().as_deref().and_then(std::path::Path::parent) {
        ::faceveil::runtime::assets::set_install_dir(dir);
    }
    common::register_scan_meta();
    faceveildetect::register(plugin)?;
    faceveil::register(plugin)?;
    faceunveil::register(plugin)?;
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
