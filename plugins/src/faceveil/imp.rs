//! faceveil: anonymizes the faces of a video stream. With mode=sdn each face becomes a synthetic
//! identity keyed by the password; the stream then carries what a restore needs (header and crop
//! squares as H.264/H.265 SEI metas, the header as a tag, optionally a sidecar file).
//!
//! It fails closed: a frame whose faces cannot be established (the detector failed) leaves
//! blanked, faces the model could not change leave painted black, each with a warning, and
//! upstream face metas are trusted as the whole answer only from a complete faceveildetect scan.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use faceveil::faces::effects::Mode;
use faceveil::faces::track::Track;
use faceveil::finder::FaceFinder;
use faceveil::model::keys::{EarlyKey, KdfParams};
use faceveil::pipeline::{Anonymizer, Signing};
use faceveil::secrets::{Recipient, SealedLayout, SigningKey};
use faceveil::stream::SeiPayload;
use faceveil::stream::end::StreamEnd;
use faceveil::stream::sidecar::SidecarWriter;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use zeroize::Zeroizing;

use crate::common;
use crate::facevideo::{SEALED_FACE_QP, SEALED_QUANTIZERS, X264Faces};
use crate::outofband;
use crate::rois::Upstream;
use crate::settings::{self, Groups, KeyingProp, ModeProp, Shared, SigningKeySettings};
use crate::streamdata;
use crate::timestamps::Increasing;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceveil", gst::DebugColorFlags::empty(), Some("faceveil face anonymizer")));

const DEFAULT_MODE: ModeProp = ModeProp::Sdn;
const DEFAULT_USE_ROI: bool = true;
const DEFAULT_RECIPIENTS_THRESHOLD: u32 = 1;
const DEFAULT_KEYING: KeyingProp = KeyingProp::Track;
const DEFAULT_SEALED_LOSSLESS: bool = false;
const DEFAULT_SEALED_QUANTIZER: u32 = SEALED_FACE_QP;
const DEFAULT_SEAL_PASSWORD: bool = false;
const DEFAULT_SIGN_PICTURES: bool = false;
/// A signed stream posts a checkpoint every this many frames (about a second of a camera): how
/// much a recording whose writer was killed can lose at its end unseen, beyond its last segment.
const CHECKPOINT_FRAMES: u64 = 30;

#[derive(Clone)]
struct Settings {
    shared: Shared,
    mode: ModeProp,
    // Write-only and never logged: Settings deliberately has no Debug.
    password: Option<Zeroizing<String>>,
    /// Where the password is read from instead, when the element starts.
    password_file: Option<PathBuf>,
    use_roi: bool,
    sidecar: Option<PathBuf>,
    /// age recipients (public keys) as given; checked when the element starts.
    recipients: Option<String>,
    recipients_threshold: u32,
    /// Sealed faces bit-exact: each track's face video lossless (or each face a PNG, without
    /// x264enc).
    sealed_lossless: bool,
    /// x264's constant quantizer for the sealed face videos (not lossless ones).
    sealed_quantizer: u32,
    /// Also seal each face to the password, for a restore with it alone.
    seal_password: bool,
    /// The signing key that signs a sealed stream's header and records: its file, or the key
    /// an application opened ([`super::FaceVeil::set_signing_key`]).
    signing: SigningKeySettings,
    opened_signing_key: Option<SigningKey>,
    /// The header promises that every coded picture is signed after the encoder.
    sign_pictures: bool,
    keying: KeyingProp,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            shared: Shared::default(),
            mode: DEFAULT_MODE,
            password: None,
            password_file: None,
            use_roi: DEFAULT_USE_ROI,
            sidecar: None,
            recipients: None,
            recipients_threshold: DEFAULT_RECIPIENTS_THRESHOLD,
            sealed_lossless: DEFAULT_SEALED_LOSSLESS,
            sealed_quantizer: DEFAULT_SEALED_QUANTIZER,
            seal_password: DEFAULT_SEAL_PASSWORD,
            signing: SigningKeySettings::default(),
            opened_signing_key: None,
            sign_pictures: DEFAULT_SIGN_PICTURES,
            keying: DEFAULT_KEYING,
        }
    }
}

struct State {
    anonymizer: Anonymizer,
    /// Tracks upstream's faces, or finds them itself where none come.
    finder: FaceFinder,
    info: Option<gst_video::VideoInfo>,
    sidecar: Option<SidecarWriter>,
    header_tag_sent: bool,
    use_roi: bool,
    /// faceveildetect's scan and ROI metas disagreed on some frame (warned once).
    warned_partial: bool,
    /// The last frame took a fallback (warned once per run of such frames).
    failing: bool,
    /// What its own detection misses at this resolution was said (on the first frame it searched).
    small_faces_noted: bool,
    /// The orientation the stream was last tagged with (a turned one was warned of).
    turned_said: Option<String>,
    /// The frames' timestamps so far: the records and the encoder take them strictly increasing.
    timestamps: Increasing,
    /// Checkpoints posted whose frame [`outofband::CODED_AHEAD`] after their last has not yet
    /// left, oldest first: then they go downstream to the file's writer.
    checkpoints: VecDeque<StreamEnd>,
}

#[derive(Default)]
pub struct FaceVeil {
    settings: Mutex<Settings>,
    /// The next output's key, derived from the password while the pipeline starts up.
    early_key: Mutex<Option<EarlyKey>>,
    state: Mutex<Option<State>>,
    /// The bytes of the faces sealed since the element last started (`sealed-bytes`): kept past
    /// stop(), so that an application reads what a finished run cost.
    sealed_bytes: AtomicU64,
}

impl FaceVeil {
    pub(super) fn set_signing_key(&self, key: SigningKey) {
        self.settings.lock().unwrap().opened_signing_key = Some(key);
    }

    /// Where the stream is signed, its signed end as the stream ends: the sidecar's last line,
    /// the comment tag of the header with the end on its second line, which a muxer writes as
    /// it closes the file (MP4 and Matroska do; MPEG-TS keeps no comment), and an element
    /// message for the application ([`outofband::STREAM_END_MESSAGE`]).
    fn sign_end(&self) {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else { return };
        let (Some(end), Some(header)) = (state.anonymizer.end(), state.anonymizer.header().cloned()) else { return };
        if let Some(sidecar) = state.sidecar.as_mut()
            && let Err(e) = sidecar.end(&end)
        {
            state.sidecar = None;
            gst::element_imp_error!(self, gst::ResourceError::Write, ("{}", common::describe(&e)));
        }
        drop(guard);
        self.push_comment(&outofband::header_tag(&header, Some(&end)));
        self.post_end(outofband::STREAM_END_MESSAGE, &end);
    }

    /// Posts a signed end or checkpoint for the application, as message `name`.
    fn post_end(&self, name: &str, end: &StreamEnd) {
        let message = gst::Structure::builder(name).field("end", end.encode()).build();
        let _ = self.obj().post_message(gst::message::Element::builder(message).src(&*self.obj()).build());
    }

    /// Sends `comment` downstream as the stream's comment tag.
    fn push_comment(&self, comment: &str) {
        let mut tags = gst::TagList::new();
        tags.get_mut().expect("new tag list is writable").add::<gst::tags::Comment>(&comment, gst::TagMergeMode::Replace);
        if !self.obj().src_pad().push_event(gst::event::Tag::builder(tags).build()) {
            gst::debug!(CAT, imp = self, "downstream did not take the header tag");
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FaceVeil {
    const NAME: &'static str = "GstFaceVeil";
    type Type = super::FaceVeil;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for FaceVeil {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut v = vec![
                glib::ParamSpecEnum::builder_with_default("mode", DEFAULT_MODE)
                    .nick("Mode")
                    .blurb("How faces are replaced: sdn (the default) needs the SDN model and a password, or recipients (the faces then keyed at random); blur, pixelate and solid only the detector")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("password")
                    .nick("Password")
                    .blurb("Password that keys the synthetic faces (sdn mode); write-only, never logged. Without one but with recipients, the faces are keyed at random and only the recipients get them back")
                    .write_only()
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("password-file")
                    .nick("Password file")
                    .blurb("Read the password from the first line of this file instead (gst-launch: keeps it out of the process list and the shell's history)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("use-roi")
                    .nick("Use ROI metas")
                    .blurb("Take the faces from an upstream faceveildetect instead of detecting again; other elements' \"face\" regions are covered as well, and a frame faceveildetect did not scan is searched here")
                    .default_value(DEFAULT_USE_ROI)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("sidecar")
                    .nick("Sidecar file")
                    .blurb("Also write the header and every frame's face squares to this file (for restores)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("recipients")
                    .nick("Recipients")
                    .blurb("age recipients (age1..., separated by commas or new lines) to whom each face's original pixels are sealed inside the stream, in any mode (with blur, pixelate or solid the stream then carries a header and records for them too); faceunveil's identity opens them")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("recipients-threshold")
                    .nick("Recipients threshold")
                    .blurb("How many of the recipients must unseal together (1: any one of them)")
                    .minimum(1)
                    .maximum(255)
                    .default_value(DEFAULT_RECIPIENTS_THRESHOLD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("sealed-lossless")
                    .nick("Sealed lossless")
                    .blurb("Seal each face bit-exact, as a lossless x264 video of each tracked face in the frame's own planes (1.3 to 3.2 times larger), instead of one restored to about 45 dB")
                    .default_value(DEFAULT_SEALED_LOSSLESS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("sealed-quantizer")
                    .nick("Sealed quantizer")
                    .blurb("x264's constant quantizer for the sealed face videos (not with sealed-lossless): 13 restores faces to 45 dB or more; each step up takes about a tenth off their size and half a decibel off the restored faces (docs/SECURITY.md, \"Smaller sealed faces\")")
                    .minimum(*SEALED_QUANTIZERS.start())
                    .maximum(*SEALED_QUANTIZERS.end())
                    .default_value(DEFAULT_SEALED_QUANTIZER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("seal-password")
                    .nick("Seal to the password")
                    .blurb("Also seal each face's original pixels to the password (sdn mode), so that faceunveil with the password alone gives them back as sealed (about 45 dB, or bit-exact with sealed-lossless) and refuses a wrong password; the stream grows by the sealed faces")
                    .default_value(DEFAULT_SEAL_PASSWORD)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("sign-pictures")
                    .nick("Sign pictures")
                    .blurb("Promise in the signed header that every coded picture is signed after the encoder (faceveilsei's signing-key, as the faceveil command does), so that faceveil verify refuses a picture without that signature or altered after it, its background included")
                    .default_value(DEFAULT_SIGN_PICTURES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("keying", DEFAULT_KEYING)
                    .nick("Keying")
                    .blurb("Whether each tracked face has its own key vector or the stream shares one (sdn mode)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("header")
                    .nick("Header")
                    .blurb("The stream header a restore needs, as text, once the element has started in sdn mode (it also rides in the SEI and a tag)")
                    .read_only()
                    .build(),
                settings::stage_times_property(),
                glib::ParamSpecUInt64::builder("sealed-bytes")
                    .nick("Sealed bytes")
                    .blurb("Bytes of original faces sealed since the element last started, as the stream's SEI carries them (a sidecar holds them again as base64): what sealing costs the output; kept after the element stops")
                    .read_only()
                    .build(),
            ];
            v.extend(SigningKeySettings::properties(
                "Signing key file (faceveil keygen --signing) that signs the stream header and each frame's record of sealed faces, so that faceunveil's signer and faceveil verify can tell this stream from one a forger rebuilt",
            ));
            v.extend(settings::shared_properties(Groups { model: true }));
            v
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "mode" => s.mode = value.get().expect("type checked upstream"),
            "password" => {
                s.password = value.get::<Option<String>>().expect("type checked upstream").map(Zeroizing::new);
                let password = s.password.as_ref().filter(|p| !p.is_empty()).map(|p| Zeroizing::new(p.as_bytes().to_vec()));
                *self.early_key.lock().unwrap() = password.map(|p| EarlyKey::begin(p, KdfParams::default()));
                gst::debug!(CAT, imp = self, "password set");
            }
            "password-file" => {
                s.password_file = value.get::<Option<String>>().expect("type checked upstream").map(PathBuf::from);
                // Read now too, so that the key is derived while the pipeline starts; a file that
                // cannot be read is reported when the element starts.
                let password = s.password_file.as_deref().and_then(|path| settings::password_from_file(path).ok());
                *self.early_key.lock().unwrap() =
                    password.map(|p| EarlyKey::begin(Zeroizing::new(p.as_bytes().to_vec()), KdfParams::default()));
            }
            "use-roi" => s.use_roi = value.get().expect("type checked upstream"),
            "sidecar" => s.sidecar = value.get::<Option<String>>().expect("type checked upstream").map(PathBuf::from),
            "recipients" => s.recipients = value.get().expect("type checked upstream"),
            "recipients-threshold" => s.recipients_threshold = value.get().expect("type checked upstream"),
            "sealed-lossless" => s.sealed_lossless = value.get().expect("type checked upstream"),
            "sealed-quantizer" => s.sealed_quantizer = value.get().expect("type checked upstream"),
            "sign-pictures" => s.sign_pictures = value.get().expect("type checked upstream"),
            "seal-password" => s.seal_password = value.get().expect("type checked upstream"),
            "keying" => s.keying = value.get().expect("type checked upstream"),
            name if s.signing.set(name, value) => {}
            name => {
                s.shared.set(name, value);
            }
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "mode" => s.mode.to_value(),
            "use-roi" => s.use_roi.to_value(),
            "password-file" => s.password_file.as_ref().map(|p| p.display().to_string()).to_value(),
            "sidecar" => s.sidecar.as_ref().map(|p| p.display().to_string()).to_value(),
            "recipients" => s.recipients.to_value(),
            "recipients-threshold" => s.recipients_threshold.to_value(),
            "sealed-lossless" => s.sealed_lossless.to_value(),
            "sealed-quantizer" => s.sealed_quantizer.to_value(),
            "sign-pictures" => s.sign_pictures.to_value(),
            "seal-password" => s.seal_password.to_value(),
            "keying" => s.keying.to_value(),
            "header" => self.state.lock().unwrap().as_ref().and_then(|st| st.anonymizer.header().map(|h| h.encode())).to_value(),
            "stage-times" => settings::stage_times_value(
                self.state.lock().unwrap().as_ref().map(|st| [st.finder.times(), st.anonymizer.times()]).into_iter().flatten(),
            ),
            "sealed-bytes" => self.sealed_bytes.load(Ordering::Relaxed).to_value(),
            name => s.signing.get(name).or_else(|| s.shared.get(name)).expect("every readable property is handled"),
        }
    }
}

impl GstObjectImpl for FaceVeil {}

impl ElementImpl for FaceVeil {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Face anonymizer",
                "Filter/Effect/Video",
                "Replaces faces with password-keyed synthetic identities (reversible with faceunveil) or blurs, pixelates or fills them",
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

impl BaseTransformImpl for FaceVeil {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let mut settings = self.settings.lock().unwrap().clone();
        let mut config = settings.shared.config(settings.mode.into())?;
        config.keying = settings.keying.into();
        if let Some(path) = &settings.password_file {
            settings.password = Some(settings::password_from_file(path)?);
        }
        let password = settings.password.as_ref().map(|p| p.as_bytes()).filter(|p| !p.is_empty());
        let early_key = self.early_key.lock().unwrap().take();
        let recipients = match settings.recipients.as_deref().filter(|t| !t.trim().is_empty()) {
            Some(text) => Recipient::parse_list(&text.replace(',', "\n")).map_err(common::settings_error)?,
            None => Vec::new(),
        };
        // Sealed to recipients with no password, the machine holds no secret: the surrogates are
        // keyed at random and only the recipients get the faces back.
        let anonymizer = match password {
            None if config.mode == Mode::Sdn && !recipients.is_empty() && !settings.seal_password => {
                Anonymizer::keyed_at_random(&config)
            }
            _ => Anonymizer::with_early_key(&config, password, early_key),
        };
        let mut anonymizer = anonymizer.map_err(|e| common::init_error(common::describe(&e)))?;
        let signing = match settings.opened_signing_key.clone() {
            Some(key) => Some(key),
            None => settings.signing.open()?,
        };
        if signing.is_some() && recipients.is_empty() && !settings.seal_password {
            return Err(common::settings_error(
                "signing-key signs the header of sealed faces: set recipients or seal-password too",
            ));
        }
        if settings.sealed_lossless && settings.sealed_quantizer != DEFAULT_SEALED_QUANTIZER {
            return Err(common::settings_error(
                "sealed-quantizer is for face videos that are not lossless: unset one of the two",
            ));
        }
        if settings.sign_pictures && signing.is_none() {
            return Err(common::settings_error("sign-pictures promises pictures signed with the signing-key: set it too"));
        }
        if !recipients.is_empty() || settings.seal_password {
            let layout = match (settings.sealed_lossless, X264Faces::available()) {
                (true, Ok(())) => SealedLayout::Video(Arc::new(X264Faces::lossless())),
                // Each face a PNG: as exact, about three times larger.
                (true, Err(_)) => SealedLayout::Lossless,
                (false, Ok(())) => SealedLayout::Video(Arc::new(X264Faces::with_quantizer(settings.sealed_quantizer))),
                // Refused here rather than on the first face, where it could only paint it black.
                (false, Err(e)) => return Err(common::settings_error(e)),
            };
            anonymizer
                .seal_to(
                    &recipients,
                    settings.recipients_threshold as usize,
                    settings.seal_password,
                    layout,
                    signing.as_ref().map(|key| Signing { key, pictures: settings.sign_pictures }),
                )
                .map_err(|e| common::settings_error(common::describe(&e)))?;
        }
        let finder = FaceFinder::new(&config).map_err(|e| common::init_error(common::describe(&e)))?;
        let sidecar = match (&settings.sidecar, anonymizer.header()) {
            (Some(path), Some(header)) => {
                Some(SidecarWriter::create(path, header).map_err(|e| common::settings_error(common::describe(&e)))?)
            }
            _ => None,
        };
        self.sealed_bytes.store(0, Ordering::Relaxed);
        *self.state.lock().unwrap() = Some(State {
            anonymizer,
            finder,
            info: None,
            sidecar,
            header_tag_sent: false,
            use_roi: settings.use_roi,
            warned_partial: false,
            failing: false,
            small_faces_noted: false,
            turned_said: None,
            timestamps: Increasing::default(),
            checkpoints: VecDeque::new(),
        });
        gst::info!(CAT, imp = self, "started in {:?} mode", settings.mode);
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => self.sign_end(),
            // Timestamps start afresh after a seek or in a new segment.
            gst::EventView::FlushStop(_) | gst::EventView::Segment(_) => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.timestamps = Increasing::default();
                }
            }
            _ => {}
        }
        common::detecting_sink_event(self, &self.state, event, |state| (&mut state.finder, &mut state.turned_said))
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(state) = self.state.lock().unwrap().take()
            && let Some(sidecar) = state.sidecar
        {
            sidecar.finish().map_err(|e| gst::error_msg!(gst::ResourceError::Write, ("{}", common::describe(&e))))?;
        }
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        let upstream = state.use_roi.then(|| Upstream::of(buf));
        let trusted = upstream.as_ref().is_some_and(Upstream::complete);
        if let Some(up) = upstream.as_ref().filter(|u| u.scanned.is_some() && !trusted)
            && !state.warned_partial
        {
            state.warned_partial = true;
            gst::element_imp_warning!(
                self,
                gst::StreamError::Failed,
                (
                    "faceveildetect reported {} faces but {} arrived: faces are detected here as well",
                    up.scanned.unwrap_or(0),
                    up.ours.len()
                )
            );
        }
        if let Some(pts) = buf.pts() {
            buf.set_pts(state.timestamps.next(pts));
        }
        let pts = buf.pts().map(|t| t.nseconds());
        let outcome = common::with_frame(self, buf, &info, "anonymization failed", |view| {
            // faceveildetect's complete scan is the answer for this frame, an empty one included;
            // anything less (no scan, ROIs lost, other elements' faces) is only added to what the
            // element's own detector finds.
            let found = match &upstream {
                Some(up) if trusted => {
                    let mut tracks = state.finder.observe(&up.ours).to_vec();
                    tracks.extend(up.others.iter().map(Track::untracked));
                    Ok(tracks)
                }
                _ => state.finder.find(view).map(|tracks| {
                    let mut tracks = tracks.to_vec();
                    if let Some(up) = &upstream {
                        tracks.extend(up.ours.iter().chain(&up.others).map(Track::untracked));
                    }
                    tracks
                }),
            };
            Ok(state.anonymizer.process_fail_closed(view, found, pts))
        })?;
        // Only where it searched the frame itself: faceveildetect says it for its own detection.
        if !trusted && let Some(note) = common::small_faces_note(&mut state.small_faces_noted, &state.finder, &info) {
            gst::element_imp_info!(self, gst::LibraryError::Settings, ("{}", note), ["{}", note]);
        }
        match &outcome.fallback {
            Some(fallback) => {
                gst::warning!(CAT, imp = self, "frame {}: {fallback}", outcome.record.frame);
                if !state.failing {
                    state.failing = true;
                    gst::element_imp_warning!(self, gst::StreamError::Failed, ("{fallback}"));
                }
            }
            None if state.failing => {
                state.failing = false;
                gst::info!(CAT, imp = self, "frame {}: anonymizing again", outcome.record.frame);
            }
            None => {}
        }
        self.sealed_bytes.fetch_add(outcome.record.sealed_bytes(), Ordering::Relaxed);
        if let Some(header) = state.anonymizer.header().cloned() {
            streamdata::attach_sei(buf, &SeiPayload::for_frame(&outcome.record, &header));
            if let Some(sidecar) = state.sidecar.as_mut()
                && let Err(e) = sidecar.write(&outcome.record)
            {
                // Dropped, so that stop() does not try the same write again and fail the pad's
                // deactivation ("very bad") on top of the error said here.
                state.sidecar = None;
                gst::element_imp_error!(self, gst::ResourceError::Write, ("{}", common::describe(&e)));
                return Err(gst::FlowError::Error);
            }
        }
        // A signed stream's comment waits for its end (see `sign_end`); meanwhile it is
        // checkpointed now and then, for applications that keep what a writer killed midway
        // could not end (serve).
        let header = state.anonymizer.header().filter(|h| !h.end_signed);
        let comment = header.filter(|_| !state.header_tag_sent).map(|h| outofband::header_tag(h, None));
        state.header_tag_sent |= comment.is_some();
        let frames = state.anonymizer.frames();
        let checkpoint = frames.is_multiple_of(CHECKPOINT_FRAMES).then(|| state.anonymizer.checkpoint()).flatten();
        state.checkpoints.extend(checkpoint.clone());
        // This frame is coded after every picture of the checkpoints CODED_AHEAD frames back.
        let mut coded = Vec::new();
        while state.checkpoints.front().is_some_and(|c| c.frames + outofband::CODED_AHEAD < frames) {
            coded.extend(state.checkpoints.pop_front());
        }
        drop(guard);
        if let Some(comment) = comment {
            self.push_comment(&comment);
        }
        if let Some(checkpoint) = checkpoint {
            self.post_end(outofband::STREAM_CHECKPOINT_MESSAGE, &checkpoint);
        }
        if !coded.is_empty()
            && let Some(at) = streamdata::running_time(self.obj().sink_pad(), buf)
        {
            for checkpoint in coded {
                self.obj().src_pad().push_event(outofband::checkpoint_event(&checkpoint, at));
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl VideoFilterImpl for FaceVeil {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            if state.info.as_ref().is_some_and(|i| i.width() != in_info.width() || i.height() != in_info.height()) {
                gst::info!(CAT, imp = self, "resolution changed to {}x{}", in_info.width(), in_info.height());
                state.finder.reset();
                state.small_faces_noted = false;
            }
            state.info = Some(in_info.clone());
        }
        common::warn_of_full_range(self, in_info);
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }
}
