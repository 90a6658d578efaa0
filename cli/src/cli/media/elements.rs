//! GStreamer for the front end: started once, with the faceveil elements of this very build
//! registered, and elements made with an error that says what to install when one is missing.

use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};

/// Initialises GStreamer and registers the faceveil elements built into this binary, so that
/// they come from the same build as the command, whatever GST_PLUGIN_PATH holds (they replace
/// a plugin of the same name found there).
pub fn init() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    gst::init().context("cannot initialise GStreamer")?;
    REGISTERED
        .get_or_init(|| gstfaceveil::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow!("cannot register the faceveil elements: {e}"))
}

/// The element of GStreamer factory `factory`.
pub fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("GStreamer element '{factory}' is missing (run scripts/setup.sh)"))
}
