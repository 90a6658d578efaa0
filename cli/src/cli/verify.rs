//! `faceveil verify`: whether a signed output is its signer's and whole, without opening any
//! face (no identity, no password): the header's signature and every frame record's, read from
//! a photo's metadata or a video's own SEI (its sidecar where the SEI was lost, or where one is
//! named), whether the records' numbers run without a gap, and where the header promises it,
//! every coded picture's own signature (`faceveil::stream::pictures`), and whether the records
//! reach the stream's signed end (`faceveil::stream::end`), so that a recording cut short shows.
//! A folder's videos (the segments `faceveil serve` records) are checked as one recording, in the
//! order of their names.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use faceveil::secrets::Signer;
use faceveil::stream::end::{self, END_FILE_EXTENSION, EndCheck, StreamEnd};
use faceveil::stream::header::{FrameRecord, StreamHeader};
use faceveil::stream::signed::SignedRecords;
use faceveil::stream::{pictures, sidecar};

use gstfaceveil::outofband::CODED_AHEAD;
use gstfaceveil::streamdata::CodedPicture;

use crate::cli::args::VerifyArgs;
use crate::cli::media::input::{Input, StreamSource};
use crate::cli::media::{images, video};

pub fn run(args: &VerifyArgs) -> Result<()> {
    let required: Option<Signer> = args.signer.as_deref().map(str::parse).transpose()?;
    let revoked = crate::cli::sealing::revoked(&args.revoked)?;
    let mut tally = Tally { required, revoked, open_end: args.open_end, ..Tally::default() };
    match Input::parse(&args.input)? {
        Input::Image(path) => {
            tally.pictures = Pictures::Photo;
            let (header, record) = images::embedded(&path, &std::fs::read(&path)?)?;
            tally.header(&header)?;
            tally.record(&record);
        }
        Input::Stream(StreamSource::File(path)) => {
            match &args.sidecar {
                Some(file) => {
                    tally.pictures = Pictures::NotRead;
                    in_sidecar(file, &mut tally)?;
                }
                None => {
                    // The video's own SEI: a sidecar lists the records of frames cut from the video since.
                    in_stream(&path, &mut tally)?;
                    let beside = sidecar::path_for(&path);
                    if tally.header.is_none() && beside.exists() {
                        eprintln!(
                            "faceveil: note: the video carries no faceveil data of its own (its SEI was lost): the sidecar's records are checked, which do not show frames cut from the video"
                        );
                        tally = Tally {
                            required: tally.required,
                            revoked: tally.revoked,
                            open_end: tally.open_end,
                            pictures: Pictures::Lost,
                            ..Tally::default()
                        };
                        in_sidecar(&beside, &mut tally)?;
                    } else if beside.exists() {
                        // Its sidecar keeps the stream's end too, where the container keeps
                        // none (MPEG-TS).
                        tally.ends = Ends::Carried;
                        tally.found_ends.extend(sidecar::end_of(&beside)?);
                    }
                }
            }
            end_beside(&path, &mut tally)?;
        }
        Input::Directory(dir) => {
            ensure!(args.sidecar.is_none(), "--sidecar names one video's sidecar: a folder's videos are read from their own SEI");
            let videos = images::videos_in(&dir)?;
            ensure!(!videos.is_empty(), "{} holds no video files", dir.display());
            for (k, path) in (0..).zip(&videos) {
                // A writer killed (or a disk that filled) as it opened a segment leaves it with
                // no bytes: it holds no frame to check, and hides none.
                if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
                    eprintln!(
                        "faceveil: note: {} is empty (its writer stopped as it opened it): nothing in it to check",
                        path.display()
                    );
                    continue;
                }
                tally.file = path.file_name().map(|n| n.to_string_lossy().into_owned());
                tally.video = Some(k);
                let before = tally.payloads;
                in_stream(path, &mut tally)?;
                if tally.payloads == before {
                    tally.say("it carries no faceveil data: not a part of the signed recording, or re-encoded since");
                    tally.damaged += 1;
                }
            }
            tally.file = None;
            ends_in(&dir, &mut tally)?;
            println!("{} videos checked as one recording, in the order of their names", videos.len());
        }
        _ => bail!("verify reads a photo, a video file (with its sidecar, or its own SEI) or a folder of videos"),
    }
    tally.finish()
}

fn in_sidecar(file: &Path, tally: &mut Tally) -> Result<()> {
    let tail = sidecar::each_record(file, |header, record| {
        tally.header(header)?;
        tally.record(&record);
        Ok(())
    })?;
    tally.cut_line = tail.cut_line;
    tally.ends = Ends::Carried;
    tally.found_ends.extend(tail.end);
    Ok(())
}

/// The records as the video's SEI carries them, each checked under the header that last came,
/// and the coded pictures themselves where that header says they are signed.
fn in_stream(path: &Path, tally: &mut Tally) -> Result<()> {
    let mut failed = Ok(());
    // Each file keeps its own times: a folder's segments may each start at 0.
    tally.shift = None;
    let tags = video::each_payload_in_file(path, |picture| match &picture.payload {
        None => {
            tally.picture_without_data();
            true
        }
        Some(Err(e)) => {
            tally.picture_data_unreadable(&e.to_string());
            true
        }
        Some(Ok(payload)) => {
            tally.payloads += 1;
            if let Some(header) = &payload.header {
                failed = tally.header(header);
            }
            if let Some(record) = &payload.record {
                tally.record(record);
                tally.picture(record.frame, &picture);
                tally.shown(record, picture.pts);
            }
            failed.is_ok()
        }
    })?;
    // MP4 and Matroska keep the stream's end in their faceveil comment tag: one without it was
    // cut short, or had its tags stripped.
    if tags.keeps_tags {
        tally.ends = Ends::Carried;
    }
    tally.found_ends.extend(tags.end);
    failed
}

/// The stream ends `faceveil serve` kept beside a folder's segments, which keep none.
fn ends_in(dir: &Path, tally: &mut Tally) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != END_FILE_EXTENSION) {
            continue;
        }
        end_file(&path, tally)?;
    }
    Ok(())
}

/// The end `faceveil anonymize` keeps beside a signed video while it writes it, where there is
/// one: a writer killed before it ended the stream left its newest checkpoint there. A video
/// still named as it was being written (`NAME.partial`) has it beside its final name.
fn end_beside(video: &Path, tally: &mut Tally) -> Result<()> {
    let written = video.to_str().and_then(|v| v.strip_suffix(".partial")).map(Path::new);
    for path in [Some(video), written].into_iter().flatten().map(end::file_beside) {
        if path.exists() {
            end_file(&path, tally)?;
        }
    }
    Ok(())
}

/// The end or checkpoint an end file holds, among those found.
fn end_file(path: &Path, tally: &mut Tally) -> Result<()> {
    match end::read_file(path).with_context(|| format!("cannot read {}", path.display()))? {
        Some(end) => tally.found_ends.push(end),
        None => {
            tally.damaged += 1;
            tally.say(&format!("{} does not hold a stream's end", path.display()));
        }
    }
    Ok(())
}

/// Says a finding on standard error, naming `file`, the video it was met in, where there is one.
fn say_in(file: Option<&str>, what: &str) {
    match file {
        Some(file) => eprintln!("faceveil: {file}: {what}"),
        None => eprintln!("faceveil: {what}"),
    }
}

/// Whether what was read can carry a stream's signed end.
#[derive(Default, PartialEq, Eq)]
enum Ends {
    /// A container that keeps no faceveil comment tag (MPEG-TS).
    #[default]
    NotCarried,
    /// A sidecar, or a container that keeps faceveil's comment tag (MP4, Matroska).
    Carried,
}

/// One stream of the recording, as a header starts it (a source that reconnected starts
/// another, numbered from 0 again).
struct Stream {
    /// Its header's digest, which its signed end is bound to, and whether the header promises
    /// that end.
    digest: [u8; 32],
    end_signed: bool,
    /// The numbers of its records checked: a video's SEI comes in coding order, so whether they
    /// run without a gap is asked of them sorted, at the end.
    numbers: Vec<u64>,
    /// How many of a folder's videos hold its records, and the last that did.
    videos: u32,
    last_video: Option<u32>,
}

/// Whether the coded pictures were checked.
#[derive(Default, PartialEq, Eq)]
enum Pictures {
    /// The video's own pictures, each against its signature where the header says they are signed.
    #[default]
    Read,
    /// Only a sidecar was asked about.
    NotRead,
    /// The video lost its SEI, and with it the pictures' signatures.
    Lost,
    /// A photo, whose pixels outside its sealed faces are not signed.
    Photo,
}

/// A coded picture found not as signed, or whose faceveil data does not read, held until it is
/// known whether more of its stream came after it: said then ([`Tally::held_said`]), or set
/// aside where a writer stopped within it ([`Tally::last_held`]).
struct Held {
    /// What is wrong with it, and whether it counts, once said, as unreadable (else as a picture
    /// not as signed).
    what: String,
    unreadable: bool,
    /// The lowest frame it can be: its record's, or where it has none readable, the frame
    /// [`CODED_AHEAD`] before the last record met (no picture is coded further ahead).
    earliest: u64,
    /// The video it came from, its stream, and whether it is still the last picture read of
    /// that video.
    file: Option<String>,
    stream: usize,
    last_of_video: bool,
}

/// What the check found so far.
#[derive(Default)]
struct Tally {
    required: Option<Signer>,
    /// Signers whose keys were revoked: an output of theirs is refused.
    revoked: Vec<Signer>,
    /// The header the records are checked under, and its check.
    header: Option<(StreamHeader, SignedRecords)>,
    /// Records met before any header (a stream's SEI joined midway).
    headless: u64,
    /// The streams met, with the numbers of their records checked.
    streams: Vec<Stream>,
    /// Faceveil payloads read from videos.
    payloads: u64,
    /// The video being read, where a folder's are: what is said names it, and its place.
    file: Option<String>,
    video: Option<u32>,
    unsigned: u64,
    damaged: u64,
    cut_line: Option<usize>,
    pictures: Pictures,
    /// Coded pictures checked against their signatures, and those that failed.
    pictures_checked: u64,
    pictures_failed: u64,
    /// The last of them, until it is said.
    held: Option<Held>,
    /// Whether the last picture of the recording was set aside as one its writer stopped within.
    last_set_aside: bool,
    /// The number of the last record met, to say where a picture without one sits.
    last_frame: Option<u64>,
    /// Whether the input can carry a stream's end, and the ends it carried.
    ends: Ends,
    found_ends: Vec<StreamEnd>,
    /// A recording without its signed end is accepted (`--open-end`).
    open_end: bool,
    /// When the container shows a picture less the time its signed record gives, as the first
    /// picture of this file and stream had it (ns): every picture should keep it.
    shift: Option<i128>,
    /// The frames shown at other times than their records say, and how far off (ns).
    moved: Vec<(u64, i128)>,
}

/// The segments a run of `faceveil serve` records before its end file surely holds a checkpoint:
/// it keeps one as its second segment closes (posted before the first closed) or its third.
const SEGMENTS_KEEPING_AN_END: u32 = 4;

/// How far a picture's time in the container may stray from its record's (ns): Matroska keeps
/// times to the millisecond.
const SHOWN_TOLERANCE_NS: i128 = 2_000_000;

impl Tally {
    /// A header met: the first, or a new one (a source that reconnected starts another stream).
    fn header(&mut self, header: &StreamHeader) -> Result<()> {
        if self.header.as_ref().is_some_and(|(known, _)| known == header) {
            return Ok(());
        }
        let Some(check) = SignedRecords::of(header, self.required.as_ref(), &self.revoked)? else {
            bail!("this output is not signed (it was made without --sign-with): there is nothing to verify");
        };
        if let Some((_, before)) = &self.header
            && before.signer() != check.signer()
        {
            bail!("the output's signer changes midway, from {} to {}", before.signer(), check.signer());
        }
        self.header = Some((header.clone(), check));
        self.shift = None;
        self.held_said(true);
        self.streams.push(Stream {
            digest: header.digest(),
            end_signed: header.end_signed,
            numbers: Vec::new(),
            videos: 0,
            last_video: None,
        });
        Ok(())
    }

    /// Says a finding on standard error, naming the video where a folder's are read.
    fn say(&self, what: &str) {
        say_in(self.file.as_deref(), what);
    }

    /// Whether the header the pictures are met under says that each is signed.
    fn signs_pictures(&self) -> bool {
        self.header.as_ref().is_some_and(|(header, _)| header.pictures_signed)
    }

    /// A coded picture with the record of `frame`, checked against its signature where the
    /// header says it carries one.
    fn picture(&mut self, frame: u64, picture: &CodedPicture<'_>) {
        let Some((header, check)) = &self.header else { return };
        if !header.pictures_signed {
            return;
        }
        let fault = picture.check(check.signer()).fault();
        self.picture_read();
        self.pictures_checked += 1;
        let Some(why) = fault else { return };
        self.hold(format!("frame {frame}: its coded picture {why}"), false, Some(frame));
    }

    /// A picture whose faceveil data does not read.
    fn picture_data_unreadable(&mut self, why: &str) {
        self.picture_read();
        self.hold(format!("a picture's faceveil data does not read: {why}"), true, None);
    }

    /// A picture at fault, of `frame` where its record says: said, and counted, once it is known
    /// what came after it.
    fn hold(&mut self, what: String, unreadable: bool, frame: Option<u64>) {
        // A picture still held is said first (none should be: the picture read before this one
        // said it, or a header ended its stream).
        self.held_said(false);
        let earliest = frame.unwrap_or_else(|| self.last_frame.map_or(0, |f| f.saturating_sub(CODED_AHEAD)));
        let stream = self.streams.len().saturating_sub(1);
        self.held = Some(Held { what, unreadable, earliest, file: self.file.clone(), stream, last_of_video: true });
    }

    /// Another picture read: a picture held is not the last of its video, and where this one is
    /// of its stream, not the last of that either.
    fn picture_read(&mut self) {
        let Some(held) = &mut self.held else { return };
        held.last_of_video = false;
        if held.stream + 1 == self.streams.len() {
            self.held_said(false);
        }
    }

    /// Says the picture held, now that it is known whether its stream `ended` after it. The
    /// last picture of a stream and of its video is where a writer that could write no further
    /// (a full disk, a file size limit) stops within a picture, and one cut short fails as an
    /// altered one does (its signature, or its faceveil data where the cut left the picture's
    /// bytes parsed as one without it): said, and still a fault, since the two look alike
    /// (but see [`Self::last_held`]).
    fn held_said(&mut self, ended: bool) {
        let Some(held) = self.held.take() else { return };
        if held.unreadable {
            self.damaged += 1;
        } else {
            self.pictures_failed += 1;
        }
        let at_end = if held.last_of_video && ended {
            let video = held.file.as_deref().unwrap_or("the video");
            format!(
                "; it is the last picture of its stream and of {video}, as a picture cut short by a writer that could write no further (a full disk, a file size limit) would be"
            )
        } else {
            String::new()
        };
        say_in(held.file.as_deref(), &format!("{}{at_end}", held.what));
    }

    /// The picture held when the whole recording has been read, the last of its last stream
    /// and video. Where that stream has no signed end and the picture lies past the newest
    /// checkpoint its writer signed (or it has none), it is where a writer killed or cut off
    /// within a picture (a crash, a power cut, a full disk) stops; the frames there are not
    /// proven anyway, since they could have been cut off unseen, and one altered there shows
    /// no more than one cut off would. It is set aside with a note, uncounted, and what is
    /// found whole is said without it. Anywhere else it is said and stays a fault.
    fn last_held(&mut self) {
        let Some((_, check)) = &self.header else { return self.held_said(true) };
        let Some(held) = self.held.as_ref().filter(|h| h.last_of_video && h.stream + 1 == self.streams.len()) else {
            return self.held_said(true);
        };
        let signed: Vec<&StreamEnd> = signed_by(&self.found_ends, check.signer(), &self.streams[held.stream].digest).collect();
        let checkpoint = signed.iter().map(|end| end.frames).max().unwrap_or(0);
        if signed.iter().any(|end| !end.open) || held.earliest < checkpoint {
            return self.held_said(true);
        }
        let held = self.held.take().expect("held, as checked above");
        let past = match checkpoint {
            0 => "which has no signed end or checkpoint".to_string(),
            frames => format!("past its newest checkpoint (frame {})", frames - 1),
        };
        say_in(
            held.file.as_deref(),
            &format!(
                "note: {}; it is the last picture of the recording, {past}, where a writer killed or cut off within a picture (a crash, a power cut, a full disk) stops: set aside as not proven, as no frame past a checkpoint is",
                held.what
            ),
        );
        self.last_set_aside = true;
    }

    /// A coded picture without faceveil data: where every picture is signed, one put in.
    fn picture_without_data(&mut self) {
        if !self.signs_pictures() {
            return;
        }
        self.picture_read();
        self.pictures_checked += 1;
        self.hold(pictures::without_data(self.last_frame), false, None);
    }

    fn record(&mut self, record: &FrameRecord) {
        self.last_frame = Some(record.frame);
        let Some((_, check)) = &self.header else {
            self.headless += 1;
            return;
        };
        if let Err(e) = check.verify(record) {
            self.say(&e.to_string());
            self.unsigned += 1;
        }
        let stream = self.streams.last_mut().expect("a header starts a stream");
        stream.numbers.push(record.frame);
        if let Some(video) = self.video.filter(|v| stream.last_video != Some(*v)) {
            stream.last_video = Some(video);
            stream.videos += 1;
        }
    }

    /// A picture with `record`, shown by the container at `pts`. The records' times are signed
    /// and the container's are not: a picture whose container time has moved against its
    /// record's by more than the first picture's did was moved (a pause put in, a stretch
    /// slowed down or sped up).
    fn shown(&mut self, record: &FrameRecord, pts: Option<u64>) {
        let (Some(signed), Some(shown)) = (record.pts, pts) else { return };
        let shift = i128::from(shown) - i128::from(signed);
        let first = *self.shift.get_or_insert(shift);
        if (shift - first).abs() > SHOWN_TOLERANCE_NS {
            self.moved.push((record.frame, shift - first));
        }
    }

    /// The frames shown at other times than recorded, said on standard error: how many.
    fn moved_said(&mut self) -> usize {
        self.moved.sort_unstable();
        if let (Some((first, _)), Some((last, _))) = (self.moved.first(), self.moved.last()) {
            let most = self.moved.iter().map(|(_, off)| off.abs()).max().unwrap_or(0) as f64 / 1e6;
            self.say(&format!(
                "{} pictures between frames {first} and {last} are shown at other times than they were recorded (up to {most:.0} ms off): the container's times were changed",
                self.moved.len()
            ));
        }
        self.moved.len()
    }

    /// Whether each stream's records reach its signed end, with their numbers sorted: the
    /// faults found (each said on standard error) and what to say of a recording found whole.
    /// A stream before the last one ended where its source reconnected, with no end signed.
    fn ends_reached(&self) -> (u64, Option<String>) {
        // A photo is one frame: nothing can be cut off its end.
        let Some((_, check)) = self.header.as_ref().filter(|_| self.pictures != Pictures::Photo) else { return (0, None) };
        let (mut faults, mut said, mut used) = (0, None, vec![false; self.found_ends.len()]);
        for (i, stream) in self.streams.iter().enumerate() {
            let last = stream.numbers.last().copied();
            // Its end, where it has one, else its furthest checkpoint (serve keeps a run's last
            // checkpoint until its end replaces it).
            let mut chosen: Option<(&StreamEnd, EndCheck)> = None;
            for (k, end) in self.found_ends.iter().enumerate() {
                let reached = end.check(check.signer(), &stream.digest, last);
                if reached != EndCheck::Unsigned {
                    used[k] = true;
                    if chosen.as_ref().is_none_or(|(c, _)| (!end.open, end.frames) > (!c.open, c.frames)) {
                        chosen = Some((end, reached));
                    }
                }
            }
            let reached_end = i + 1 == self.streams.len() && stream.end_signed;
            match chosen.map(|(end, reached)| (end.open, reached)) {
                Some((_, EndCheck::Whole)) => said = Some(format!("the records reach the recording's signed end ({} frames)", last.map_or(0, |l| l + 1))),
                Some((open, EndCheck::Cut { last, frames })) => {
                    faults += 1;
                    let first = last.map_or(0, |l| l + 1);
                    let signed = if open { "a checkpoint its writer signed while it recorded" } else { "its signed end" };
                    self.say(&format!("frames {first} to {} are missing at its end: the recording was cut short of {signed}", frames - 1));
                }
                Some((_, EndCheck::PastEnd { last, frames })) => {
                    faults += 1;
                    self.say(&format!("records up to frame {last} come after its signed end of {frames} frames"));
                }
                Some((_, EndCheck::Checkpoint { frames })) if reached_end => {
                    let what = format!(
                        "has no signed end, only a checkpoint its writer signed while it recorded: the records reach it (frame {}), and frames cut after it would not show",
                        frames.saturating_sub(1)
                    );
                    match self.ends {
                        Ends::Carried if !self.open_end => {
                            faults += 1;
                            self.say(&format!("the recording {what} (its writer was stopped before ending it, or it is still being written: --open-end accepts that)"));
                        }
                        _ => self.say(&format!("note: the recording {what}")),
                    }
                }
                Some((_, EndCheck::Checkpoint { .. })) => {}
                Some((_, EndCheck::Unsigned)) => unreachable!("left out above"),
                // serve keeps an end file for each run from its third segment on: a run in more
                // segments without one lost it.
                None if stream.videos >= SEGMENTS_KEEPING_AN_END && !self.open_end => {
                    faults += 1;
                    self.say(&format!(
                        "a stream recorded in {} of the folder's videos has no signed end or checkpoint beside them: serve keeps one from a run's third segment on, so it was deleted, or the folder is not serve's (--open-end accepts that)",
                        stream.videos
                    ));
                }
                None if !reached_end => {}
                None => match self.ends {
                    Ends::Carried if self.open_end => self.say("note: the recording has no signed end (accepted: --open-end): frames cut off its end would not show"),
                    Ends::Carried => {
                        faults += 1;
                        self.say("the recording has no signed end: it was cut short, or its writer was stopped before ending it (a crash, a kill, or a recording still being written: --open-end accepts that)");
                    }
                    Ends::NotCarried => self.say(
                        "note: the recording has no signed end, and its container keeps none (MPEG-TS keeps no comment tag; a sidecar does, and serve keeps one beside its segments): frames cut off its end would not show",
                    ),
                },
            }
        }
        for _ in used.iter().filter(|used| !**used) {
            faults += 1;
            self.say("a stream end that does not carry the signature of the recording's signer, or ends no stream of it");
        }
        (faults, said)
    }

    /// A writer stopped midway (a recording without a signed end) leaves its last pictures in
    /// coding order: a picture coded ahead of the frames before it (x264's B-frames) is written
    /// while they are still being coded, so frames just before the last written are missing; with
    /// B-pyramids, more than one run of them (pictures 84 and 82 written, 81 and 83 not). Where
    /// the last stream has no signed end, the records after the first of the gaps within
    /// [`CODED_AHEAD`] frames of its last record are set aside (said, and counted as records) and
    /// the stream taken to end before that gap: what its checkpoint, if any, and `--open-end` say
    /// of an end cut short then holds for it. Returns how many were set aside.
    fn coded_ahead(&mut self, signer: &Signer) -> usize {
        let Some(stream) = self.streams.last_mut() else { return 0 };
        let ended = signed_by(&self.found_ends, signer, &stream.digest).any(|end| !end.open);
        let Some(cut) = first_gap_coded_ahead(&stream.numbers).filter(|_| !ended) else { return 0 };
        let before = stream.numbers[cut];
        let ahead = stream.numbers.split_off(cut + 1);
        let missing: Vec<u64> =
            (before + 1..*ahead.last().unwrap_or(&before)).filter(|n| ahead.binary_search(n).is_err()).collect();
        self.say(&format!(
            "note: the recording has no signed end, and {} never came before its last pictures ({}), which were coded ahead: the recording stops among them (its writer stopped while it coded them, or a copy was cut there); it is taken to end at frame {before}",
            frame_list(&missing),
            frame_list(&ahead)
        ));
        ahead.len()
    }

    /// Says what was found; an error unless the output is whole and signed throughout.
    fn finish(mut self) -> Result<()> {
        self.last_held();
        let Some((_, check)) = &self.header else {
            bail!("no faceveil header found: not a faceveil output, or its data was stripped")
        };
        let whose = if self.required.is_some() { "the required signer" } else { "not compared with any: give --signer" };
        println!("signed by {} ({whose})", check.signer());
        let mut gaps = 0;
        for stream in &mut self.streams {
            stream.numbers.sort_unstable();
        }
        let signer = check.signer().clone();
        let ahead = self.coded_ahead(&signer);
        for stream in &mut self.streams {
            for pair in stream.numbers.windows(2) {
                let (before, this) = (pair[0], pair[1]);
                if this == before {
                    eprintln!("faceveil: frame {this} has two records");
                } else if this > before + 1 {
                    eprintln!("faceveil: frames {} to {} are missing before frame {this}", before + 1, this - 1);
                } else {
                    continue;
                }
                gaps += 1;
            }
        }
        let (end_faults, end_said) = self.ends_reached();
        let moved = self.moved_said();
        // A stream's records are numbered from 0: a recording whose first stream begins later
        // lost its start, or was recorded from a stream joined midway.
        if let Some(first) = self.streams.first().and_then(|s| s.numbers.first()).filter(|&&f| f > 0) {
            eprintln!(
                "faceveil: note: the recording begins at frame {first} of its stream: frames 0 to {} are not in it (cut off, or recorded from a stream joined midway)",
                first - 1
            );
        }
        if self.headless > 0 {
            eprintln!("faceveil: note: {} records came before the first header and were not checked", self.headless);
        }
        if let Some(line) = self.cut_line {
            eprintln!("faceveil: note: the sidecar ends in a line cut short (line {line}), where its writer stopped");
        }
        let records = self.streams.iter().map(|s| s.numbers.len()).sum::<usize>() + ahead;
        let spans: Vec<String> =
            self.streams.iter().filter_map(|s| Some(format!("{} to {}", s.numbers.first()?, s.numbers.last()?))).collect();
        // One stream's frames, or each stream's where a source reconnected and numbered anew.
        let frames = match spans.len() {
            0 | 1 => format!("frames {}", spans.first().map_or("none", String::as_str)),
            n => format!("frames {} ({n} streams: the source reconnected)", spans.join(", then ")),
        };
        let pictures_signed = self.signs_pictures();
        if self.unsigned + gaps + self.damaged + self.pictures_failed + end_faults + moved as u64 > 0 {
            let pictures = if pictures_signed {
                format!("; of {} coded pictures, {} not as signed", self.pictures_checked, self.pictures_failed)
            } else {
                String::new()
            };
            let end = if end_faults > 0 { "; it does not reach its signed end" } else { "" };
            let moved = if moved > 0 { format!("; {moved} pictures shown at other times than recorded") } else { String::new() };
            bail!(
                "the output is not whole as its signer made it: of {records} records ({frames}), {} without the signature, {gaps} gaps or repeats in their numbers, {} unreadable{pictures}{end}{moved}",
                self.unsigned,
                self.damaged
            );
        }
        let ahead = match ahead {
            0 => String::new(),
            n => format!(" and {n} coded ahead of frames that never came (set aside: see above)"),
        };
        println!("{records} frame records, {frames}{ahead}: every one signed, none missing");
        if let Some(said) = end_said {
            println!("{said}");
        }
        match (pictures_signed, self.pictures) {
            (false, Pictures::Photo) => println!("the photo's pixels outside its sealed faces are not signed"),
            (false, _) => println!(
                "its pictures are not signed (made before faceveil signed them, or without faceveilsei's signing-key): its records and sealed faces are, the rest of each picture is not"
            ),
            (true, Pictures::Read) => match self.last_set_aside {
                false => println!("{} coded pictures: every one as its signer coded it", self.pictures_checked),
                true => println!(
                    "{} coded pictures: {} as their signer coded them, and the last, which its writer stopped within, set aside (see above)",
                    self.pictures_checked,
                    self.pictures_checked - 1
                ),
            },
            (true, Pictures::NotRead | Pictures::Photo) => {
                println!("its pictures are signed in the video's SEI, which was not read: give the video alone to check them")
            }
            (true, Pictures::Lost) => bail!(
                "the video lost its SEI, and with it its pictures' signatures: its pictures are not the ones signed (re-encoded or rebuilt); the sidecar's records are whole"
            ),
        }
        Ok(())
    }
}

/// The ends and checkpoints among `ends` that carry `signer`'s signature for the stream whose
/// header has `digest`.
fn signed_by<'a>(ends: &'a [StreamEnd], signer: &'a Signer, digest: &'a [u8; 32]) -> impl Iterator<Item = &'a StreamEnd> {
    ends.iter().filter(|end| end.check(signer, digest, None) != EndCheck::Unsigned)
}

/// Where a stopped writer's pictures coded ahead begin, in a stream's sorted frame numbers: the
/// index of the record before the first gap that lies within [`CODED_AHEAD`] frames of the last
/// record (x264 writes a picture only after every picture of a frame that many before it, so a
/// frame missing further back was not lost to the stop). None without such a gap.
fn first_gap_coded_ahead(numbers: &[u64]) -> Option<usize> {
    let &last = numbers.last()?;
    (0..numbers.len().saturating_sub(1))
        .rev()
        .take_while(|&i| numbers[i] + 1 + CODED_AHEAD >= last)
        .filter(|&i| numbers[i + 1] > numbers[i] + 1)
        .last()
}

/// Frame numbers (sorted) as they are said: "frame 7", "frames 7 to 9", "frames 3, 5 and 7 to 9".
fn frame_list(numbers: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == n => *last = n,
            _ => runs.push((n, n)),
        }
    }
    let said: Vec<String> = runs.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a} to {b}") }).collect();
    match said.split_last() {
        Some((only, [])) if numbers.len() == 1 => format!("frame {only}"),
        Some((only, [])) => format!("frames {only}"),
        Some((last, rest)) => format!("frames {} and {last}", rest.join(", ")),
        None => "no frame".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_writers_pictures_coded_ahead_begin_at_the_first_gap_near_the_end() {
        // x264 with B-pyramids, stopped after writing pictures 84 and 82: 81 and 83 never came.
        let pyramid: Vec<u64> = (0..=80).chain([82, 84]).collect();
        assert_eq!(first_gap_coded_ahead(&pyramid), Some(80));
        // One B-frame lost.
        let plain: Vec<u64> = (0..=82).chain([84]).collect();
        assert_eq!(first_gap_coded_ahead(&plain), Some(82));
        // A frame missing further back than a picture is ever coded ahead was not lost to the stop.
        let far: Vec<u64> = (0..=10).chain(12..=40).collect();
        assert_eq!(first_gap_coded_ahead(&far), None);
        assert_eq!(first_gap_coded_ahead(&(0..=40).collect::<Vec<_>>()), None);
        assert_eq!(first_gap_coded_ahead(&[]), None);
    }

    #[test]
    fn frame_numbers_are_said_as_runs() {
        assert_eq!(frame_list(&[83]), "frame 83");
        assert_eq!(frame_list(&[81, 82]), "frames 81 to 82");
        assert_eq!(frame_list(&[81, 83]), "frames 81 and 83");
        assert_eq!(frame_list(&[3, 5, 7, 8, 9]), "frames 3, 5 and 7 to 9");
    }
}
