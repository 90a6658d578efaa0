use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceVeilCheckpoint(ObjectSubclass<imp::FaceVeilCheckpoint>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceveilcheckpoint", gst::Rank::NONE, FaceVeilCheckpoint::static_type())
}
