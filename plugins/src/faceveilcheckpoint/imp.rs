//! faceveilcheckpoint: keeps a signed recording's newest checkpoint whose frames are all in the
//! file, in an end file beside it, so that `faceveil verify` finds a recording whose writer was
//! killed (a crash, a power cut, `kill -9`) cut short of it. A signed stream's end is written as
//! the stream ends; a writer killed midway leaves none, and a cut at the end of what it left
//! would not show. `faceveil` sends each checkpoint downstream once the frame
//! [`outofband::CODED_AHEAD`] after its last has left it, with that frame's running time; this
//! element, right before the file sink, writes the checkpoint into the end file once the sink
//! has written a buffer stamped at or past that time (muxers stamp what they write with their
//! input's running time; x264 may write a frame after pictures of later frames, never after that
//! one), and what makes it readable: Matroska and MPEG-TS are read as far as they are written,
//! but a fragmented MP4's pictures are read only through an index (a `moof`, the first a
//! `moov`): with `fragment-mode=first-moov-then-finalise` (the CLI's) mp4mux writes each
//! fragment's pictures before its index, in its default mode after it, so pictures count as
//! readable once an index written after them says so (in the default mode, a fragment late:
//! checked on GStreamer 1.22's files killed midway). It has the file sink write each
//! buffer through to the file, unbuffered, so a buffer that reaches the sink says that those
//! before it are in the file. When the stream ends (its end is then in the file), the end file
//! goes; a run stopped otherwise leaves it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use faceveil::stream::end::{self, StreamEnd};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use crate::outofband;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new("faceveilcheckpoint", gst::DebugColorFlags::empty(), Some("faceveil checkpoint keeper"))
});

#[derive(Default)]
struct Settings {
    /// The end file; beside the file sink's `location` where not given.
    location: Option<PathBuf>,
}

/// What the element keeps while it runs.
#[derive(Default)]
struct State {
    /// The end file.
    path: PathBuf,
    /// Checkpoints sent and not yet known to be all in the file, oldest first, each with the
    /// running time (ns) the file must reach.
    sent: VecDeque<(StreamEnd, u64)>,
    /// What the sink has written.
    sink: Sink,
    /// Whether the file is an MP4, readable only as far as the last index written.
    mp4: bool,
    /// Whether a failure to write the end file was said.
    warned: bool,
    /// Whether the file sink follows at once and writes each buffer through: what came before
    /// the stream's end is then in the file as the end reaches this element.
    writes_through: bool,
}

pub struct FaceVeilCheckpoint {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl FaceVeilCheckpoint {
    fn chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.reaches_sink([buffer.as_ref()]);
        self.srcpad.push(buffer)
    }

    fn chain_list(&self, list: gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.reaches_sink(list.iter());
        self.srcpad.push_list(list)
    }

    /// `buffers` go to the sink: each says that the one before it is written, and with it
    /// perhaps a checkpoint's frames.
    fn reaches_sink<'a>(&self, buffers: impl IntoIterator<Item = &'a gst::BufferRef>) {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else { return };
        let mut newest = None;
        for buffer in buffers {
            let readable = !state.mp4 || mp4_index(buffer);
            if let Some(written) = state.sink.take(buffer.dts_or_pts().map(|t| t.nseconds()), readable) {
                while state.sent.front().is_some_and(|(_, at)| *at <= written) {
                    newest = state.sent.pop_front().map(|(checkpoint, _)| checkpoint);
                }
            }
        }
        let Some(checkpoint) = newest else { return };
        gst::debug!(CAT, imp = self, "the file holds the frames of the checkpoint of {} frames", checkpoint.frames);
        if let Err(e) = end::write_file(&state.path, &checkpoint)
            && !std::mem::replace(&mut state.warned, true)
        {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ("the recording's newest signed checkpoint is not kept in {}: {e}", state.path.display())
            );
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(caps) => {
                let mp4 = caps.caps().structure(0).is_some_and(|s| s.name() == "video/quicktime");
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    state.mp4 = mp4;
                }
            }
            gst::EventView::CustomDownstreamOob(_) => {
                if let (Some(sent), Some(state)) = (outofband::checkpoint_of(&event), self.state.lock().unwrap().as_mut()) {
                    state.sent.push_back(sent);
                }
            }
            gst::EventView::Eos(_) => {
                // The file holds the stream's end with the rest: no checkpoint is needed. A sink
                // that writes through holds it already; an application may stop the pipeline as
                // soon as the sink says it ended, and the end event then comes back refused.
                let ended = self.state.lock().unwrap().as_mut().map(|state| {
                    state.sent.clear();
                    (state.path.clone(), state.writes_through)
                });
                let passed = gst::Pad::event_default(pad, Some(&*self.obj()), event);
                gst::debug!(CAT, imp = self, "the stream ended (the sink took its end: {passed})");
                if let Some((path, _)) = ended.filter(|(_, through)| passed || *through)
                    && let Err(e) = remove(&path)
                {
                    gst::element_imp_warning!(self, gst::ResourceError::Write, ("{e}"));
                }
                return passed;
            }
            _ => {}
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    /// Has the file sink linked after this element write each buffer through to its file, before
    /// it opens the file (a sink opens it as it starts, before the elements upstream of it).
    fn src_link(&self, peer: &gst::Pad) -> Result<gst::PadLinkSuccess, gst::PadLinkError> {
        if let Some(sink) = peer.parent_element().filter(|sink| sink.find_property("buffer-mode").is_some()) {
            sink.set_property_from_str("buffer-mode", "unbuffered");
        }
        Ok(gst::PadLinkSuccess)
    }

    /// The end file, as given or beside the file sink after this element; a warning where no
    /// file sink that writes through follows it at once.
    fn start(&self) -> Result<State, gst::ErrorMessage> {
        let given = self.settings.lock().unwrap().location.clone();
        let sink = self.srcpad.peer().and_then(|peer| peer.parent_element()).filter(|e| e.find_property("location").is_some());
        let unbuffered = |sink: &gst::Element| {
            sink.find_property("buffer-mode").is_some()
                && sink.property_value("buffer-mode").serialize().is_ok_and(|mode| mode == "unbuffered")
        };
        let writes_through = sink.as_ref().is_some_and(unbuffered);
        if !writes_through {
            gst::element_imp_warning!(
                self,
                gst::CoreError::Negotiation,
                [
                    "not linked straight to a file sink that writes each buffer through (a filesink linked before the pipeline starts): a checkpoint is kept once what follows has taken its frames, which may not yet be in the file"
                ]
            );
        }
        let beside =
            sink.and_then(|sink| sink.property::<Option<String>>("location")).map(|video| end::file_beside(Path::new(&video)));
        let path = given.or(beside).ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ["no end file: set location, or link a file sink with its location after this element"]
            )
        })?;
        remove(&path).map_err(|e| gst::error_msg!(gst::ResourceError::Write, ("{e}")))?;
        gst::info!(CAT, imp = self, "keeps the newest checkpoint in {}", path.display());
        Ok(State { path, writes_through, ..State::default() })
    }
}

/// What a file sink has written, in the running time its buffers are stamped with (ns).
#[derive(Default)]
struct Sink {
    /// The latest time of what is written and readable.
    readable: Option<u64>,
    /// The latest time of what it was given, and whether the last buffer makes that readable.
    given: Option<u64>,
    last_makes_readable: bool,
}

impl Sink {
    /// Takes in the next buffer, stamped `stamped`, which makes what came before it readable or
    /// not; what is now written and readable.
    fn take(&mut self, stamped: Option<u64>, makes_readable: bool) -> Option<u64> {
        if self.last_makes_readable {
            self.readable = self.given;
        }
        self.given = self.given.max(stamped);
        self.last_makes_readable = makes_readable;
        self.readable
    }
}

/// Whether `buffer` is an MP4 index: a `moov` or `moof` box.
fn mp4_index(buffer: &gst::BufferRef) -> bool {
    let mut kind = [0; 8];
    buffer.size() >= kind.len() && buffer.copy_to_slice(0, &mut kind).is_ok() && matches!(&kind[4..], b"moov" | b"moof")
}

fn remove(path: &Path) -> Result<(), String> {
    end::remove_file(path).map_err(|e| format!("cannot delete {}: {e}", path.display()))
}

#[glib::object_subclass]
impl ObjectSubclass for FaceVeilCheckpoint {
    const NAME: &'static str = "GstFaceVeilCheckpoint";
    type Type = super::FaceVeilCheckpoint;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").expect("a sink template"))
            .chain_function(|_, parent, buffer| {
                FaceVeilCheckpoint::catch_panic_pad_function(parent, || Err(gst::FlowError::Error), |this| this.chain(buffer))
            })
            .chain_list_function(|_, parent, list| {
                FaceVeilCheckpoint::catch_panic_pad_function(parent, || Err(gst::FlowError::Error), |this| this.chain_list(list))
            })
            .event_function(|pad, parent, event| {
                FaceVeilCheckpoint::catch_panic_pad_function(parent, || false, |this| this.sink_event(pad, event))
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION | gst::PadFlags::PROXY_SCHEDULING)
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").expect("a src template"))
            .link_function(|_, parent, peer| {
                FaceVeilCheckpoint::catch_panic_pad_function(
                    parent,
                    || Err(gst::PadLinkError::Refused),
                    |this| this.src_link(peer),
                )
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_SCHEDULING)
            .build();
        Self { sinkpad, srcpad, settings: Mutex::default(), state: Mutex::default() }
    }
}

impl ObjectImpl for FaceVeilCheckpoint {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("End file")
                    .blurb("Where the newest checkpoint whose frames are all in the file is kept while the recording is written (faceveil verify reads it beside the video); by default beside the file sink's location, as VIDEO.faceveil-end")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "location" => {
                self.settings.lock().unwrap().location = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|t| !t.trim().is_empty())
                    .map(PathBuf::from)
            }
            name => unreachable!("faceveilcheckpoint has no property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "location" => self.settings.lock().unwrap().location.as_ref().map(|p| p.display().to_string()).to_value(),
            name => unreachable!("faceveilcheckpoint has no property {name}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("a new element takes its sink pad");
        obj.add_pad(&self.srcpad).expect("a new element takes its src pad");
    }
}

impl GstObjectImpl for FaceVeilCheckpoint {}

impl ElementImpl for FaceVeilCheckpoint {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "faceveil checkpoint keeper",
                "Generic",
                "Keeps a signed recording's newest checkpoint whose frames are all in the file, beside it, so that a recording whose writer was killed shows a cut before it (place it right before the file sink, after the muxer); the end file goes when the stream ends",
                "faceveil developers",
            )
        });
        Some(&*META)
    }

    fn change_state(&self, transition: gst::StateChange) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        // Before the file sink opens its file (it goes to PAUSED first), which takes its
        // buffering from then on.
        if transition == gst::StateChange::NullToReady {
            match self.start() {
                Ok(state) => *self.state.lock().unwrap() = Some(state),
                Err(e) => {
                    self.post_error_message(e);
                    return Err(gst::StateChangeError);
                }
            }
        }
        let changed = self.parent_change_state(transition)?;
        match transition {
            // The next stream is another file's.
            gst::StateChange::PausedToReady => {
                if let Some(state) = self.state.lock().unwrap().as_mut() {
                    (state.sent, state.sink) = Default::default();
                }
            }
            gst::StateChange::ReadyToNull => *self.state.lock().unwrap() = None,
            _ => {}
        }
        Ok(changed)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static T: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::new_any();
            vec![
                gst::PadTemplate::new("sink", gst::PadDirection::Sink, gst::PadPresence::Always, &caps).expect("sink template"),
                gst::PadTemplate::new("src", gst::PadDirection::Src, gst::PadPresence::Always, &caps).expect("src template"),
            ]
        });
        T.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_sink_has_written_counts_only_once_the_buffer_after_it_comes_and_an_mp4_only_to_its_last_index() {
        // Matroska, MPEG-TS: each buffer is readable once the next one comes.
        let mut sink = Sink::default();
        assert_eq!(sink.take(Some(10), true), None, "the first buffer is held, not written");
        assert_eq!(sink.take(None, true), Some(10));
        assert_eq!(sink.take(Some(30), true), Some(10), "an unstamped buffer moves nothing");
        assert_eq!(sink.take(Some(20), true), Some(30), "times only go forward");
        // A fragmented MP4 as the CLI writes it (first-moov-then-finalise): pictures, then their
        // index; they are readable only once the index after them is written.
        let mut sink = Sink::default();
        assert_eq!(sink.take(Some(10), false), None);
        assert_eq!(sink.take(Some(20), false), None, "pictures without their index");
        assert_eq!(sink.take(None, true), None, "the index itself is not written yet");
        assert_eq!(sink.take(Some(30), false), Some(20));
        assert_eq!(sink.take(Some(40), false), Some(20));
        // mp4mux's default fragment mode: each fragment's index, then its pictures; a fragment
        // counts once the next fragment's index is written.
        let mut sink = Sink::default();
        for (stamped, makes_readable) in [(None, true), (None, false), (Some(10), false), (Some(20), false)] {
            assert_eq!(sink.take(stamped, makes_readable), None, "the first fragment, its index before it");
        }
        assert_eq!(sink.take(None, true), None, "the next index is not written yet");
        assert_eq!(sink.take(None, false), Some(20), "the next index is written: the first fragment is whole");
        assert_eq!(sink.take(Some(30), false), Some(20));
    }

    #[test]
    fn an_mp4_index_is_told_by_its_box_and_a_short_buffer_is_none() {
        gst::init().unwrap();
        let boxed = |kind: &[u8]| gst::Buffer::from_slice([&[0, 0, 0, 16], kind, &[0; 8]].concat());
        assert!(mp4_index(&boxed(b"moof")) && mp4_index(&boxed(b"moov")));
        assert!(!mp4_index(&boxed(b"mdat")));
        assert!(!mp4_index(&gst::Buffer::from_slice([0u8, 0, 0, 8])), "4 bytes: no box type");
    }
}
