//! The one RTSP server all cameras' mounts share. Each mount is a shared media fed through an
//! appsrc by its camera's pipeline, as `--serve-rtsp` does: the camera runs (and records) whether
//! or not anyone watches, and a client joins at any time. The stream is already encoded with a
//! keyframe every 30 frames and the faceveil header in SEI every 30 frames, so a joining client
//! has a whole picture and a restorable stream within about a second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use crate::cli::credentials::access::{self, Access};
use crate::cli::media::stuck::Served;

/// The frames a mount's appsrc holds before it drops its oldest; a played media whose appsrc is
/// this full and took none during as many pushes is stuck (see [`crate::cli::media::stuck`]).
const QUEUED_FRAMES: u64 = 60;

/// Hands a camera's encoded frames to its mount's media while a client is connected.
#[derive(Clone)]
pub struct Outlet {
    appsrc: Arc<Mutex<Option<gst_app::AppSrc>>>,
    media: Arc<Mutex<Option<Served>>>,
    server: gst_rtsp_server::RTSPServer,
}

impl Outlet {
    /// Pushes one encoded access unit, stamped with the media's running time (the camera's own
    /// timestamps mean nothing to a media that started later).
    pub fn push(&self, sample: &gst::Sample) {
        let Some(src) = self.appsrc.lock().unwrap().clone() else { return };
        let (Some(mut buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else { return };
        if src.caps().as_ref().map(|c| c.as_ref()) != Some(caps) {
            src.set_caps(Some(&caps.to_owned()));
        }
        let Some(now) = crate::cli::media::stuck::running_time(&src) else { return };
        {
            let b = buffer.make_mut();
            b.set_pts(now);
            b.set_dts(now);
            b.set_duration(gst::ClockTime::NONE);
        }
        // A full appsrc drops its oldest buffer (leaky), so a stalled client never blocks the camera.
        let _ = src.push_buffer(buffer);
        crate::cli::media::stuck::drop_if_stuck(&self.server, &self.appsrc, &self.media, &src, QUEUED_FRAMES);
    }

    /// Ends the stream for the connected clients (the camera was removed or reconfigured).
    pub fn end(&self) {
        if let Some(src) = self.appsrc.lock().unwrap().take() {
            let _ = src.end_of_stream();
        }
    }
}

/// A mount's media factory and the viewers it is for (`None`: every viewer).
type Mount = (gst_rtsp_server::RTSPMediaFactory, Option<Vec<String>>);

pub struct Mounts {
    server: gst_rtsp_server::RTSPServer,
    /// Whether it serves over TLS, which only a restart changes.
    tls: bool,
    /// What clients must give, as the last [`Mounts::set_access`] said, with the certificate
    /// the server presents (with `tls`).
    access: Mutex<Access>,
    /// Each mount's media factory and the viewers it is for, by path.
    factories: Mutex<BTreeMap<String, Mount>>,
    _source: gst::glib::SourceId,
}

impl Mounts {
    /// Listens at `address`:`port`, over TLS where `tls` (its certificate comes with
    /// [`Mounts::set_access`]); the server runs on the default GLib main context (the caller
    /// runs its loop).
    pub fn start(address: &str, port: u16, tls: bool) -> Result<Self> {
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(address);
        server.set_service(&port.to_string());
        let source = server.attach(None).with_context(|| format!("cannot listen for RTSP clients on port {port} (in use?)"))?;
        Ok(Self { server, tls, access: Mutex::default(), factories: Mutex::default(), _source: source })
    }

    /// What clients must give, from now on, and the certificate a TLS server presents to them;
    /// clients already playing go on. TLS is turned on or off by a restart only: until then a
    /// server without it takes no certificate, and one with it keeps its certificate.
    pub fn set_access(&self, access: &Access) {
        let mut current = self.access.lock().unwrap();
        let certificate = if self.tls && access.certificate.is_some() { &access.certificate } else { &current.certificate };
        *current = Access { viewers: access.viewers.clone(), certificate: certificate.clone() };
        self.server.set_auth(current.auth().as_ref());
        for (factory, only) in self.factories.lock().unwrap().values() {
            access::allow(factory, &current, only.as_deref());
        }
    }

    /// Serves a camera at `path`, to the viewers named in `only` (every viewer where `None`).
    pub fn add(&self, path: &str, only: Option<&[String]>) -> Result<Outlet> {
        let outlet = Outlet { appsrc: Arc::default(), media: Arc::default(), server: self.server.clone() };
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( appsrc name=src is-live=true format=time max-buffers={QUEUED_FRAMES} leaky-type=downstream \
             ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        ));
        factory.set_shared(true);
        access::serve_on(&factory, &self.access.lock().unwrap(), only, self.tls);
        let (slot, media_slot) = (outlet.appsrc.clone(), outlet.media.clone());
        factory.connect_media_configure(move |_, media| {
            let Ok(bin) = media.element().downcast::<gst::Bin>() else { return };
            let Some(src) = bin.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()) else { return };
            *slot.lock().unwrap() = Some(src.clone());
            *media_slot.lock().unwrap() = Some(Served::new(media, &src));
            let (gone, gone_media) = (slot.clone(), media_slot.clone());
            media.connect_unprepared(move |media| {
                crate::cli::media::stuck::forget(&gone, &src);
                Served::forget(&gone_media, media);
            });
        });
        self.server.mount_points().context("the RTSP server has no mount points")?.add_factory(path, factory.clone());
        self.factories.lock().unwrap().insert(path.to_string(), (factory, only.map(<[String]>::to_vec)));
        Ok(outlet)
    }

    pub fn remove(&self, path: &str) {
        if let Some(points) = self.server.mount_points() {
            points.remove_factory(path);
        }
        self.factories.lock().unwrap().remove(path);
    }
}
