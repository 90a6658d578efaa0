//! libx264 (build 164, as Debian 12 ships it beside GStreamer's x264enc), loaded at run time
//! for what x264enc does not pass on: a quantizer offset for each macroblock of each picture.
//! Only the few fields x264 has no option name for are written in its structures (the picture
//! size and format, the planes and the offsets), each in the part of the structure that has
//! stayed the same across builds; every other setting goes through `x264_param_parse`, and the
//! structures are given more room than they need.

use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::OnceLock;

use libloading::Library;

/// The shared library's name: its build is in the name of `x264_encoder_open_164` too.
const LIBRARY: &str = "libx264.so.164";
/// Room for an `x264_param_t` and an `x264_picture_t` of build 164 (about 1,000 and 300 bytes).
const PARAM_ROOM: usize = 4096;
const PICTURE_ROOM: usize = 1024;

/// x264's colour spaces used here.
pub const CSP_I420: c_int = 0x0002;
pub const CSP_I444: c_int = 0x000c;

/// The start of `x264_param_t`: what the options cannot set.
#[repr(C)]
struct ParamHead {
    cpu: u32,
    i_threads: c_int,
    i_lookahead_threads: c_int,
    b_sliced_threads: c_int,
    b_deterministic: c_int,
    b_cpu_independent: c_int,
    i_sync_lookahead: c_int,
    i_width: c_int,
    i_height: c_int,
    i_csp: c_int,
}

#[repr(C)]
struct Image {
    i_csp: c_int,
    i_plane: c_int,
    i_stride: [c_int; 4],
    plane: [*mut u8; 4],
}

#[repr(C)]
struct ImageProperties {
    quant_offsets: *mut f32,
    quant_offsets_free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// The start of `x264_picture_t`, up to the properties this module sets and reads.
#[repr(C)]
struct PictureHead {
    i_type: c_int,
    i_qpplus1: c_int,
    i_pic_struct: c_int,
    b_keyframe: c_int,
    i_pts: i64,
    i_dts: i64,
    param: *mut c_void,
    img: Image,
    prop: ImageProperties,
}

#[repr(C)]
struct Nal {
    i_ref_idc: c_int,
    i_type: c_int,
    b_long_startcode: c_int,
    i_first_mb: c_int,
    i_last_mb: c_int,
    i_payload: c_int,
    p_payload: *mut u8,
    i_padding: c_int,
}

type DefaultPreset = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
type Parse = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
type Open = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type PictureInit = unsafe extern "C" fn(*mut c_void);
type Encode = unsafe extern "C" fn(*mut c_void, *mut *mut Nal, *mut c_int, *mut c_void, *mut c_void) -> c_int;
type Delayed = unsafe extern "C" fn(*mut c_void) -> c_int;
type IntraRefresh = unsafe extern "C" fn(*mut c_void);
type Close = unsafe extern "C" fn(*mut c_void);

/// The functions used, resolved once.
struct Api {
    default_preset: DefaultPreset,
    parse: Parse,
    open: Open,
    picture_init: PictureInit,
    encode: Encode,
    delayed: Delayed,
    maximum_delayed: Delayed,
    intra_refresh: IntraRefresh,
    close: Close,
    _library: Library,
}

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| {
        // SAFETY: loading libx264 runs no code of its own beyond its initialisers; each symbol
        // is given the signature x264.h declares for build 164, which the library's name pins.
        unsafe {
            let library = Library::new(LIBRARY).map_err(|e| format!("cannot load {LIBRARY}: {e}"))?;
            let get = |name: &[u8]| library.get::<*const c_void>(name).map(|s| *s).map_err(|e| format!("{LIBRARY}: {e}"));
            Ok(Api {
                default_preset: std::mem::transmute::<*const c_void, DefaultPreset>(get(b"x264_param_default_preset")?),
                parse: std::mem::transmute::<*const c_void, Parse>(get(b"x264_param_parse")?),
                open: std::mem::transmute::<*const c_void, Open>(get(b"x264_encoder_open_164")?),
                picture_init: std::mem::transmute::<*const c_void, PictureInit>(get(b"x264_picture_init")?),
                encode: std::mem::transmute::<*const c_void, Encode>(get(b"x264_encoder_encode")?),
                delayed: std::mem::transmute::<*const c_void, Delayed>(get(b"x264_encoder_delayed_frames")?),
                maximum_delayed: std::mem::transmute::<*const c_void, Delayed>(get(b"x264_encoder_maximum_delayed_frames")?),
                intra_refresh: std::mem::transmute::<*const c_void, IntraRefresh>(get(b"x264_encoder_intra_refresh")?),
                close: std::mem::transmute::<*const c_void, Close>(get(b"x264_encoder_close")?),
                _library: library,
            })
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether libx264 loads here (it comes with GStreamer's x264enc).
pub fn loads() -> bool {
    api().is_ok()
}

/// An encoder's settings.
pub struct Settings {
    pub width: u32,
    pub height: u32,
    /// [`CSP_I420`] or [`CSP_I444`].
    pub csp: c_int,
    pub preset: &'static str,
    /// One psychovisual tune and any of `zerolatency` and `fastdecode`, comma-separated.
    pub tune: &'static str,
    /// Further options as x264's command line names them (`crf`, `me`, `fps`, ...).
    pub options: Vec<(&'static str, String)>,
}

/// One picture to code: its planes (Y, U, V) with their strides, a quantizer offset for each
/// 16 × 16 macroblock in raster order (none: no offsets), and whether it must be a keyframe.
pub struct Picture<'a> {
    pub planes: [(&'a [u8], usize); 3],
    pub number: i64,
    pub offsets: Option<&'a mut [f32]>,
    pub keyframe: bool,
}

/// x264's picture type for a keyframe that nothing after it refers past (`X264_TYPE_IDR`).
const TYPE_IDR: c_int = 0x0001;

/// A coded picture: its access unit (Annex B), the number of the picture it codes, its decoding
/// time in pictures (before the first where B-frames hold pictures back: negative), and
/// whether it is a keyframe.
pub struct Coded {
    pub data: Vec<u8>,
    pub number: i64,
    pub dts: i64,
    pub keyframe: bool,
}

/// An open libx264 encoder.
pub struct Encoder {
    api: &'static Api,
    handle: *mut c_void,
    /// The colour space it was opened for, which its pictures are in.
    csp: c_int,
}

// SAFETY: an x264 encoder is used from one thread at a time (the element's streaming thread,
// under its state lock); it keeps no thread-local state between calls.
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn open(settings: &Settings) -> Result<Self, String> {
        let api = api()?;
        let mut param = vec![0u64; PARAM_ROOM / 8];
        let p = param.as_mut_ptr().cast::<c_void>();
        let text = |s: &str| CString::new(s).map_err(|_| format!("{s:?} holds a NUL"));
        let (preset, tune) = (text(settings.preset)?, text(settings.tune)?);
        // SAFETY: `p` has room for an x264_param_t; the strings live across each call.
        unsafe {
            if (api.default_preset)(p, preset.as_ptr(), tune.as_ptr()) < 0 {
                return Err(format!("x264 has no preset {} or tune {}", settings.preset, settings.tune));
            }
            let head = &mut *p.cast::<ParamHead>();
            head.i_width = settings.width as c_int;
            head.i_height = settings.height as c_int;
            head.i_csp = settings.csp;
            for (name, value) in &settings.options {
                let (n, v) = (text(name)?, text(value)?);
                if (api.parse)(p, n.as_ptr(), v.as_ptr()) != 0 {
                    return Err(format!("x264 refused {name}={value}"));
                }
            }
            let handle = (api.open)(p);
            if handle.is_null() {
                return Err(format!("x264 could not open an encoder for {}x{}", settings.width, settings.height));
            }
            Ok(Self { api, handle, csp: settings.csp })
        }
    }

    /// Codes `picture`, or with `None` takes out a delayed one; returns a coded picture when one
    /// comes out.
    pub fn encode(&mut self, picture: Option<Picture<'_>>) -> Result<Option<Coded>, String> {
        let mut input = vec![0u64; PICTURE_ROOM / 8];
        let mut output = vec![0u64; PICTURE_ROOM / 8];
        let (pin, pout) = (input.as_mut_ptr().cast::<c_void>(), output.as_mut_ptr().cast::<c_void>());
        let mut nals: *mut Nal = std::ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: both pictures have room for an x264_picture_t and are initialised by x264;
        // the planes and offsets outlive the call, which reads them only during it (x264 copies
        // the pixels and applies the offsets as it takes the picture in).
        let size = unsafe {
            (self.api.picture_init)(pin);
            (self.api.picture_init)(pout);
            let has_input = picture.is_some();
            if let Some(picture) = picture {
                let head = &mut *pin.cast::<PictureHead>();
                head.i_pts = picture.number;
                if picture.keyframe {
                    head.i_type = TYPE_IDR;
                }
                head.img.i_csp = self.csp;
                head.img.i_plane = 3;
                for (i, (plane, stride)) in picture.planes.iter().enumerate() {
                    head.img.i_stride[i] = *stride as c_int;
                    head.img.plane[i] = plane.as_ptr().cast_mut();
                }
                if let Some(offsets) = picture.offsets {
                    head.prop.quant_offsets = offsets.as_mut_ptr();
                }
            }
            (self.api.encode)(self.handle, &mut nals, &mut count, if has_input { pin } else { std::ptr::null_mut() }, pout)
        };
        if size < 0 {
            return Err("x264 failed to code a picture".into());
        }
        if size == 0 || nals.is_null() {
            return Ok(None);
        }
        // SAFETY: x264 returned `count` NAL units whose payloads lie one after the other, `size`
        // bytes from the first; they stay valid until the next call.
        let (data, head) =
            unsafe { (std::slice::from_raw_parts((*nals).p_payload, size as usize).to_vec(), &*pout.cast::<PictureHead>()) };
        Ok(Some(Coded { data, number: head.i_pts, dts: head.i_dts, keyframe: head.b_keyframe != 0 }))
    }

    /// How many pictures it still holds.
    pub fn delayed(&self) -> usize {
        // SAFETY: an open encoder.
        unsafe { (self.api.delayed)(self.handle).max(0) as usize }
    }

    /// The most pictures it can hold before a picture comes out: its latency, in pictures.
    pub fn maximum_delayed(&self) -> usize {
        // SAFETY: an open encoder.
        unsafe { (self.api.maximum_delayed)(self.handle).max(0) as usize }
    }

    /// Starts a new refresh of the picture by intra-coded columns (for an encoder opened with
    /// `intra-refresh`), where a keyframe would otherwise be forced.
    pub fn intra_refresh(&mut self) {
        // SAFETY: an open encoder; x264 takes the request for its next picture.
        unsafe { (self.api.intra_refresh)(self.handle) }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: opened by x264_encoder_open and closed once.
        unsafe { (self.api.close)(self.handle) }
    }
}
