//! Ctrl-C: the first one ends the current input cleanly (files are finalized), a second one
//! exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nfaceveil: stopping (Ctrl-C again to quit at once)");
    });
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
