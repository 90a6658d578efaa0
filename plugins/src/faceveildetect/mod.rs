use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceVeilDetect(ObjectSubclass<imp::FaceVeilDetect>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceveildetect", gst::Rank::NONE, FaceVeilDetect::static_type())
}
