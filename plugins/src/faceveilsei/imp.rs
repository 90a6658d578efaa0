//! faceveilsei: writes faceveil's per-frame restore data into an H.264 or H.265 stream. It goes
//! right after the encoder: `faceveil` attaches each frame's data as a SEI meta, encoders carry
//! the meta over to the frame's access unit but do not write it (x264enc and x265enc in
//! GStreamer 1.22), and this element writes it there as a user-data-unregistered SEI NAL unit,
//! so that files and streams made with gst-launch-1.0 carry what a restore needs. With a signing
//! key it also signs each such access unit as coded, as `faceveil`'s `sign-pictures` promises.
//! On the way back, before the decoder, its `signer` checks each access unit against that
//! signature ([`PictureWatch`]), as `faceveil restore --signer` does: a picture not as signed
//! stops the stream, but the last, where a writer killed within a picture stops, which is left
//! out with a warning.

use std::sync::{LazyLock, Mutex};

use faceveil::secrets::{Signer, SigningKey};
use faceveil::stream::SEI_UUID;
use faceveil::stream::pictures::{PictureWatch, Watched};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::video_meta::VideoSeiUserDataUnregisteredMeta;

use crate::common;
use crate::outofband;
use crate::settings::SigningKeySettings;
use crate::streamdata;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceveilsei", gst::DebugColorFlags::empty(), Some("faceveil SEI writer")));

#[derive(Default)]
struct Settings {
    signing: SigningKeySettings,
    /// The signer whose pictures are checked on the way to a decoder, as given: read when the
    /// element starts, which refuses one that does not read rather than check nothing.
    signer: Option<String>,
}

pub struct FaceVeilSei {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    /// The signing key while the element runs.
    key: Mutex<Option<SigningKey>>,
    /// The check of the signer's pictures while the element runs.
    watch: Mutex<Option<PictureWatch>>,
}

impl FaceVeilSei {
    fn chain(&self, pad: &gst::Pad, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let (Some(watch), Some((codec, framing))) = (self.watch.lock().unwrap().as_mut(), streamdata::nal_framing(pad)) {
            let au = buffer.map_readable().map_err(|_| {
                gst::element_imp_error!(self, gst::StreamError::Format, ["cannot read an access unit"]);
                gst::FlowError::Error
            })?;
            match watch.check(&au, framing, codec) {
                Err(why) => {
                    gst::element_imp_error!(self, gst::StreamError::Failed, ("{why}: the signed recording was altered"));
                    return Err(gst::FlowError::Error);
                }
                Ok(Watched::HeldBack) => return Ok(gst::FlowSuccess::Ok),
                Ok(Watched::Pass) => {}
            }
        }
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

    /// At the end of the stream, a last picture held back as not as signed is left out, with a
    /// warning: where a writer killed within a picture stops.
    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view()
            && let Some(why) = self.watch.lock().unwrap().as_mut().and_then(PictureWatch::end)
        {
            gst::element_imp_warning!(self, gst::StreamError::Failed, ("{why}; {}", streamdata::LAST_PICTURE_LEFT_OUT));
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    /// Tells a restore's faceunveil downstream that the pictures are checked here, and against
    /// whom ([`outofband::answer_pictures_checked`]); other queries as any element does.
    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let Some(watch) = self.watch.lock().unwrap().as_ref()
            && outofband::answer_pictures_checked(query, watch.signer())
        {
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
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
            .event_function(|pad, parent, event| {
                FaceVeilSei::catch_panic_pad_function(parent, || false, |this| this.sink_event(pad, event))
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").expect("a src template"))
            .query_function(|pad, parent, query| {
                FaceVeilSei::catch_panic_pad_function(parent, || false, |this| this.src_query(pad, query))
            })
            .flags(gst::PadFlags::PROXY_CAPS)
            .build();
        Self { sinkpad, srcpad, settings: Mutex::default(), key: Mutex::default(), watch: Mutex::default() }
    }
}

impl ObjectImpl for FaceVeilSei {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut v = SigningKeySettings::properties(
                "Signing key file (faceveil keygen --signing) that signs each access unit with faceveil data as coded, slices and data together (after the encoder): the key given to faceveil's signing-key, whose sign-pictures promises it",
            );
            v.push(
                glib::ParamSpecString::builder("signer")
                    .nick("Signer")
                    .blurb("Before the decoder of a restore: the signer (faceveil-signer-...) whose signed pictures each access unit is checked against, where that signer's header promises them; the first not as signed stops the stream with an error naming its frame (the last is left out with a warning: a writer killed within it leaves one)")
                    .mutable_ready()
                    .build(),
            );
            v
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        if pspec.name() == "signer" {
            s.signer = value.get::<Option<String>>().expect("type checked upstream").filter(|t| !t.trim().is_empty());
            return;
        }
        let handled = s.signing.set(pspec.name(), value);
        assert!(handled, "faceveilsei has no writable property {}", pspec.name());
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "signer" => s.signer.to_value(),
            name => s.signing.get(name).expect("every readable property is handled"),
        }
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
                "Writes the restore data faceveil attached to each frame into the H.264/H.265 stream as SEI, signed with signing-key (place it right after the encoder); with signer, checks each signed picture instead (place it before the decoder)",
                "faceveil developers",
            )
        });
        Some(&*META)
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        match transition {
            gst::StateChange::NullToReady => {
                let settings = self.settings.lock().unwrap();
                match settings.signing.open() {
                    Ok(key) => *self.key.lock().unwrap() = key,
                    Err(e) => {
                        self.post_error_message(e);
                        return Err(gst::StateChangeError);
                    }
                }
                let signer: Result<Option<Signer>, _> = settings.signer.as_deref().map(str::parse).transpose();
                match signer {
                    Ok(signer) => *self.watch.lock().unwrap() = signer.map(PictureWatch::new),
                    Err(e) => {
                        self.post_error_message(common::settings_error(e));
                        return Err(gst::StateChangeError);
                    }
                }
            }
            gst::StateChange::ReadyToNull => {
                *self.key.lock().unwrap() = None;
                *self.watch.lock().unwrap() = None;
            }
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
