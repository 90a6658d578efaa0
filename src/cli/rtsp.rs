//! `--serve-rtsp PORT`: the anonymized stream published with gst-rtsp-server at
//! rtsp://HOST:PORT/faceveil. One shared pipeline serves every client.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use faceveil::pipeline::Anonymizer;
use gst::prelude::*;
use gst_rtsp_server::prelude::*;

use super::input::{Input, StreamSource};
use super::video::{self, FrameFn, HeaderSlot, Hook};

pub const MOUNT: &str = "/faceveil";

fn source_description(source: &StreamSource) -> Result<String> {
    Ok(match source {
        StreamSource::File(p) => {
            let abs = std::fs::canonicalize(p).with_context(|| format!("cannot open {}", p.display()))?;
            let uri = gst::glib::filename_to_uri(&abs, None)?;
            format!("uridecodebin uri=\"{uri}\"")
        }
        StreamSource::Uri(u) => format!("uridecodebin uri=\"{u}\""),
        StreamSource::Camera(d) => format!("v4l2src device=\"{d}\" ! decodebin"),
    })
}

pub fn serve(input: &Input, port: u16, anonymizer: Anonymizer) -> Result<()> {
    video::init()?;
    let Input::Stream(source) = input else { bail!("--serve-rtsp needs a video file, an RTSP URL or a camera") };
    if let Some(h) = anonymizer.header() {
        // Clients cannot receive container tags: this line is what `faceveil restore --header` takes.
        println!("faceveil header: {}", h.encode());
    }
    let launch = format!(
        "( {} ! videoconvert ! video/x-raw,format=I420 ! identity name=hook ! queue \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        source_description(source)?
    );
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_service(&port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    factory.set_shared(true);
    let anonymizer = Arc::new(Mutex::new(anonymizer));
    factory.connect_media_configure(move |_, media| {
        let Some(hook) = media.element().downcast::<gst::Bin>().ok().and_then(|b| b.by_name("hook")) else { return };
        let a = anonymizer.clone();
        let process: FrameFn = Box::new(move |frame, _n, pts| {
            a.lock().unwrap().process(frame, None, pts)?;
            Ok(())
        });
        video::install_probe(&hook.static_pad("src").expect("identity has a src pad"), Hook::new(process, HeaderSlot::default()));
    });
    server.mount_points().context("RTSP server has no mount points")?.add_factory(MOUNT, factory);
    let _source = server.attach(None).context("cannot listen for RTSP clients (port in use?)")?;
    println!("serving rtsp://127.0.0.1:{port}{MOUNT} (Ctrl-C to stop)");
    gst::glib::MainLoop::new(None, false).run();
    Ok(())
}
