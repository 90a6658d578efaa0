use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceUnveil(ObjectSubclass<imp::FaceUnveil>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceunveil", gst::Rank::NONE, FaceUnveil::static_type())
}
