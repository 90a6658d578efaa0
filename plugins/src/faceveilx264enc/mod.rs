use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceVeilX264Enc(ObjectSubclass<imp::FaceVeilX264Enc>) @extends gst_video::VideoEncoder, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceveilx264enc", gst::Rank::NONE, FaceVeilX264Enc::static_type())
}
