//! Ctrl-C, or SIGTERM (a service manager, `timeout`, `docker stop`): the first ends the current
//! input cleanly (files are finalized), a second exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::SIGTERM;

static REQUESTED: AtomicBool = AtomicBool::new(false);

pub fn install() {
    let _ = ctrlc::set_handler(|| ask(130, "Ctrl-C again"));
    // SIGTERM's default ended the process at once, leaving an MP4 without its index (unplayable)
    // and its sidecar as .partial files.
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGTERM]) {
        let _ = std::thread::Builder::new().name("faceveil-sigterm".into()).spawn(move || {
            for _ in signals.forever() {
                ask(143, "SIGTERM again");
            }
        });
    }
}

/// A request to stop: the first one is taken, the second exits with `status`.
fn ask(status: i32, again: &str) {
    if REQUESTED.swap(true, Ordering::SeqCst) {
        std::process::exit(status);
    }
    eprintln!("\nfaceveil: stopping ({again} to quit at once)");
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
