//! faceveilsei: writes faceveil's per-frame restore data into an H.264 or H.265 stream. It goes
//! right after the encoder: `faceveil` attaches each frame's data as a SEI meta, encoders carry
//! the meta over to the frame's access unit but do not write it (x264enc and x265enc in
//! GStreamer 1.22), and this element writes it there as a user-data-unregistered SEI NAL unit,
//! so that files and streams made with gst-launch-1.0 carry what a restore needs.

use std::sync::LazyLock;

use faceveil::stream::SEI_UUID;
use faceveil::stream::sei;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::video_meta::VideoSeiUserDataUnregisteredMeta;

use crate::streamdata;

static CAT: LazyLock<gst::DebugCategory> =
    LazyLock::new(|| gst::DebugCategory::new("faceveilsei", gst::DebugColorFlags::empty(), Some("faceveil SEI writer")));

pub struct FaceVeilSei {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
}

impl FaceVeilSei {
    fn chain(&self, pad: &gst::Pad, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let payload =
            buffer.iter_meta::<VideoSeiUserDataUnregisteredMeta>().find(|m| m.uuid() == SEI_UUID).map(|m| m.data().to_vec());
        let out = match (payload, streamdata::nal_framing(pad)) {
            (Some(payload), Some((codec, framing))) => {
                // An access unit that already carries it (an application wrote it) stays as it is.
                let written = buffer
                    .map_readable()
                    .map(|au| !sei::find_user_data(&au, framing, codec, &SEI_UUID).is_empty())
                    .unwrap_or(false);
                if written {
                    buffer
                } else {
                    streamdata::with_sei(&buffer, codec, framing, &payload).ok_or_else(|| {
                        gst::element_imp_error!(self, gst::StreamError::Format, ["cannot read an access unit"]);
                        gst::FlowError::Error
                    })?
                }
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
        Self { sinkpad, srcpad }
    }
}

impl ObjectImpl for FaceVeilSei {
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
