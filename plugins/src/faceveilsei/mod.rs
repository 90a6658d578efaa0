use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceVeilSei(ObjectSubclass<imp::FaceVeilSei>) @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceveilsei", gst::Rank::NONE, FaceVeilSei::static_type())
}
