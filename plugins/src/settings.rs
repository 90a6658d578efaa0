//! The properties the elements share: detection, model and mode, stage times, and the
//! password, passphrase and signing-key files, with their defaults.

use std::path::PathBuf;

use faceveil::config::Config;
use faceveil::faces::detect::{DetectorKind, DetectorSettings, SURE_FACE_WIDTH};
use faceveil::faces::effects::Mode;
use faceveil::model::keys::Keying;
use faceveil::runtime::Provider;
use faceveil::timing::StageTimes;
use gst::glib;
use gst::prelude::*;

use crate::common::{describe, settings_error};

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFaceveilMode")]
pub enum ModeProp {
    #[enum_value(name = "SDN: a reversible synthetic face keyed by the password", nick = "sdn")]
    Sdn = 0,
    #[enum_value(name = "Blur (one-way)", nick = "blur")]
    Blur = 1,
    #[enum_value(name = "Pixelate (one-way)", nick = "pixelate")]
    Pixelate = 2,
    #[enum_value(name = "Solid black fill (one-way)", nick = "solid")]
    Solid = 3,
}

impl From<ModeProp> for Mode {
    fn from(m: ModeProp) -> Self {
        match m {
            ModeProp::Sdn => Mode::Sdn,
            ModeProp::Blur => Mode::Blur,
            ModeProp::Pixelate => Mode::Pixelate,
            ModeProp::Solid => Mode::Solid,
        }
    }
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFaceveilDetector")]
pub enum DetectorProp {
    #[enum_value(name = "CenterFace (ONNX, landmarks, small and turned faces)", nick = "centerface")]
    CenterFace = 0,
    #[enum_value(name = "SeetaFace frontal cascade (embedded, frontal faces only)", nick = "seeta")]
    Seeta = 1,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFaceveilProvider")]
pub enum ProviderProp {
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 0,
    #[enum_value(name = "CUDA (error if it cannot load)", nick = "cuda")]
    Cuda = 1,
    #[enum_value(name = "TensorRT with CUDA (error if it cannot load)", nick = "tensorrt")]
    TensorRt = 2,
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFaceveilKeying")]
pub enum KeyingProp {
    #[enum_value(name = "A key vector per track (restores need the stream's records)", nick = "track")]
    Track = 0,
    #[enum_value(name = "One key vector for the stream (restores can detect the faces again)", nick = "stream")]
    Stream = 1,
}

impl From<KeyingProp> for Keying {
    fn from(k: KeyingProp) -> Self {
        match k {
            KeyingProp::Track => Keying::Track,
            KeyingProp::Stream => Keying::Stream,
        }
    }
}

pub const DEFAULT_DETECTOR: DetectorProp = DetectorProp::CenterFace;
pub const DEFAULT_PROVIDER: ProviderProp = ProviderProp::Cpu;
pub const DEFAULT_THRESHOLD: f32 = faceveil::faces::detect::DEFAULT_THRESHOLD;
pub const DEFAULT_MIN_FACE_SIZE: u32 = faceveil::faces::detect::DEFAULT_MIN_FACE_SIZE;
pub const DEFAULT_DETECT_INTERVAL: u32 = faceveil::config::DEFAULT_DETECT_EVERY;
pub const DEFAULT_MASK_SCALE: f32 = 1.0;
pub const DEFAULT_MAX_SIDE: u32 = faceveil::faces::detect::DEFAULT_MAX_SIDE;
pub const DEFAULT_THREADS: u32 = 0;

/// Detection, model and key settings shared by the elements.
#[derive(Clone)]
pub struct Shared {
    pub detector: DetectorProp,
    pub provider: ProviderProp,
    pub threads: u32,
    pub threshold: f32,
    pub min_face_size: u32,
    pub detect_interval: u32,
    pub max_side: u32,
    pub model: String,
    pub variant: String,
    pub mask_scale: f32,
    pub attributes: String,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            detector: DEFAULT_DETECTOR,
            provider: DEFAULT_PROVIDER,
            threads: DEFAULT_THREADS,
            threshold: DEFAULT_THRESHOLD,
            min_face_size: DEFAULT_MIN_FACE_SIZE,
            detect_interval: DEFAULT_DETECT_INTERVAL,
            max_side: DEFAULT_MAX_SIDE,
            model: String::new(),
            variant: String::new(),
            mask_scale: DEFAULT_MASK_SCALE,
            attributes: String::new(),
        }
    }
}

/// Which groups of shared properties an element has.
#[derive(Clone, Copy)]
pub struct Groups {
    pub model: bool,
}

pub fn shared_properties(groups: Groups) -> Vec<glib::ParamSpec> {
    let mut v = vec![
        glib::ParamSpecEnum::builder_with_default("detector", DEFAULT_DETECTOR)
            .nick("Detector")
            .blurb("Face detector")
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("provider", DEFAULT_PROVIDER)
            .nick("Provider")
            .blurb("ONNX Runtime execution provider for the detector and the model")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("threads")
            .nick("Threads")
            .blurb("CPU threads each model (detector, SDN) may use (0: half the cores each while anonymizing, every core for a restore)")
            .maximum(256)
            .default_value(DEFAULT_THREADS)
            .mutable_ready()
            .build(),
        glib::ParamSpecFloat::builder("threshold")
            .nick("Threshold")
            .blurb(&format!(
                "Minimum detection confidence (0..1); with a detect-interval above 1 the faces the scheduled detections find from {} of it are looked at again on the frames between, so that one hovering around it is covered from its first frame above",
                faceveil::finder::SCHEDULED_THRESHOLD_FACTOR
            ))
            .minimum(0.01)
            .maximum(1.0)
            .default_value(DEFAULT_THRESHOLD)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("min-face-size")
            .nick("Minimum face size")
            .blurb("Ignore faces smaller than this many pixels")
            .minimum(1)
            .maximum(4096)
            .default_value(DEFAULT_MIN_FACE_SIZE)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("detect-interval")
            .nick("Detection interval")
            .blurb(&format!(
                "Run the detector every N frames and track faces in between; a scene cut brings the next detection forward. Above 1, each run looks only where the picture changed, and at the whole frame every {} frames; every N+1 frames while every face in view scores at least {} times the threshold, and the whole frame on every frame while a face in view that is not large and still scores less",
                faceveil::finder::WHOLE_FRAME_EVERY,
                faceveil::finder::SURE_SCORE_FACTOR
            ))
            .minimum(1)
            .maximum(30)
            .default_value(DEFAULT_DETECT_INTERVAL)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("detect-size")
            .nick("Detection size")
            .blurb(&format!(
                "Frames are downscaled to at most this many pixels on their longer side for detection; faces narrower than about {:.0} px at that size may be missed ({:.0} px in 1920x1080 at 640)",
                SURE_FACE_WIDTH,
                SURE_FACE_WIDTH * 3.0
            ))
            .minimum(64)
            .maximum(4096)
            .default_value(DEFAULT_MAX_SIDE)
            .mutable_ready()
            .build(),
    ];
    if groups.model {
        v.extend([
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb("SDN model folder or sdn.json (empty: the bundled model)")
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("variant")
                .nick("Model variant")
                .blurb("SDN model variant listed in sdn.json, e.g. fast (empty: the model's default; faceunveil: the one the stream names)")
                .mutable_ready()
                .build(),
            glib::ParamSpecFloat::builder("mask-scale")
                .nick("Mask scale")
                .blurb("Scale of the feathered ellipse blended over each face (1 = as trained)")
                .minimum(0.5)
                .maximum(2.0)
                .default_value(DEFAULT_MASK_SCALE)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("attributes")
                .nick("Attributes")
                .blurb("Attribute factors and edits, e.g. \"smiling=1,mustache=-2\" (values -2..2); part of the secret")
                .mutable_ready()
                .build(),
        ]);
    }
    v
}

impl Shared {
    /// Sets a shared property; false when `name` is not one.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "detector" => self.detector = value.get().expect("type checked upstream"),
            "provider" => self.provider = value.get().expect("type checked upstream"),
            "threads" => self.threads = value.get().expect("type checked upstream"),
            "threshold" => self.threshold = value.get().expect("type checked upstream"),
            "min-face-size" => self.min_face_size = value.get().expect("type checked upstream"),
            "detect-interval" => self.detect_interval = value.get().expect("type checked upstream"),
            "detect-size" => self.max_side = value.get().expect("type checked upstream"),
            "model" => self.model = value.get::<Option<String>>().expect("type checked upstream").unwrap_or_default(),
            "variant" => self.variant = value.get::<Option<String>>().expect("type checked upstream").unwrap_or_default(),
            "mask-scale" => self.mask_scale = value.get().expect("type checked upstream"),
            "attributes" => self.attributes = value.get::<Option<String>>().expect("type checked upstream").unwrap_or_default(),
            _ => return false,
        }
        true
    }

    pub fn get(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "detector" => self.detector.to_value(),
            "provider" => self.provider.to_value(),
            "threads" => self.threads.to_value(),
            "threshold" => self.threshold.to_value(),
            "min-face-size" => self.min_face_size.to_value(),
            "detect-interval" => self.detect_interval.to_value(),
            "detect-size" => self.max_side.to_value(),
            "model" => self.model.to_value(),
            "variant" => self.variant.to_value(),
            "mask-scale" => self.mask_scale.to_value(),
            "attributes" => self.attributes.to_value(),
            _ => return None,
        })
    }

    /// The library configuration these settings describe for `mode`; the sdn mode needs its
    /// model, detection and the one-way modes run without one.
    pub fn config(&self, mode: Mode) -> Result<Config, gst::ErrorMessage> {
        self.config_with(mode, mode == Mode::Sdn)
    }

    /// The same, with `needs_model`: whether a missing SDN model is an error (a restore that
    /// opens sealed faces alone never runs the model).
    pub fn config_with(&self, mode: Mode, needs_model: bool) -> Result<Config, gst::ErrorMessage> {
        let model = if !self.model.is_empty() {
            PathBuf::from(&self.model)
        } else {
            match faceveil::runtime::assets::sdn_model() {
                Ok(path) => path,
                Err(_) if !needs_model => PathBuf::new(),
                Err(e) => {
                    return Err(settings_error(format!(
                        "{e:#} (blur, pixelate, solid and faceunveil with an identity alone need no SDN model)"
                    )));
                }
            }
        };
        let mut config = Config::new(model);
        config.mode = mode;
        config.variant = (!self.variant.is_empty()).then(|| self.variant.clone());
        config.runtime.provider = match self.provider {
            ProviderProp::Cpu => Provider::Cpu,
            ProviderProp::Cuda => Provider::Cuda,
            ProviderProp::TensorRt => Provider::TensorRt,
        };
        config.runtime.intra_threads = self.threads as usize;
        config.detector = DetectorSettings {
            kind: match self.detector {
                DetectorProp::CenterFace => DetectorKind::CenterFace,
                DetectorProp::Seeta => DetectorKind::Seeta,
            },
            threshold: self.threshold,
            min_face_size: self.min_face_size as f32,
            max_side: self.max_side as usize,
            ..DetectorSettings::default()
        };
        config.detect_every = self.detect_interval;
        config.mask_scale = self.mask_scale;
        config.attributes = faceveil::model::parse_attributes(&self.attributes).map_err(settings_error)?;
        Ok(config)
    }
}

/// The read-only `stage-times` property, for `faceveil bench` and applications that measure.
pub fn stage_times_property() -> glib::ParamSpec {
    glib::ParamSpecBoxed::builder::<gst::Structure>("stage-times")
        .nick("Stage times")
        .blurb("Time spent since the element started, in ns per stage (downscale, detect, track, seal, crop, model, blend), and the frames, detections (of which cut-detections: extra ones a scene cut called for; region-detections: of the changed part of the frame only), skipped-detections (scheduled ones left out, nothing had changed), rested-faces (large, still faces that sat a scheduled look out), sure-waits (scheduled looks put off a frame, every face in view sure) and faces counted")
        .read_only()
        .build()
}

/// The `stage-times` structure of these times (all zero before the element starts).
pub fn stage_times_value<'a>(times: impl IntoIterator<Item = &'a StageTimes>) -> glib::Value {
    let mut total = StageTimes::default();
    for t in times {
        total.add(t);
    }
    let mut s = gst::Structure::builder(STAGE_TIMES);
    for (name, d) in total.stages() {
        s = s.field(name, d.as_nanos() as u64);
    }
    s.field("frames", total.frames)
        .field("detections", total.detections)
        .field("cut-detections", total.cut_detections)
        .field("region-detections", total.region_detections)
        .field("skipped-detections", total.skipped_detections)
        .field("rested-faces", total.rested_faces)
        .field("sure-waits", total.sure_waits)
        .field("faces", total.faces)
        .build()
        .to_value()
}

/// The name of the `stage-times` structure.
pub const STAGE_TIMES: &str = "faceveil-stage-times";

/// The password of a `password-file` property: the first line of that file. gst-launch users give
/// it this way, not as `password=...`, which every user of the machine can read in the process
/// list and the shell keeps in its history.
pub fn password_from_file(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, gst::ErrorMessage> {
    let password = faceveil::secrets::first_line(path, "password file").map_err(|e| settings_error(describe(&e)))?;
    if password.is_empty() {
        return Err(settings_error(format!("the password file {} is empty", path.display())));
    }
    Ok(password)
}

/// A key file's passphrase: the first line of its `*-passphrase-file` property's file where that
/// is set, else its write-only `*-passphrase` property.
pub fn passphrase(
    file: Option<&std::path::Path>,
    given: Option<&zeroize::Zeroizing<String>>,
) -> Result<Option<zeroize::Zeroizing<String>>, gst::ErrorMessage> {
    match file {
        Some(path) => faceveil::secrets::first_line(path, "passphrase file").map(Some).map_err(|e| settings_error(describe(&e))),
        None => Ok(given.cloned()),
    }
}

/// A signing key an element is given: the file, read when the element starts, and the
/// passphrase a protected one needs, as a write-only property or from a file. No Debug: the
/// passphrase is never logged.
#[derive(Clone, Default)]
pub struct SigningKeySettings {
    path: Option<PathBuf>,
    passphrase: Option<zeroize::Zeroizing<String>>,
    passphrase_file: Option<PathBuf>,
}

impl SigningKeySettings {
    /// The element's three properties; `blurb` says what its key signs.
    pub fn properties(blurb: &str) -> Vec<glib::ParamSpec> {
        vec![
            glib::ParamSpecString::builder("signing-key").nick("Signing key").blurb(blurb).mutable_ready().build(),
            glib::ParamSpecString::builder("signing-key-passphrase")
                .nick("Signing key passphrase")
                .blurb("Passphrase of a passphrase-protected signing key file; write-only, never logged")
                .write_only()
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("signing-key-passphrase-file")
                .nick("Signing key passphrase file")
                .blurb("Read the signing key's passphrase from the first line of this file instead (keeps it out of the process list)")
                .mutable_ready()
                .build(),
        ]
    }

    /// Sets the property `name` if it is one of [`Self::properties`]; whether it was.
    pub fn set(&mut self, name: &str, value: &glib::Value) -> bool {
        let text = || value.get::<Option<String>>().expect("type checked upstream");
        match name {
            "signing-key" => self.path = text().map(PathBuf::from),
            "signing-key-passphrase" => self.passphrase = text().map(zeroize::Zeroizing::new),
            "signing-key-passphrase-file" => self.passphrase_file = text().map(PathBuf::from),
            _ => return false,
        }
        true
    }

    /// The readable property `name`, if it is one of [`Self::properties`].
    pub fn get(&self, name: &str) -> Option<glib::Value> {
        let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).to_value();
        match name {
            "signing-key" => Some(shown(&self.path)),
            "signing-key-passphrase-file" => Some(shown(&self.passphrase_file)),
            _ => None,
        }
    }

    /// The key, opened with its passphrase where it needs one; `None` where none was given.
    pub fn open(&self) -> Result<Option<faceveil::secrets::SigningKey>, gst::ErrorMessage> {
        let Some(path) = &self.path else { return Ok(None) };
        let passphrase = passphrase(self.passphrase_file.as_deref(), self.passphrase.as_ref())?;
        faceveil::secrets::SigningKey::from_file(path, || passphrase.map(|p| p.as_str().to_owned().into()))
            .map(Some)
            .map_err(|e| settings_error(describe(&e)))
    }
}
