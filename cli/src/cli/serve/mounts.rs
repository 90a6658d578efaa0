//! The one RTSP server all cameras' mounts share. Each mount is a shared media fed through an
//! appsrc by its camera's pipeline, as `--serve-rtsp` does: the camera runs (and records) whether
//! or not anyone watches, and a client joins at any time. The camera's encoder keys its stream
//! seldom (keyframes cost a live stream most of its bits: `encoder::LIVE_KEYFRAME_EVERY`), so a
//! mount asks it for a keyframe whenever a client starts to play (the pictures between a
//! media's first and its first client's play may have been dropped), and a new media is handed
//! nothing before its first keyframe: a client has a whole picture at once, and the faceveil
//! header, which rides in SEI every 30 frames, within about a second.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use crate::cli::credentials::access::{self, Access};
use crate::cli::media::encoder;
use crate::cli::media::stuck::{self, Served};

/// The frames a mount's appsrc holds before it drops its oldest; a played media whose appsrc is
/// this full and took none during as many pushes is stuck (see [`crate::cli::media::stuck`]).
const QUEUED_FRAMES: u64 = 60;

/// Where a media stands with its first keyframe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Nothing handed on yet, nor a keyframe asked for.
    New,
    /// A keyframe asked for; the pictures before it are not handed on (no decoder can show them).
    Asked,
    /// Its first keyframe handed on: every picture goes through.
    Keyed,
}

/// Hands a camera's encoded frames to its mount's media while a client is connected.
#[derive(Clone)]
pub struct Outlet {
    appsrc: Arc<Mutex<Option<gst_app::AppSrc>>>,
    media: Arc<Mutex<Option<Served>>>,
    server: gst_rtsp_server::RTSPServer,
    keyframes: Keyframes,
}

/// How a mount's media gets keyframes from its camera's encoder.
#[derive(Clone)]
struct Keyframes {
    /// Where they are asked for: the sink pad of the branch of the camera's pipeline that feeds
    /// the mount's outlet (each build of the pipeline sets it; upstream events pass its queue,
    /// tee and parser).
    upstream: Arc<Mutex<glib::WeakRef<gst::Pad>>>,
    /// Where the media stands with its first keyframe.
    start: Arc<Mutex<Start>>,
}

impl Keyframes {
    fn new() -> Self {
        Self { upstream: Arc::default(), start: Arc::new(Mutex::new(Start::New)) }
    }

    /// Asks the camera's encoder to key its next picture.
    fn ask(&self) {
        if let Some(pad) = self.upstream.lock().unwrap().upgrade() {
            encoder::ask_keyframe(&pad);
        }
    }

    /// Whether a picture goes to the media: from its first keyframe on. A new media that gets
    /// another picture first asks for one: a live media plays, and must be fed, before its first
    /// client's play request (gst-rtsp-server describes it from its first picture).
    fn hand_on(&self, keyframe: bool) -> bool {
        let mut start = self.start.lock().unwrap();
        match *start {
            Start::Keyed => true,
            _ if keyframe => {
                *start = Start::Keyed;
                true
            }
            Start::Asked => false,
            Start::New => {
                *start = Start::Asked;
                drop(start);
                self.ask();
                false
            }
        }
    }
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
        let Some(now) = stuck::running_time(&src) else { return };
        if !self.keyframes.hand_on(!buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)) {
            return;
        }
        {
            let b = buffer.make_mut();
            b.set_pts(now);
            b.set_dts(now);
            b.set_duration(gst::ClockTime::NONE);
        }
        // A full appsrc drops its oldest buffer (leaky), so a stalled client never blocks the camera.
        let _ = src.push_buffer(buffer);
        stuck::drop_if_stuck(&self.server, &self.appsrc, &self.media, &src, QUEUED_FRAMES);
    }

    /// Has keyframes asked of the camera's encoder through `pad`, the sink pad of the branch of
    /// its pipeline that feeds this outlet.
    pub fn ask_keyframes_through(&self, pad: &gst::Pad) {
        *self.keyframes.upstream.lock().unwrap() = pad.downgrade();
    }

    /// Ends the stream for the connected clients (the camera was removed or reconfigured).
    pub fn end(&self) {
        if let Some(src) = self.appsrc.lock().unwrap().take() {
            let _ = src.end_of_stream();
        }
    }
}

/// A served camera.
struct Mount {
    factory: gst_rtsp_server::RTSPMediaFactory,
    /// The viewers it is for (`None`: every viewer).
    only: Option<Vec<String>>,
    keyframes: Keyframes,
}

/// The mounts by path.
type MountsByPath = Arc<Mutex<BTreeMap<String, Mount>>>;

pub struct Mounts {
    server: gst_rtsp_server::RTSPServer,
    /// Whether it serves over TLS, which only a restart changes.
    tls: bool,
    /// What clients must give, as the last [`Mounts::set_access`] said, with the certificate
    /// the server presents (with `tls`).
    access: Mutex<Access>,
    mounts: MountsByPath,
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
        let mounts = MountsByPath::default();
        let played = mounts.clone();
        stuck::on_each_play(&server, move |context| {
            let Some(path) = context.uri().map(|uri| uri.decode_path_components()) else { return };
            let mounts = played.lock().unwrap();
            let mount = mounts.iter().filter(|(at, _)| serves(at, &path)).max_by_key(|(at, _)| at.len());
            if let Some((_, mount)) = mount {
                mount.keyframes.ask();
            }
        });
        Ok(Self { server, tls, access: Mutex::default(), mounts, _source: source })
    }

    /// What clients must give, from now on, and the certificate a TLS server presents to them;
    /// clients already playing go on. TLS is turned on or off by a restart only: until then a
    /// server without it takes no certificate, and one with it keeps its certificate.
    pub fn set_access(&self, access: &Access) {
        let mut current = self.access.lock().unwrap();
        let certificate = if self.tls && access.certificate.is_some() { &access.certificate } else { &current.certificate };
        *current = Access { viewers: access.viewers.clone(), certificate: certificate.clone() };
        self.server.set_auth(current.auth().as_ref());
        for mount in self.mounts.lock().unwrap().values() {
            access::allow(&mount.factory, &current, mount.only.as_deref());
        }
    }

    /// Serves a camera at `path`, to the viewers named in `only` (every viewer where `None`).
    pub fn add(&self, path: &str, only: Option<&[String]>) -> Result<Outlet> {
        let outlet =
            Outlet { appsrc: Arc::default(), media: Arc::default(), server: self.server.clone(), keyframes: Keyframes::new() };
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( appsrc name=src is-live=true format=time max-buffers={QUEUED_FRAMES} leaky-type=downstream \
             ! rtph264pay name=pay0 pt=96 config-interval=1 )"
        ));
        factory.set_shared(true);
        access::serve_on(&factory, &self.access.lock().unwrap(), only, self.tls);
        let (slot, media_slot, keyframes) = (outlet.appsrc.clone(), outlet.media.clone(), outlet.keyframes.clone());
        factory.connect_media_configure(move |_, media| {
            let Ok(bin) = media.element().downcast::<gst::Bin>() else { return };
            let Some(src) = bin.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()) else { return };
            *keyframes.start.lock().unwrap() = Start::New;
            *slot.lock().unwrap() = Some(src.clone());
            *media_slot.lock().unwrap() = Some(Served::new(media, &src));
            let (gone, gone_media) = (slot.clone(), media_slot.clone());
            media.connect_unprepared(move |media| {
                stuck::forget(&gone, &src);
                Served::forget(&gone_media, media);
            });
        });
        self.server.mount_points().context("the RTSP server has no mount points")?.add_factory(path, factory.clone());
        let mount = Mount { factory, only: only.map(<[String]>::to_vec), keyframes: outlet.keyframes.clone() };
        self.mounts.lock().unwrap().insert(path.to_string(), mount);
        Ok(outlet)
    }

    pub fn remove(&self, path: &str) {
        if let Some(points) = self.server.mount_points() {
            points.remove_factory(path);
        }
        self.mounts.lock().unwrap().remove(path);
    }
}

/// Whether the mount at `path` serves a request for the path of `components` (as the RTSP URL
/// decodes them: an empty first component, the mount's, then a stream's control, if any).
fn serves(path: &str, components: &[glib::GString]) -> bool {
    let requested = components.iter().filter(|c| !c.is_empty());
    let mount = path.split('/').filter(|c| !c.is_empty());
    let (mount, requested): (Vec<&str>, Vec<&str>) = (mount.collect(), requested.map(|c| c.as_str()).collect());
    !mount.is_empty() && requested.starts_with(&mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_served_by_the_mount_whose_path_its_own_starts_with() {
        let request = |path: &str| path.split('/').map(glib::GString::from).collect::<Vec<_>>();
        assert!(serves("/hall", &request("/hall")));
        assert!(serves("/hall", &request("/hall/")));
        assert!(serves("/hall", &request("/hall/stream=0")));
        assert!(serves("/site/door", &request("/site/door/stream=0")));
        assert!(!serves("/hall", &request("/hall2")));
        assert!(!serves("/site/door", &request("/site")));
        assert!(!serves("/", &request("/hall")));
    }
}
