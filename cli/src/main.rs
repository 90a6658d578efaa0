//! The `faceveil` command: anonymize and restore faces in images, folders, video files, RTSP
//! feeds and webcams, and measure how fast it goes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faceveil: error: {}", cli::error_words(&e));
            ExitCode::FAILURE
        }
    }
}
