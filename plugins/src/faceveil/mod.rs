use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceVeil(ObjectSubclass<imp::FaceVeil>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

impl FaceVeil {
    /// Signs the sealed stream's header and records with `key`, which the application opened
    /// (in place of the `signing-key` file, which the element would read, and a protected one
    /// decrypt, once more when it starts).
    pub fn set_signing_key(&self, key: faceveil::secrets::SigningKey) {
        self.imp().set_signing_key(key);
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(Some(plugin), "faceveil", gst::Rank::NONE, FaceVeil::static_type())
}
