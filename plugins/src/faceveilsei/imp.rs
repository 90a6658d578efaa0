//! faceveilsei: writes faceveil's per-frame restore data into an H.264 or H.265 stream. It goes
//! right after the encoder: `faceveil` attaches each frame's data as a SEI meta, encoders carry
//! the meta over to the frame's access unit but do not write it (x264enc and x265enc in
//! GStreamer 1.22), and this element writes it there as a user-data-unregistered SEI NAL unit,
//! so that files and streams made with gst-launch-1.0 carry what a restore needs. With a signing
//! key it also signs each such access unit as coded, as `faceveil`'s `sign-pictures` promises.

use std::sync::{LazyLock, Mutex};

use faceveil::secrets::SigningKey;
use faceveil::stream::SEI_UUID;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::video_meta::VideoSeiUserDataUnregisteredMeta;

use crate::common::SigningKeySettings;
use crate::streamdata;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceveilsei", gst::DebugColorFlags::empty(), Some("faceveil SEI writer")));

pub struct FaceVeilSei {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<SigningKeySettings>,
    /// The signing key while the element runs.
    key: Mutex<Option<SigningKey>>,
}

impl FaceVeilSei {
    fn chain(&self, pad: &gst::Pad, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let payload =
            buffer.iter_meta::<VideoSeiUserDataUnregisteredMeta>().find(|m| m.uuid() == SEI_UUID).map(|m| m.data().to_vec());
        let out = match (payload, streamdata::nal_framing(pad)) {
            (Some(payload), Some((codec, framing))) => {
                let key = self.key.lock().unwrap();
                streamdata::with_sei(&buffer, codec, framing, &payload, key.as_ref()).ok_or_else(|| {
                    gst::element_imp_error!(self, gst::StreamError::Format, ["cannot read an access unit"]);
                    gst::FlowError::Error
                })?
            }
            (Some(_), None) => {
                gst::warning!(CAT, imp = self, "not H.264 or H.265: the faceveil data is not written");
                buffer
            }
            (None, _) => buffer,
        };
        self.srcpad.push(out)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FaceVeilSei {
    const NAME: &'static str = "GstFaceVeilSei";
    type Type = super::FaceVeilSei;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").expect("a sink template"))
            .chain_function(|pad, parent, buffer| {
                FaceVeilSei::catch_panic_pad_function(parent, || Err(gst::FlowError::Error), |this| this.chain(pad, buffer))
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").expect("a src template"))
            .flags(gst::PadFlags::PROXY_CAPS)
            .build();
        Self { sinkpad, srcpad, settings: Mutex::default(), key: Mutex::default() }
    }
}

impl ObjectImpl for FaceVeilSei {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            SigningKeySettings::properties(
                "Signing key file (faceveil keygen --signing) that signs each access unit with faceveil data as coded, slices and data together: the key given to faceveil's signing-key, whose sign-pictures promises it",
            )
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let handled = self.settings.lock().unwrap().set(pspec.name(), value);
        assert!(handled, "faceveilsei has no writable property {}", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        self.settings.lock().unwrap().get(pspec.name()).expect("every readable property is handled")
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("a new element takes its sink pad");
        obj.add_pad(&self.srcpad).expect("a new element takes its src pad");
    }
}

impl GstObjectImpl for FaceVeilSei {}

impl ElementImpl for FaceVeilSei {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "faceveil SEI writer",
                "Codec/Video/Parser",
                "Writes the restore data faceveil attached to each frame into the H.264/H.265 stream as SEI (place it right after the encoder)",
                "faceveil developers",
            )
        });
        Some(&*META)
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                let key = self.settings.lock().unwrap().open();
                match key {
                    Ok(key) => *self.key.lock().unwrap() = key,
                    Err(e) => {
                        self.post_error_message(e);
                        return Err(gst::StateChangeError);
                    }
                }
            }
            gst::StateChange::ReadyToNull => *self.key.lock().unwrap() = None,
            _ => {}
        }
        self.parent_change_state(transition)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder_full()
                .structure(gst::Structure::builder("video/x-h264").field("alignment", "au").build())
                .structure(gst::Structure::builder("video/x-h265").field("alignment", "au").build())
                .build();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).expect("sink template"),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).expect("src template"),
            ]
        });
        T.as_ref()
    }
}
