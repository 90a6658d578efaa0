//! The command's settings handed to the plugin's elements as their properties.

use std::path::Path;

use anyhow::{Context, Result, bail};
use faceveil::config::Config;
use faceveil::faces::effects::Mode;
use faceveil::secrets::SigningKey;
use gst::prelude::*;
use zeroize::Zeroizing;

use super::source::HEADER_WAIT_FRAMES;
use crate::cli::media::colour;
use crate::cli::media::elements::init;
use crate::cli::media::encoder::{DEFAULT_CRF, FACES_FINER, Quality};

/// Frames a queue between two processing stages holds.
const STAGE_QUEUE_FRAMES: u32 = 4;

/// The command's settings, handed to the elements as their properties (the password through
/// the write-only one: never through argv or a launch line).
pub struct Settings {
    pub config: Config,
    /// The --attributes text, which the config holds parsed.
    pub attributes: String,
    pub password: Option<Zeroizing<String>>,
    pub sealing: Sealing,
}

/// Where a restore finds what the anonymized video did not carry itself, and how it was coded.
#[derive(Clone, Copy, Default)]
pub struct Source<'a> {
    /// The sidecar, where the command was given one or found it beside the input.
    pub sidecar: Option<&'a Path>,
    /// The stream header, given on the command line.
    pub header: Option<&'a str>,
    /// The video never went through a lossy codec: `faceunveil lossless-input`.
    pub lossless: bool,
    /// A camera or a stream from the network, which may be joined at any frame.
    pub live: bool,
}

/// Sealed faces: who they are sealed to (faceveil) and who opens them (faceunveil).
#[derive(Default)]
pub struct Sealing {
    /// age recipients, comma-separated, and how many of them must unseal together.
    pub recipients: Option<String>,
    pub threshold: u32,
    /// Seal bit-exact (PNG) instead of as a face video per track.
    pub lossless: bool,
    /// x264's quantizer for the face videos, where not the element's default.
    pub quantizer: Option<u32>,
    /// Also seal to the password.
    pub to_password: bool,
    /// Identity files, comma-separated, and the passphrase protected ones need.
    pub identity: Option<String>,
    pub passphrase: Option<Zeroizing<String>>,
    /// Revocation files, comma-separated: a restore refuses what their keys signed.
    pub revoked: Option<String>,
    /// The signing key, opened once: it signs the header and each record in `faceveil`, and
    /// each coded picture after the encoder, as that header promises (`sign-pictures`).
    pub signing: Option<SigningKey>,
}

impl Sealing {
    /// Whether faces are sealed at all: to recipients, to the password, or both.
    pub fn seals(&self) -> bool {
        self.recipients.is_some() || self.to_password
    }

    /// How an anonymization with these seals takes a full-range input: faces sealed in YUV open
    /// only in YUV ([`colour::FullRange`]).
    pub fn full_range(&self) -> colour::FullRange {
        colour::FullRange::for_anonymizing(self.seals())
    }
}

/// Sets a property, refusing a number outside the element's range (glib panics on those).
fn set(element: &gst::Element, name: &str, value: impl Into<gst::glib::Value>) -> Result<()> {
    let value = value.into();
    let pspec = element.find_property(name).with_context(|| format!("{} has no property {name}", element.name()))?;
    let range = if let (Some(p), Ok(v)) = (pspec.downcast_ref::<gst::glib::ParamSpecUInt>(), value.get::<u32>()) {
        (!(p.minimum()..=p.maximum()).contains(&v)).then(|| (p.minimum().to_string(), p.maximum().to_string()))
    } else if let (Some(p), Ok(v)) = (pspec.downcast_ref::<gst::glib::ParamSpecFloat>(), value.get::<f32>()) {
        (!(p.minimum()..=p.maximum()).contains(&v)).then(|| (p.minimum().to_string(), p.maximum().to_string()))
    } else {
        None
    };
    if let Some((min, max)) = range {
        bail!("--{name} must be between {min} and {max}");
    }
    element.set_property_from_value(name, &value);
    Ok(())
}

/// Sets an enum property by its nick.
fn set_enum(element: &gst::Element, name: &str, nick: &str) -> Result<()> {
    let pspec = element.find_property(name).with_context(|| format!("{} has no property {name}", element.name()))?;
    let class = gst::glib::EnumClass::with_type(pspec.value_type()).with_context(|| format!("{name} is not an enum"))?;
    let value = class.to_value_by_nick(nick).with_context(|| format!("{} does not know {name} {nick}", element.name()))?;
    set(element, name, value)
}

/// One of the plugin's elements (registering them first, once).
fn element(factory: &str) -> Result<gst::Element> {
    init()?;
    gst::ElementFactory::make(factory).build().with_context(|| format!("the {factory} element is not registered"))
}

impl Settings {
    /// Whether the output's surrogates are ones a password restore undoes (sdn with a password;
    /// not one-way effects, nor surrogates keyed at random for recipients alone): their faces
    /// are then coded finer, since the restore multiplies the codec's error there.
    pub fn restores_surrogates(&self) -> bool {
        self.config.mode == Mode::Sdn && self.password.is_some()
    }

    /// How an anonymized video is coded: surrogates a password restore undoes get the bits it
    /// needs; one-way effects, and surrogates keyed at random for recipients alone, do not.
    pub fn anonymized_quality(&self) -> Quality {
        if self.restores_surrogates() { Quality::CrfFacesFiner(DEFAULT_CRF, FACES_FINER) } else { Quality::Crf(DEFAULT_CRF) }
    }

    /// Detection: faceveildetect's job, and faceveil's and faceunveil's where no faces come
    /// from upstream.
    fn detection(&self, element: &gst::Element) -> Result<()> {
        let c = &self.config;
        set_enum(element, "detector", c.detector.kind.name())?;
        set_enum(element, "provider", c.runtime.provider.name())?;
        set(element, "threads", u32::try_from(c.runtime.intra_threads).unwrap_or(u32::MAX))?;
        set(element, "threshold", c.detector.threshold)?;
        set(element, "min-face-size", c.detector.min_face_size.round() as u32)?;
        set(element, "detect-interval", c.detect_every)?;
        set(element, "detect-size", u32::try_from(c.detector.max_side).unwrap_or(u32::MAX))
    }

    /// The model, its key and its blending: faceveil's and faceunveil's.
    fn model(&self, element: &gst::Element) -> Result<()> {
        let c = &self.config;
        set(element, "model", c.model.to_str().context("the model path is not UTF-8")?)?;
        set(element, "variant", c.variant.as_deref().unwrap_or_default())?;
        set(element, "mask-scale", c.mask_scale)?;
        set(element, "attributes", self.attributes.as_str())?;
        if let Some(password) = &self.password {
            set(element, "password", password.as_str())?;
        }
        Ok(())
    }

    /// `faceveildetect ! queue ! faceveil`: detecting a frame overlaps anonymizing the one before.
    /// faceveil writes the sidecar, if given, and the stream data (SEI metas, header tag).
    pub fn anonymizer(&self, sidecar: Option<&Path>) -> Result<Vec<gst::Element>> {
        let detect = element("faceveildetect")?;
        self.detection(&detect)?;
        let veil = element("faceveil")?;
        self.detection(&veil)?;
        self.model(&veil)?;
        set_enum(&veil, "mode", self.config.mode.name())?;
        set_enum(&veil, "keying", if self.config.keying.is_stream() { "stream" } else { "track" })?;
        if let Some(path) = sidecar {
            set(&veil, "sidecar", path.to_str().context("the sidecar path is not UTF-8")?)?;
        }
        if let Some(recipients) = &self.sealing.recipients {
            set(&veil, "recipients", recipients.as_str())?;
            set(&veil, "recipients-threshold", self.sealing.threshold)?;
        }
        set(&veil, "seal-password", self.sealing.to_password)?;
        set(&veil, "sealed-lossless", self.sealing.lossless)?;
        if let Some(quantizer) = self.sealing.quantizer {
            set(&veil, "sealed-quantizer", quantizer)?;
        }
        if let Some(key) = &self.sealing.signing {
            let veil = veil.downcast_ref::<gstfaceveil::FaceVeil>().context("the faceveil element is not faceveil's")?;
            veil.set_signing_key(key.clone());
        }
        set(&veil, "sign-pictures", self.sealing.signing.is_some())?;
        Ok(vec![detect, stage_queue()?, veil])
    }

    /// `faceunveil`, with the sidecar and the header where the command was given them; otherwise
    /// it finds the header in the stream (SEI, tag) and adopts a new one wherever it changes.
    pub fn restorer(&self, source: Source) -> Result<Vec<gst::Element>> {
        let unveil = element("faceunveil")?;
        self.detection(&unveil)?;
        self.model(&unveil)?;
        if let Some(path) = source.sidecar {
            set(&unveil, "sidecar", path.to_str().context("the sidecar path is not UTF-8")?)?;
        }
        if let Some(text) = source.header {
            set(&unveil, "header", text)?;
        }
        set(&unveil, "lossless-input", source.lossless)?;
        if !source.live {
            set(&unveil, "header-wait", HEADER_WAIT_FRAMES)?;
        }
        if let Some(identity) = &self.sealing.identity {
            set(&unveil, "identity", identity.as_str())?;
        }
        if let Some(passphrase) = &self.sealing.passphrase {
            set(&unveil, "identity-passphrase", passphrase.as_str())?;
        }
        if let Some(signer) = &self.config.signer {
            set(&unveil, "signer", signer.to_string())?;
        }
        if let Some(revoked) = &self.sealing.revoked {
            set(&unveil, "revoked", revoked.as_str())?;
        }
        Ok(vec![unveil])
    }
}

/// A queue between two stages: a few frames are enough to keep both busy, and more would only
/// add memory (1.4 MB a 720p frame) and latency.
pub(super) fn stage_queue() -> Result<gst::Element> {
    Ok(gst::ElementFactory::make("queue")
        .property("max-size-buffers", STAGE_QUEUE_FRAMES)
        .property("max-size-bytes", 0u32)
        .property("max-size-time", 0u64)
        .build()?)
}
