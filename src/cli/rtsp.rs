//! `--serve-rtsp PORT`: the anonymized stream published with gst-rtsp-server.

use anyhow::Result;
use faceveil::pipeline::Anonymizer;

use super::input::Input;

pub fn serve(_input: &Input, _port: u16, _anonymizer: Anonymizer) -> Result<()> {
    anyhow::bail!("--serve-rtsp is not available yet")
}
