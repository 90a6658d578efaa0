//! What shapes an anonymization or a restore: mode, model, detection, tracking and key derivation.

use std::path::PathBuf;

use crate::faces::detect::DetectorSettings;
use crate::faces::effects::Mode;
use crate::faces::track::TrackerSettings;
use crate::model::keys::{KdfParams, Keying};
use crate::runtime::RuntimeOptions;
use crate::secrets::Signer;

/// Detection on every 2nd frame (every 3rd while every face in view is sure, see
/// `finder::SURE_SCORE_FACTOR`), the tracker's predictions in between, by default: on two cores
/// about 40 fps against 25 with detection on every frame (docs/PERFORMANCE.md), and on the six
/// clips of scripts/leaks.py no face is left uncovered in a frame that detection on every frame
/// covered (with the lower threshold of scheduled detections, see `finder`).
pub const DEFAULT_DETECT_EVERY: u32 = 2;

/// Everything that shapes an anonymization or a restore, password aside.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// SDN model folder (with sdn.json) or the sdn.json file.
    pub model: PathBuf,
    pub variant: Option<String>,
    pub runtime: RuntimeOptions,
    pub detector: DetectorSettings,
    pub tracker: TrackerSettings,
    /// Run the detector every this many frames and track in between.
    pub detect_every: u32,
    pub mask_scale: f32,
    /// Attribute factors (`name`, value): part of the secret, needed again to restore.
    pub attributes: Vec<(String, f32)>,
    pub kdf: KdfParams,
    /// How an anonymization keys its faces (a restore follows the stream's header).
    pub keying: Keying,
    /// A restore refuses a stream whose header this key did not sign (`--signer`).
    pub signer: Option<Signer>,
    /// A restore refuses a stream signed by any of these keys (`--revoked`).
    pub revoked: Vec<Signer>,
}

impl Config {
    pub fn new(model: PathBuf) -> Self {
        Self {
            mode: Mode::Sdn,
            model,
            variant: None,
            runtime: RuntimeOptions::default(),
            detector: DetectorSettings::default(),
            tracker: TrackerSettings::default(),
            detect_every: DEFAULT_DETECT_EVERY,
            mask_scale: 1.0,
            attributes: Vec::new(),
            kdf: KdfParams::default(),
            keying: Keying::Track,
            signer: None,
            revoked: Vec::new(),
        }
    }
}
