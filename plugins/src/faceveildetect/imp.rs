//! faceveildetect: finds and tracks faces, attaches each as a "face" region-of-interest meta
//! (track id, confidence and landmarks as parameters) and optionally posts element messages.

use std::sync::{LazyLock, Mutex};

use faceveil::finder::FaceFinder;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;

use crate::common;
use crate::rois;
use crate::settings::{self, Groups, Shared};

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceveildetect", gst::DebugColorFlags::empty(), Some("faceveil face detector")));

const DEFAULT_POST_MESSAGES: bool = false;

#[derive(Clone)]
struct Settings {
    shared: Shared,
    post_messages: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { shared: Shared::default(), post_messages: DEFAULT_POST_MESSAGES }
    }
}

struct State {
    finder: FaceFinder,
    info: Option<gst_video::VideoInfo>,
    /// The last frame's detection failed (warned once per run of such frames).
    failing: bool,
    /// What detection misses at this resolution was said (on its first frame).
    small_faces_noted: bool,
    /// The orientation the stream was last tagged with (a turned one was warned of).
    turned_said: Option<String>,
}

#[derive(Default)]
pub struct FaceVeilDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for FaceVeilDetect {
    const NAME: &'static str = "GstFaceVeilDetect";
    type Type = super::FaceVeilDetect;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for FaceVeilDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut v = settings::shared_properties(Groups { model: false });
            v.push(
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a faceveil-faces element message with the faces of every frame")
                    .default_value(DEFAULT_POST_MESSAGES)
                    .mutable_playing()
                    .build(),
            );
            v.push(settings::stage_times_property());
            v
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        if !s.shared.set(pspec.name(), value) && pspec.name() == "post-messages" {
            s.post_messages = value.get().expect("type checked upstream");
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "post-messages" => s.post_messages.to_value(),
            "stage-times" => settings::stage_times_value(self.state.lock().unwrap().as_ref().map(|st| st.finder.times())),
            name => s.shared.get(name).expect("every installed property is handled"),
        }
    }
}

impl GstObjectImpl for FaceVeilDetect {}

impl ElementImpl for FaceVeilDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Face detector and tracker",
                "Filter/Analyzer/Video",
                "Detects and tracks faces and attaches them as GstVideoRegionOfInterestMeta of type \"face\"",
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

impl BaseTransformImpl for FaceVeilDetect {
    const MODE: gst_base::subclass::BaseTransformMode = gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let config = settings.shared.config(faceveil::faces::effects::Mode::Blur)?;
        let finder = FaceFinder::new(&config).map_err(|e| common::init_error(common::describe(&e)))?;
        *self.state.lock().unwrap() =
            Some(State { finder, info: None, failing: false, small_faces_noted: false, turned_said: None });
        gst::info!(CAT, imp = self, "started");
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        common::detecting_sink_event(self, &self.state, event, |state| (&mut state.finder, &mut state.turned_said))
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let post = self.settings.lock().unwrap().post_messages;
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let info = state.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
        if let Some(note) = common::small_faces_note(&mut state.small_faces_noted, &state.finder, &info) {
            gst::element_imp_info!(self, gst::LibraryError::Settings, ("{}", note), ["{}", note]);
        }
        let found =
            common::with_frame(self, buf, &info, "detection failed", |view| Ok(state.finder.find(view).map(<[_]>::to_vec)))?;
        // A frame whose detection failed goes on without a scan, so that faceveil does not take
        // "no faces" for an answer: it searches the frame itself and blanks it if that fails too.
        let tracks = match found {
            Ok(tracks) => {
                rois::attach_rois(buf, &tracks, info.width(), info.height());
                if state.failing {
                    state.failing = false;
                    gst::info!(CAT, imp = self, "detecting again");
                }
                Some(tracks)
            }
            Err(e) => {
                gst::warning!(CAT, imp = self, "detection failed: {}", common::describe(&e));
                if !state.failing {
                    state.failing = true;
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Failed,
                        ("detection failed ({}): frames pass without a scan until it works again", common::describe(&e))
                    );
                }
                None
            }
        };
        drop(guard);
        // Only a scan says which faces a frame has.
        if post && let Some(tracks) = tracks {
            let faces: Vec<gst::Structure> = tracks
                .iter()
                .map(|t| {
                    gst::Structure::builder("face")
                        .field("track-id", t.id)
                        .field("x", t.bbox.x0)
                        .field("y", t.bbox.y0)
                        .field("width", t.bbox.width())
                        .field("height", t.bbox.height())
                        .field("confidence", t.score as f64)
                        .build()
                })
                .collect();
            let s = gst::Structure::builder("faceveil-faces")
                .field("timestamp", buf.pts())
                .field("faces", gst::List::new(faces))
                .build();
            let _ = self.post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl VideoFilterImpl for FaceVeilDetect {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            // A new resolution makes old boxes meaningless.
            if state.info.as_ref().is_some_and(|i| i.width() != in_info.width() || i.height() != in_info.height()) {
                state.finder.reset();
                state.small_faces_noted = false;
            }
            state.info = Some(in_info.clone());
        }
        common::warn_of_full_range(self, in_info);
        self.parent_set_info(incaps, in_info, outcaps, out_info)
    }
}
