//! Helpers shared by the CLI's integration tests, on top of the workspace's.
#![allow(dead_code)]

pub mod media;
pub mod served;

#[path = "../../../../tests/common/mod.rs"]
mod workspace;

pub use workspace::*;

use std::path::{Path, PathBuf};

use faceveil::frame::rgb::RgbImage;

/// A fresh, empty scratch folder for one test, removed when it passes ([`TestDir`]).
pub fn tmpdir(name: &str) -> TestDir {
    TestDir::new(name)
}

/// The faceveil binary under a file size limit of `blocks` blocks of 512 bytes: a write past it
/// fails ("File too large") as on a full disk, rather than killing the process (SIGXFSZ is
/// ignored). The limit is soft, so that it can be lifted while the process runs, as a disk is
/// cleared (`prlimit --fsize=unlimited --pid PID`).
pub fn faceveil_on_a_disk_that_fills(blocks: u32) -> std::process::Command {
    let mut shell = std::process::Command::new("sh");
    shell.args(["-c", &format!("trap '' XFSZ; ulimit -S -f {blocks}; exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_faceveil")]);
    shell
}

/// A file of the repository's samples/.
pub fn sample(name: &str) -> PathBuf {
    repo().join("samples").join(name)
}

/// GStreamer's log of the RTSP requests each side saw and handled, and every element's warnings,
/// for the processes of the RTSP tests: their logs are kept when a test fails, and a client
/// that got no frame (seen twice in CI, 2026-12-03 and 12-04, never here) can then be told
/// apart from a server that sent none.
pub const RTSP_TRACE: [(&str, &str); 2] =
    [("GST_DEBUG", "2,rtspsrc:4,rtspclient:4,rtspmedia:4,rtspmediafactory:4"), ("GST_DEBUG_NO_COLOR", "1")];

/// A TLS certificate of its own for 127.0.0.1 and its private key, made in `dir` by openssl
/// (PEM: `server.pem`, `server.key`), as a camera or a site makes one; `None`, said, where
/// openssl is missing (scripts/setup.sh installs it).
pub fn certificate(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=faceveil test", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", s(&key), "-out", s(&cert)])
        .output();
    let Ok(made) = made else {
        eprintln!("skipped TLS: openssl is not installed (scripts/setup.sh installs it)");
        return None;
    };
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    Some((cert, key))
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server the test starts.
pub fn free_port() -> u16 {
    local_listener().local_addr().unwrap().port()
}

/// A listener on 127.0.0.1 for a test's own stand-in server, on a port that [`free_port`] never
/// gives out. The tests of a binary run side by side, and a port is free only until its server
/// binds it: the system may hand a port that `free_port` let go to the next listener bound to
/// port 0 (in CI, 2026-12-08, a stand-in RTSP server took the metrics port just given to the
/// `serve` it was for), so no port goes to two of them.
pub fn local_listener() -> std::net::TcpListener {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return listener;
        }
    }
}

/// A finished run of the faceveil binary, failed where its standard error holds a GLib or
/// GStreamer critical: each is a misuse of the library however well the run ends (a sticky tag
/// event dropped by a probe once printed thousands while the output came out right).
pub fn without_criticals(o: std::process::Output) -> std::process::Output {
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(!text.contains("-CRITICAL **"), "criticals on standard error:\n{text}");
    o
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The image at half its width and height (every other pixel of every other row).
pub fn halved(img: &RgbImage) -> RgbImage {
    let mut out = RgbImage::new(img.width / 2, img.height / 2);
    for y in 0..out.height {
        for (dst, src) in out.row_mut(y).chunks_exact_mut(3).zip(img.row(2 * y).chunks_exact(6)) {
            dst.copy_from_slice(&src[..3]);
        }
    }
    out
}

/// The image flipped left to right.
pub fn mirrored(img: &RgbImage) -> RgbImage {
    let mut out = RgbImage::new(img.width, img.height);
    for y in 0..img.height {
        for (dst, src) in out.row_mut(y).chunks_exact_mut(3).zip(img.row(y).chunks_exact(3).rev()) {
            dst.copy_from_slice(src);
        }
    }
    out
}

/// Mean absolute difference over a rectangle of two same-sized images.
pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let (p, q) = (a.pixel(x, y), b.pixel(x, y));
            for c in 0..3 {
                sum += (p[c] as i32 - q[c] as i32).unsigned_abs() as u64;
            }
        }
    }
    sum as f64 / (3 * (x1 - x0) * (y1 - y0)).max(1) as f64
}

/// How far the 16 px blocks an anonymization changed (by more than 20 levels on average) are
/// from `original`: in `anonymized` and in `restored`, mean levels. Panics where it changed none.
pub fn face_blocks_off(original: &RgbImage, anonymized: &RgbImage, restored: &RgbImage) -> (f64, f64) {
    let blocks = (0..original.height / 16).flat_map(|by| (0..original.width / 16).map(move |bx| (bx * 16, by * 16)));
    let off = |x: &RgbImage, (bx, by): (usize, usize)| mean_abs_diff(x, original, bx, by, bx + 16, by + 16);
    let faces: Vec<(usize, usize)> = blocks.filter(|&b| off(anonymized, b) > 20.0).collect();
    assert!(!faces.is_empty(), "nothing anonymized");
    let mean = |x: &RgbImage| faces.iter().map(|&b| off(x, b)).sum::<f64>() / faces.len() as f64;
    (mean(anonymized), mean(restored))
}

/// PSNR (RGB) over rectangles (x0, y0, x1, y1) of two same-sized images, clipped to them. A zero
/// error reads as about 138 dB rather than infinity, so that differences of two PSNRs stay finite.
pub fn psnr_over(a: &RgbImage, b: &RgbImage, rects: &[(usize, usize, usize, usize)]) -> f64 {
    let (mut se, mut n) = (0f64, 0f64);
    for &(x0, y0, x1, y1) in rects {
        for y in y0..y1.min(a.height) {
            for x in x0..x1.min(a.width) {
                let (p, q) = (a.pixel(x, y), b.pixel(x, y));
                for c in 0..3 {
                    se += (p[c] as f64 - q[c] as f64).powi(2);
                    n += 1.0;
                }
            }
        }
    }
    10.0 * (255f64.powi(2) / (se / n.max(1.0)).max(1e-9)).log10()
}
