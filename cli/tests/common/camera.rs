//! An RTSP camera of the kind that gives a client joining midway no keyframe: one shared play of
//! a clip, encoded live by x264 with intra refresh (a keyframe only at the very start), begun by
//! its first client. faceveil's own `--serve-rtsp` sends each new client a keyframe, so it
//! cannot stand in for such cameras.

use std::path::Path;

use gst_rtsp_server::prelude::*;

pub struct RefreshCamera {
    main_loop: gst::glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RefreshCamera {
    /// Serves `clip` at rtsp://127.0.0.1:`port`/faceveil, in real time, until dropped.
    pub fn start(clip: &Path, port: u16) -> Self {
        gst::init().unwrap();
        let context = gst::glib::MainContext::new();
        let main_loop = gst::glib::MainLoop::new(Some(&context), false);
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( filesrc location=\"{}\" ! decodebin ! videoconvert ! x264enc tune=zerolatency speed-preset=superfast \
             key-int-max=30 intra-refresh=true ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            clip.display()
        ));
        factory.set_shared(true);
        server.mount_points().unwrap().add_factory("/faceveil", factory);
        let source = server.attach(Some(&context)).expect("the camera's port is free");
        let serving = main_loop.clone();
        let thread = std::thread::spawn(move || {
            let _server = server;
            let _source = source;
            serving.run();
        });
        Self { main_loop, thread: Some(thread) }
    }
}

impl Drop for RefreshCamera {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
