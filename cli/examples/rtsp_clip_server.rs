//! Network cameras for measurements: serves an H.264 MP4 file as it is (no decoding, no
//! encoding, so the cameras cost next to nothing of the machine being measured) at
//! rtsp://127.0.0.1:PORT/cam1 … /camN. Each client gets its own play of the file from the start,
//! in real time. `scripts/serve-capacity.sh` runs it when SOURCE=rtsp.
//!
//! Usage: rtsp_clip_server CLIP.mp4 PORT N

use anyhow::{Context, Result, bail};
use gst_rtsp_server::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [clip, port, count] = args.as_slice() else { bail!("usage: rtsp_clip_server CLIP.mp4 PORT N") };
    let clip = std::fs::canonicalize(clip).with_context(|| format!("cannot open {clip}"))?;
    let count: usize = count.parse().context("N is a number of cameras")?;
    gst::init()?;
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(port);
    let mounts = server.mount_points().context("the RTSP server has no mount points")?;
    for i in 1..=count {
        let factory = gst_rtsp_server::RTSPMediaFactory::new();
        factory.set_launch(&format!(
            "( filesrc location=\"{}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            clip.display()
        ));
        mounts.add_factory(&format!("/cam{i}"), factory);
    }
    let _source = server.attach(None).with_context(|| format!("cannot listen on port {port}"))?;
    eprintln!("serving {} at rtsp://127.0.0.1:{port}/cam1 .. /cam{count}", clip.display());
    gst::glib::MainLoop::new(None, false).run();
    Ok(())
}
