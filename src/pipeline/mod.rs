//! Anonymizer and Restorer: one frame in, faces replaced (or restored) in place, plus the record
//! a restore needs. The GStreamer elements and the CLI drive these and nothing else.

mod anonymize;
mod restore;
#[cfg(test)]
mod tests;

pub use anonymize::Anonymizer;
pub use restore::Restorer;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::Error;
use crate::config::Config;
use crate::faces::blend::CropContext;
use crate::faces::detect::{self, DetectorKind};
use crate::faces::effects::Mode;
use crate::faces::track::Track;
use crate::frame::{FrameMut, Region};
use crate::model::keys::{Keying, SecretKey};
use crate::model::{Direction, SdnModel};
use crate::runtime::RuntimeOptions;
use crate::secrets::{FacePlace, SigningKey};
use crate::stream::header::{FaceRecord, FrameRecord};
use crate::veil::{SdnKeyed, Veil};

/// Who signs a sealed stream ([`Anonymizer::seal_to`]), and whether its header promises that
/// every coded picture is signed as well, after the encoder (`stream::pictures`): only a front
/// end that does sign them says so.
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    pub key: &'a SigningKey,
    pub pictures: bool,
}

/// The password, refused where there is none: the sdn mode needs one.
fn required(password: Option<&[u8]>) -> Result<&[u8]> {
    password.filter(|p| !p.is_empty()).ok_or_else(|| Error::MissingPassword.into())
}

/// How the SDN runs in `direction`: an anonymize beside the detector, a restore alone
/// ([`RuntimeOptions::beside_another_model`]).
fn sdn_runtime(config: &Config, direction: Direction) -> RuntimeOptions {
    match direction {
        Direction::Anonymize => config.runtime.beside_another_model(),
        Direction::Restore => config.runtime.clone(),
    }
}

/// Opens the SDN in `direction` with the secret that `derive` gives (Argon2id).
fn open_sdn(
    config: &Config,
    direction: Direction,
    derive: impl FnOnce() -> Result<SecretKey> + Send,
    keying: Keying,
) -> Result<Veil> {
    // Argon2id's deliberate cost and opening the model take about as long each: side by side,
    // start-up waits for the longer of the two rather than their sum.
    let (model, secret) = std::thread::scope(|s| {
        let secret = s.spawn(derive);
        let model = SdnModel::open(&config.model, config.variant.as_deref(), direction, &sdn_runtime(config, direction))
            .with_context(|| format!("SDN model {}", config.model.display()));
        (model, secret.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let (model, secret) = (model?, secret?);
    let attributes = Zeroizing::new(model.spec.attribute_vector(&config.attributes)?);
    Ok(Veil::sdn(SdnKeyed::new(model, secret, keying, attributes)).with_mask_scale(config.mask_scale))
}

/// The models an [`Anonymizer`] (`direction` anonymize: the detector and the SDN) or a
/// [`Restorer`] (the restore graph) of `config` will open, opened on a thread of their own and
/// held until this is dropped. A front end that must find its decoder first (GStreamer's
/// decodebin took 0.4 s of the sample's run) starts them meanwhile, and its elements then find
/// the sessions open ([`crate::runtime::shared`]), or wait for the one being opened. Failures
/// are left to the elements, which open the same models and report them.
pub struct WarmModels {
    done: Option<crossbeam_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WarmModels {
    pub fn start(config: &Config, direction: Direction) -> Self {
        let config = config.clone();
        let (done, wait) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new().name("faceveil-warm".into()).spawn(move || {
            let detector = (direction == Direction::Anonymize && config.detector.kind == DetectorKind::CenterFace)
                .then(|| detect::open(&config.detector, &config.runtime.beside_another_model()));
            let sdn = (config.mode == Mode::Sdn)
                .then(|| SdnModel::open(&config.model, config.variant.as_deref(), direction, &sdn_runtime(&config, direction)));
            let _ = wait.recv();
            drop((detector, sdn));
        });
        Self { done: Some(done), thread: thread.ok() }
    }
}

impl Drop for WarmModels {
    fn drop(&mut self) {
        self.done.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one frame produced.
pub struct FrameOutcome {
    pub record: FrameRecord,
    pub tracks: Vec<Track>,
    /// Set when the frame could not be anonymized as asked and was made safe another way.
    pub fallback: Option<Fallback>,
}

/// How a frame that could not be anonymized as asked was kept from showing faces.
#[derive(Debug)]
pub enum Fallback {
    /// Where the faces are is unknown (the detector failed): the whole frame was painted black.
    Blanked(anyhow::Error),
    /// The faces were found but the effect failed (the model, mid-stream): their squares were
    /// painted black, and the record lists no face, so a restore leaves them black.
    FacesFilled(anyhow::Error),
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blanked(e) => write!(f, "faces could not be found ({e:#}): the frame was blanked"),
            Self::FacesFilled(e) => write!(f, "faces could not be anonymized ({e:#}): they were painted black"),
        }
    }
}

/// Where a recorded face's pixels are in `frame`, and the place its seal is bound to.
fn face_place(
    frame: &FrameMut,
    face: &FaceRecord,
    frame_index: u64,
    pts: Option<u64>,
    index: usize,
) -> Option<(Region, FacePlace)> {
    // What is sealed is all the effect may rewrite, so that opening it undoes every change.
    let region = CropContext::region(frame, face.crop())?;
    let place = FacePlace {
        frame: frame_index,
        pts,
        index: index as u32,
        track: face.track,
        region: [region.x, region.y, region.width, region.height].map(|v| v as u32),
    };
    Some((region, place))
}
