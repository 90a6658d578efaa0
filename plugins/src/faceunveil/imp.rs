//! faceunveil: restores faces that faceveil anonymized in sdn mode, given the same password (and
//! attribute factors). It finds the header in the stream's SEI, in a tag, in a sidecar file or in
//! the `header` property, cuts the recorded squares where the stream carries them and otherwise
//! detects the anonymized faces again. A wrong password gives other faces, never an error.
//!
//! With `identity`, the faces faceveil sealed to that recipient come back: as a face video per
//! track (about 45 dB, the default) or exactly, bytes as the camera's decoder gave them (sealed
//! losslessly); with both a password and an identity, the sealed faces win. A restore that joins
//! a face video midway leaves that face as it is until the track's next keyframe, with a warning.
//!
//! A sidecar's records are found by timestamp (by frame number where timestamps do not match),
//! and each must look like the frame it is given to: a video cut or made again since takes the
//! record that looks like each frame, and a frame like none of them takes none.
//! A stream joined midway passes unrestored, with a warning, until its first header arrives (one
//! rides every `HEADER_EVERY` frames); a stream that carries none at all is an error at its end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use faceveil::config::Config;
use faceveil::pipeline::Restorer;
use faceveil::secrets::{Identity, Revocation, Signer};
use faceveil::stream::HEADER_EVERY;
use faceveil::stream::end::{EndCheck, StreamEnd};
use faceveil::stream::header::StreamHeader;
use faceveil::stream::look::Look;
use faceveil::stream::sidecar::{Lookup, Sidecar};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use zeroize::Zeroizing;

use crate::common;
use crate::facevideo::X264Faces;
use crate::outofband;
use crate::settings::{self, Groups, Shared};
use crate::streamdata;
use crate::timestamps::Increasing;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceunveil", gst::DebugColorFlags::empty(), Some("faceveil face restorer")));

/// Frames are taken to have gone through a lossy codec, as nearly every video has.
const DEFAULT_LOSSLESS_INPUT: bool = false;

/// Frames without a header are passed for as long as they come: a live stream joined midway
/// gets one within `HEADER_EVERY` frames.
const DEFAULT_HEADER_WAIT: u32 = 0;

#[derive(Clone, Default)]
struct Settings {
    shared: Shared,
    // Write-only and never logged: Settings deliberately has no Debug.
    password: Option<Zeroizing<String>>,
    /// Where the password is read from instead, when the element starts.
    password_file: Option<PathBuf>,
    sidecar: Option<PathBuf>,
    header: Option<String>,
    /// Identity files, read when the element starts.
    identity: Option<String>,
    identity_passphrase: Option<Zeroizing<String>>,
    /// Where the passphrase is read from instead, when the element starts.
    identity_passphrase_file: Option<PathBuf>,
    lossless_input: bool,
    header_wait: u32,
    /// The signer the stream's header must be signed by, as given; checked when the element starts.
    signer: Option<String>,
    /// Revocation files (comma-separated), read when the element starts.
    revoked: Option<String>,
}

struct State {
    config: Config,
    lossless_input: bool,
    /// Frames that may pass without a header before the stream counts as having none (0: no limit).
    header_wait: u32,
    password: Option<Zeroizing<String>>,
    identities: Vec<Identity>,
    sidecar: Option<Sidecar>,
    /// Header text seen in a tag or property, used until a restorer exists.
    header_text: Option<String>,
    restorer: Option<(StreamHeader, Restorer)>,
    info: Option<gst_video::VideoInfo>,
    frames: u64,
    /// Frames that passed unrestored before any header arrived.
    passed: u64,
    /// Frames of a stream keyed per track that came without their record (their SEI lost, no
    /// sidecar) and passed as they were, anonymized.
    unrecorded: u64,
    /// Frames that looked like none of the sidecar's records (the video was cut or edited since
    /// it was anonymized), so took none.
    unmatched: u64,
    /// The sidecar was found to be another stream's (warned once).
    foreign_sidecar_said: bool,
    /// A header was adopted since the last frame: whether its signed pictures are checked
    /// upstream is asked on the next ([`FaceUnveil::check_pictures_checked`]).
    pictures_check_due: bool,
    /// The signed stream's end, from the container's comment tag or the sidecar: at the end of
    /// stream, a recording cut short of it is said.
    end: Option<StreamEnd>,
    /// The timestamps of the frames that left, which the encoder takes strictly increasing.
    timestamps: Increasing,
}

impl State {
    /// Builds (or rebuilds, for a new salt) the restorer from header text.
    fn adopt_header(&mut self, text: &str) -> anyhow::Result<()> {
        let header = StreamHeader::decode(text)?;
        if self.restorer.as_ref().is_some_and(|(h, _)| *h == header) {
            return Ok(());
        }
        let restorer = Restorer::open(&self.config, self.password.as_ref().map(|p| p.as_bytes()), &self.identities, &header)?;
        let restorer = restorer.lossy_input(!self.lossless_input);
        // Faces sealed to identities or to the password decode the same way.
        let restorer = restorer.decode_faces_with(Arc::new(X264Faces::default()));
        self.restorer = Some((header, restorer));
        self.pictures_check_due = true;
        Ok(())
    }
}

#[derive(Default)]
pub struct FaceUnveil {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    /// Sealed faces opened back into place, and left anonymized because their face video had not
    /// started here, since the element last started (`faces-opened`, `faces-waiting`): kept past
    /// stop(), so that an application reads what a finished restore gave back.
    opened: AtomicU64,
    waiting: AtomicU64,
}

#[glib::object_subclass]
impl ObjectSubclass for FaceUnveil {
    const NAME: &'static str = "GstFaceUnveil";
    type Type = super::FaceUnveil;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for FaceUnveil {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut v = vec![
                glib::ParamSpecString::builder("password")
                    .nick("Password")
                    .blurb("Password the faces were anonymized with; it also opens the faces faceveil sealed to it (seal-password); write-only, never logged")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("password-file")
                    .nick("Password file")
                    .blurb("Read the password from the first line of this file instead (gst-launch: keeps it out of the process list and the shell's history)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("sidecar")
                    .nick("Sidecar file")
                    .blurb("Sidecar written by faceveil (header and face squares), for streams that lost their SEI")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("header")
                    .nick("Header")
                    .blurb("The faceveil stream header as text, when neither the stream nor a sidecar carries it")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("identity")
                    .nick("Identity")
                    .blurb("age identity file(s), comma-separated, that open the faces faceveil sealed to their recipients; several when the stream needs them together")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("lossless-input")
                    .nick("Lossless input")
                    .blurb("The frames never went through a lossy codec (raw, FFV1, x264 at quantizer 0): the password restore then undoes the surrogate exactly; otherwise it eases off near black and white, where a codec's error would be multiplied, and leaves out the finest colour detail that 4:2:0 kept too little of")
                    .default_value(DEFAULT_LOSSLESS_INPUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("identity-passphrase")
                    .nick("Identity passphrase")
                    .blurb("Passphrase of passphrase-protected identity files; write-only, never logged")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("header-wait")
                    .nick("Frames to wait for a header")
                    .blurb("Stop with an error when this many frames have come without a faceveil header: a file carries it in its first frame and every 30 after; 0 waits for ever, as a live stream joined midway may need")
                    .default_value(DEFAULT_HEADER_WAIT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("signer")
                    .nick("Signer")
                    .blurb("Restore only a stream whose header this signer (faceveil-signer-..., printed by faceveil keygen --signing) signed: a stream unsigned, signed by another key or altered since stops with an error, and so does one whose pictures are signed unless faceveilsei with this signer checks them before the decoder")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("revoked")
                    .nick("Revoked signing keys")
                    .blurb("Revocation file(s), comma-separated (faceveil keygen --revoke): a stream signed by a key one of them revokes stops with an error, whether or not a signer is required")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("identity-passphrase-file")
                    .nick("Identity passphrase file")
                    .blurb("Read the identities' passphrase from the first line of this file instead (keeps it out of the process list)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("faces-opened")
                    .nick("Faces opened")
                    .blurb("Sealed faces opened back into place since the element last started; kept after it stops")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("faces-waiting")
                    .nick("Faces waiting")
                    .blurb("Sealed faces left anonymized since the element last started because the restore joined their face video midway (or lost a frame of it) and waits for its next keyframe; kept after it stops")
                    .read_only()
                    .build(),
            ];
            v.extend(settings::shared_properties(Groups { model: true }));
            v
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "password" => {
                s.password = value.get::<Option<String>>().expect("type checked upstream").map(Zeroizing::new);
                gst::debug!(CAT, imp = self, "password set");
            }
            "password-file" => s.password_file = value.get::<Option<String>>().expect("type checked upstream").map(PathBuf::from),
            "sidecar" => s.sidecar = value.get::<Option<String>>().expect("type checked upstream").map(PathBuf::from),
            "header" => s.header = value.get::<Option<String>>().expect("type checked upstream"),
            "identity" => s.identity = value.get().expect("type checked upstream"),
            "lossless-input" => s.lossless_input = value.get().expect("type checked upstream"),
            "header-wait" => s.header_wait = value.get().expect("type checked upstream"),
            "signer" => s.signer = value.get().expect("type checked upstream"),
            "revoked" => s.revoked = value.get().expect("type checked upstream"),
            "identity-passphrase" => {
                s.identity_passphrase = value.get::<Option<String>>().expect("type checked upstream").map(Zeroizing::new);
            }
            "identity-passphrase-file" => {
                s.identity_passphrase_file = value.get::<Option<String>>().expect("type checked upstream").map(PathBuf::from);
            }
            name => {
                s.shared.set(name, value);
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "password-file" => s.password_file.as_ref().map(|p| p.display().to_string()).to_value(),
            "identity-passphrase-file" => s.identity_passphrase_file.as_ref().map(|p| p.display().to_string()).to_value(),
            "sidecar" => s.sidecar.as_ref().map(|p| p.display().to_string()).to_value(),
            "header" => s.header.to_value(),
            "identity" => s.identity.to_value(),
            "lossless-input" => s.lossless_input.to_value(),
            "header-wait" => s.header_wait.to_value(),
            "signer" => s.signer.to_value(),
            "revoked" => s.revoked.to_value(),
            "faces-opened" => self.opened.load(Ordering::Relaxed).to_value(),
            "faces-waiting" => self.waiting.load(Ordering::Relaxed).to_value(),
            name => s.shared.get(name).expect("every readable property is handled"),
        }
    }
}

/// The paths a property names, comma-separated.
fn comma_separated(paths: Option<&str>) -> impl Iterator<Item = &Path> {
    paths.into_iter().flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()).map(Path::new)
}

/// The identities named by the `identity` property.
fn read_identities(paths: Option<&str>, passphrase: Option<&Zeroizing<String>>) -> anyhow::Result<Vec<Identity>> {
    comma_separated(paths).map(|path| Identity::from_file(path, || passphrase.map(|p| p.as_str().to_owned().into()))).collect()
}

/// The signers revoked by the files the `revoked` property names.
fn read_revoked(paths: Option<&str>) -> anyhow::Result<Vec<Signer>> {
    comma_separated(paths).map(|path| Revocation::from_file(path).map(|r| r.signer().clone())).collect()
}

impl GstObjectImpl for FaceUnveil {}

impl ElementImpl for FaceUnveil {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Face restorer",
                "Filter/Effect/Video",
                "Restores faces anonymized by faceveil: the surrogates (sdn mode) with the password, the sealed originals with an identity or the password they were sealed to",
                "faceveil developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(common::pad_templates);
        T.as_ref()
    }
}

impl FaceUnveil {
    /// Where a signer is required and the header just adopted promises signed pictures: that
    /// something before the decoder checks them against that signer (faceveilsei's `signer`,
    /// or `faceveil restore --signer`'s own check), or an error. Records and sealed faces are
    /// checked here; the rest of each picture can be checked only as coded.
    fn check_pictures_checked(&self, state: &State) -> Result<(), gst::FlowError> {
        let (Some(required), Some((header, _))) = (&state.config.signer, &state.restorer) else { return Ok(()) };
        if !header.pictures_signed {
            return Ok(());
        }
        let required = required.to_string();
        if outofband::pictures_checked_by(self.obj().static_pad("sink").as_ref().expect("a sink pad")).as_deref()
            == Some(required.as_str())
        {
            return Ok(());
        }
        gst::element_imp_error!(
            self,
            gst::StreamError::Failed,
            ("the stream's pictures are signed, and nothing before the decoder checks them against {required}: put `h264parse ! faceveilsei signer={required}` before it (`faceveil restore --signer` checks them itself); nothing is restored")
        );
        Err(gst::FlowError::Error)
    }

    /// At the end of a signed stream whose signed end came (tag or sidecar): a warning where the
    /// records restored stop short of it, or run past it, or it is not its signer's. Like frames
    /// missing from the middle, said rather than refused: a restore gives back what it holds.
    fn say_end(&self) {
        let guard = self.state.lock().unwrap();
        let Some((end, Some((_, restorer)))) = guard.as_ref().map(|s| (s.end.as_ref(), s.restorer.as_ref())) else { return };
        let what = match end.and_then(|end| restorer.end_check(end)) {
            Some(EndCheck::Cut { last, frames }) => format!(
                "{} at its end: it was cut short of its signed end",
                missing_frames(last.map_or(0, |l| l + 1), frames - 1)
            ),
            Some(EndCheck::PastEnd { last, frames }) => {
                format!("the signed recording's frame {last} comes after its signed end of {frames} frames")
            }
            Some(EndCheck::Unsigned) => "the recording's end does not carry its signer's signature".to_string(),
            Some(EndCheck::Whole | EndCheck::Checkpoint { .. }) | None => return,
        };
        drop(guard);
        gst::element_imp_warning!(self, gst::StreamError::Decrypt, ("{what}"));
    }

    fn fail(&self, e: &anyhow::Error) -> gst::FlowError {
        gst::element_imp_error!(self, gst::StreamError::Decrypt, ("restore failed: {}", common::describe(e)));
        gst::FlowError::Error
    }
}

impl BaseTransformImpl for FaceUnveil {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let from_file = settings.password_file.as_deref().map(settings::password_from_file).transpose()?;
        let password = from_file.or(settings.password.clone()).filter(|p| !p.is_empty());
        let passphrase =
            settings::passphrase(settings.identity_passphrase_file.as_deref(), settings.identity_passphrase.as_ref())?;
        let identities = read_identities(settings.identity.as_deref(), passphrase.as_ref())
            .map_err(|e| common::settings_error(common::describe(&e)))?;
        if password.is_none() && identities.is_empty() {
            return Err(common::settings_error(
                "faceunveil needs the password the stream was anonymized with, or an identity its faces were sealed to",
            ));
        }
        // Sealed faces alone open without the SDN: a key holder's machine needs no model.
        let mut config = settings.shared.config_with(faceveil::faces::effects::Mode::Sdn, password.is_some())?;
        config.signer = settings.signer.as_deref().map(str::parse).transpose().map_err(common::settings_error)?;
        config.revoked = read_revoked(settings.revoked.as_deref()).map_err(|e| common::settings_error(common::describe(&e)))?;
        let sidecar = match &settings.sidecar {
            Some(path) => Some(Sidecar::read(path).map_err(|e| common::settings_error(common::describe(&e)))?),
            None => None,
        };
        if let Some(line) = sidecar.as_ref().and_then(|s| s.cut_line) {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("the sidecar's line {line} is cut short (its writer stopped there): the frames from there on are restored only where the stream carries their records itself (SEI)")
            );
        }
        let mut state = State {
            config,
            lossless_input: settings.lossless_input,
            header_wait: settings.header_wait,
            password,
            identities,
            sidecar,
            header_text: settings.header,
            restorer: None,
            info: None,
            frames: 0,
            passed: 0,
            unrecorded: 0,
            unmatched: 0,
            foreign_sidecar_said: false,
            pictures_check_due: false,
            end: None,
            timestamps: Increasing::default(),
        };
        state.end = state.sidecar.as_ref().and_then(|s| s.end.clone());
        let initial = state.sidecar.as_ref().map(|s| s.header.encode()).or(state.header_text.clone());
        if let Some(text) = initial {
            state.adopt_header(&text).map_err(|e| common::init_error(common::describe(&e)))?;
        }
        self.opened.store(0, Ordering::Relaxed);
        self.waiting.store(0, Ordering::Relaxed);
        *self.state.lock().unwrap() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Tag(tag) => {
                for comment in tag.tag().iter_tag::<gst::tags::Comment>() {
                    if let Some(text) = outofband::header_from_tag(comment.get())
                        && let Some(state) = self.state.lock().unwrap().as_mut()
                    {
                        state.header_text = Some(text.to_string());
                        state.end = outofband::end_from_tag(comment.get()).or(state.end.take());
                    }
                }
            }
            // After a seek the frames are counted afresh; records are then found by timestamp.
            gst::EventView::FlushStop(_) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.frames = 0;
                    state.timestamps = Increasing::default();
                }
            }
            gst::EventView::Segment(_) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.timestamps = Increasing::default();
                }
            }
            gst::EventView::Eos(_) => {
                self.say_end();
                // Frames left anonymized for want of their record, of all; frames that passed before any header.
                let (unrecorded, unmatched, frames, unrestored) = self.state.lock().unwrap().as_ref().map_or((0, 0, 0, 0), |s| {
                    (s.unrecorded, s.unmatched, s.frames, if s.restorer.is_none() { s.passed } else { 0 })
                });
                if unrecorded > 0 && unrecorded == frames && unmatched == frames {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Decrypt,
                        ("no frame of this stream looks like a frame of its sidecar (was the video cut or edited after it was anonymized, or is the sidecar another recording's?), and its keys hang on the track ids the records carry: nothing could be restored")
                    );
                } else if unrecorded > 0 && unrecorded == frames {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Decrypt,
                        ("no frame of this stream came with the record of its faces (no SEI, no sidecar), and its keys hang on the track ids they carry: nothing could be restored. A video encoded again since it was anonymized (restored from a second anonymization, edited, converted) keeps at most the header: give the sidecar written beside the anonymized file (`faceveil restore --sidecar`, the sidecar property)")
                    );
                } else if unrecorded > 0 {
                    let unlike =
                        if unmatched > 0 { format!(", {unmatched} of them unlike any of the sidecar's") } else { String::new() };
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decrypt,
                        ("{unrecorded} of {frames} frames had no record of their faces (no SEI, no sidecar{unlike}) and stay anonymized")
                    );
                }
                if unrestored > 0 {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Decrypt,
                        ("no faceveil header in the whole stream (no SEI, tag, sidecar or header property): its {unrestored} frames passed unrestored (blur, pixelate and solid outputs carry none: those modes cannot be undone)")
                    );
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let sei = streamdata::read_sei(buf).transpose().map_err(|e| self.fail(&e.into()))?.unwrap_or_default();
        let header_text = sei.header.as_ref().map(StreamHeader::encode).or_else(|| state.header_text.take());
        if let Some(text) = header_text {
            state.adopt_header(&text).map_err(|e| self.fail(&e))?;
        }
        if std::mem::take(&mut state.pictures_check_due) {
            self.check_pictures_checked(state)?;
        }
        let frame_no = state.frames;
        let pts = buf.pts().map(|t| t.nseconds());
        // Records are found by the frame's own timestamp, `pts`; the frame leaves with one that
        // follows the last frame's.
        if let Some(pts) = buf.pts() {
            buf.set_pts(state.timestamps.next(pts));
        }
        state.frames += 1;
        // A sidecar is read only for the stream whose header it holds: another stream's squares
        // would restore the wrong places, or other faces.
        let sidecar_fits = match (&state.sidecar, &state.restorer) {
            (Some(sidecar), Some((header, _))) => sidecar.header == *header,
            _ => true,
        };
        if !sidecar_fits && sei.record.is_none() && !state.foreign_sidecar_said {
            state.foreign_sidecar_said = true;
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decrypt,
                ("the sidecar is another stream's (its header is not the one this stream carries): its records are not used")
            );
        }
        let Some((_, restorer)) = state.restorer.as_mut() else {
            // Joined midway: the header rides every HEADER_EVERY frames, and the frames before it
            // pass as they are (anonymized, so nothing is shown that should not be).
            if state.passed == 0 {
                let wait = match state.header_wait {
                    0 => String::new(),
                    n => format!(", for {n} frames at most"),
                };
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decrypt,
                    ("no faceveil header yet: frames pass unrestored until one arrives (every {HEADER_EVERY} frames){wait}")
                );
            }
            state.passed += 1;
            if state.header_wait > 0 && state.passed >= u64::from(state.header_wait) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Decrypt,
                    (
                        "no faceveil header in the first {} frames (no SEI, tag, sidecar or header property): not an output of the sdn mode (blur, pixelate and solid cannot be undone), or its stream data was lost on the way",
                        state.passed
                    )
                );
                return Err(gst::FlowError::Error);
            }
            return Ok(gst::FlowSuccess::Ok);
        };
        let (waiting, opened) = (restorer.faces_waiting(), restorer.faces_opened());
        let (mut unrecorded, mut unmatched, mut other_size) = (false, false, None);
        // The frame's number as recorded, which names it where the stream lost frames before it.
        let mut recorded = None;
        let sidecar = state.sidecar.as_mut().filter(|_| sidecar_fits && sei.record.is_none());
        common::with_frame(self, buf, &info, "restore failed", |view| {
            // The SEI rides in its frame; a sidecar's record must look like the frame it is given to.
            let record = match (sei.record, sidecar) {
                (Some(record), _) => Some(record),
                (None, Some(sidecar)) => match sidecar.lookup(frame_no, pts, Some(&Look::of(view)))? {
                    Lookup::Found(record) => Some(record),
                    Lookup::Missing => None,
                    Lookup::Unmatched => {
                        unmatched = true;
                        None
                    }
                    Lookup::OtherSize { recorded } => {
                        (unmatched, other_size) = (true, Some(recorded));
                        None
                    }
                },
                (None, None) => None,
            };
            recorded = record.as_ref().map(|r| r.frame);
            match &record {
                Some(record) => restorer.process_record(view, record),
                None => {
                    gst::log!(CAT, imp = self, "frame {frame_no}: no recorded squares, detecting");
                    match restorer.process(view, None) {
                        // One lost record costs its frame, not the rest of the stream.
                        Err(e) if matches!(e.downcast_ref::<faceveil::Error>(), Some(faceveil::Error::UnrecordedFrame)) => {
                            unrecorded = true;
                            Ok(0)
                        }
                        other => other,
                    }
                }
            }
        })?;
        if unmatched {
            state.unmatched += 1;
            if let (1, Some((w, h))) = (state.unmatched, other_size) {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decrypt,
                    (
                        "the sidecar's records are of {w}x{h} frames and this stream's are {}x{}: it was scaled or cropped since it was anonymized, and its faces are not where the records' squares are, so no record is taken (restore the video at the size it was anonymized at)",
                        info.width(),
                        info.height()
                    )
                );
            } else if state.unmatched == 1 {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decrypt,
                    ("frame {frame_no} looks like none of the sidecar's frames (was the video cut or edited after it was anonymized?): no record is taken for it, and such frames are restored only where their faces can be found again (counted at the end)")
                );
            }
        }
        if unrecorded {
            state.unrecorded += 1;
            if state.unrecorded == 1 {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decrypt,
                    (
                        "frame {frame_no}: {}; it stays anonymized, as will any other frame without its record (counted at the end)",
                        faceveil::Error::UnrecordedFrame
                    )
                );
            }
        }
        if let Some((before, this)) = restorer.take_skipped() {
            let what = if this > before {
                format!("{} before its frame {this} (cut out, or lost on the way)", missing_frames(before + 1, this - 1))
            } else {
                format!("the signed recording's frame {this} comes after its frame {before}: frames are repeated or out of order")
            };
            gst::element_imp_warning!(self, gst::StreamError::Decrypt, ("{what}"));
        }
        self.opened.fetch_add(restorer.faces_opened() - opened, Ordering::Relaxed);
        self.waiting.fetch_add(restorer.faces_waiting() - waiting, Ordering::Relaxed);
        if waiting == 0 && restorer.faces_waiting() > 0 {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decrypt,
                (
                    "frame {}: a sealed face continues a face video this restore did not start: it stays anonymized until its track's next keyframe",
                    recorded.unwrap_or(frame_no)
                )
            );
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl VideoFilterImpl for FaceUnveil {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.info = Some(in_info.clone());
        }
        common::warn_of_full_range(self, in_info);
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }
}

/// Frames `first` to `last` of a signed recording, said missing: one frame, or a run of them.
fn missing_frames(first: u64, last: u64) -> String {
    if first == last {
        format!("frame {first} of the signed recording is missing")
    } else {
        format!("frames {first} to {last} of the signed recording are missing")
    }
}
