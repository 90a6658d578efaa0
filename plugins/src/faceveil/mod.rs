use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceVeil(ObjectSubclass<imp::FaceVeil>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceveil", gst::Rank::NONE, FaceVeil::static_type())
}
