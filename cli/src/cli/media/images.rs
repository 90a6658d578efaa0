//! Photos and folders of photos. SDN outputs carry their header and face squares in a PNG text
//! chunk or a JPEG comment so that the file alone (plus the password) restores.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use faceveil::finder::FaceFinder;
use faceveil::frame::rgb::RgbImage;
use faceveil::frame::{FrameMut, PixelFormat};
use faceveil::pipeline::{Anonymizer, Restorer};
use faceveil::stream::header::{FrameRecord, StreamHeader};
use faceveil::stream::imagemeta;
use image::{ImageDecoder, ImageEncoder, ImageFormat};
use serde::{Deserialize, Serialize};

use crate::cli::media::containers::{extension, photo_format, writes_container};
use crate::cli::media::input::{Picture, picture, same_file};
use crate::cli::progress;

#[derive(Serialize, Deserialize)]
struct Embedded {
    header: StreamHeader,
    record: FrameRecord,
}

/// A decoded photo: the pixels the detector and the model see, and what they do not touch: the
/// transparency, kept so that a cut-out comes back with its clear parts clear, the colour
/// profile, kept so that a wide-gamut photo (a phone's Display P3) is shown in its own colours,
/// and whether it was stored grey (an infrared camera's still, a scan), so that it is written
/// grey again where every face drawn on it is grey too.
struct Photo {
    rgb: RgbImage,
    alpha: Option<Vec<u8>>,
    icc: Option<Vec<u8>>,
    grey: bool,
}

/// Decodes a photo upright: a camera that stores its pixels sideways says so in the EXIF
/// orientation, and the detector and the model only know upright faces. The output is written
/// upright, without EXIF: its place (GPS), time and camera serial say who and where as much as a
/// face does, and an anonymized photo is meant to be shown. `bytes` are the file at `path`
/// ([`read`]), which is named in errors and whose extension is the first guess of its format.
fn load(path: &Path, bytes: &[u8]) -> Result<Photo> {
    let decode = || -> image::ImageResult<(image::DynamicImage, Option<Vec<u8>>)> {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes));
        if let Ok(format) = ImageFormat::from_path(path) {
            reader.set_format(format);
        }
        let mut decoder = reader.with_guessed_format()?.into_decoder()?;
        let orientation = decoder.orientation()?;
        let icc = decoder.icc_profile()?;
        let mut img = image::DynamicImage::from_decoder(decoder)?;
        img.apply_orientation(orientation);
        Ok((img, icc))
    };
    let (img, icc) = decode().map_err(|e| {
        // A layout the decoder lacks (a TIFF in subsampled YCbCr, as ffmpeg writes one) is no
        // fault of the file: say what to do about it.
        let unsupported = matches!(e, image::ImageError::Unsupported(_));
        let hint = if unsupported { " (convert it to 8-bit RGB PNG or JPEG first)" } else { "" };
        anyhow::Error::new(e).context(format!("cannot decode image {}{hint}", path.display()))
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let grey = !img.color().has_color();
    let (rgb, alpha) = if img.color().has_alpha() {
        let rgba = img.to_rgba8().into_raw();
        let rgb = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        (rgb, Some(rgba.chunks_exact(4).map(|p| p[3]).collect()))
    } else {
        // Taken over without a copy where the picture is 8-bit RGB already.
        (img.into_rgb8().into_raw(), None)
    };
    let rgb = RgbImage::from_raw(w, h, rgb).context("decoded image has an unexpected size")?;
    Ok(Photo { rgb, alpha, icc, grey })
}

fn output_format(path: &Path) -> Result<ImageFormat> {
    photo_format(path).with_context(|| {
        format!(
            "output {} must be a .png or .jpg file: the input is a photo, and their metadata carry its restore data",
            path.display()
        )
    })
}

/// Encodes, embeds `text` if given, and writes through a temporary file so that a failure
/// never leaves a half-written output. A PNG keeps the photo's transparency; a JPEG cannot hold
/// it. A photo stored grey is written grey where all its pixels still are (every mode draws grey
/// faces on a grey photo: the SDN through its grey face space), which loses nothing. The photo
/// is consumed: its pixels become the encoder's without a copy.
fn save(photo: Photo, path: &Path, text: Option<&str>) -> Result<()> {
    let format = output_format(path)?;
    let img = photo.rgb;
    let (w, h) = (img.width as u32, img.height as u32);
    let still_grey = photo.grey && img.data.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]);
    let buffer = match (format, &photo.alpha) {
        (ImageFormat::Png, Some(alpha)) if still_grey => {
            let la = img.data.chunks_exact(3).zip(alpha).flat_map(|(p, &a)| [p[0], a]).collect();
            image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::from_raw(w, h, la).expect("sizes match"))
        }
        _ if still_grey => {
            let luma = img.data.chunks_exact(3).map(|p| p[0]).collect();
            image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, luma).expect("sizes match"))
        }
        (ImageFormat::Png, Some(alpha)) => {
            let rgba = img.data.chunks_exact(3).zip(alpha).flat_map(|(p, &a)| [p[0], p[1], p[2], a]).collect();
            image::DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, rgba).expect("sizes match"))
        }
        _ => image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, img.data).expect("sizes match")),
    };
    let mut bytes = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
            if let Some(icc) = photo.icc {
                encoder.set_icc_profile(icc).context("the JPEG encoder cannot hold a colour profile")?;
            }
            buffer.write_with_encoder(encoder)?
        }
        _ => {
            let mut encoder = image::codecs::png::PngEncoder::new(&mut bytes);
            if let Some(icc) = photo.icc {
                encoder.set_icc_profile(icc).context("the PNG encoder cannot hold a colour profile")?;
            }
            buffer.write_with_encoder(encoder)?
        }
    }
    if let Some(text) = text {
        bytes = imagemeta::embed(&bytes, text)?;
    }
    write_atomically(path, &bytes)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display())));
    if written.is_err() {
        // A part of a photo is of no use, and on a full disk it holds the space the next one needs.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A photo's bytes, read once for both its pixels ([`load`]) and its metadata.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn frame_of(img: &mut RgbImage) -> FrameMut<'_> {
    let (w, h) = (img.width, img.height);
    FrameMut::packed(PixelFormat::Rgb, w, h, w * 3, &mut img.data).expect("a decoded image is a valid frame")
}

#[derive(Serialize)]
struct FileBoxes {
    file: String,
    faces: Vec<progress::BoxJson>,
}

/// Faces whose square is narrower than this (px) come back from a password restore only roughly:
/// under half the SDN's 128 px grid a square holds too few pixels for what the surrogate drew
/// there. Through the CLI from a PNG: 30.6 dB at 32-48 px, 24.5 dB under 32, 42-44 dB from 64 px
/// up (models/sdn/MODEL_CARD.md, "Small faces from a PNG"). Sealed faces come back exactly.
const ROUGH_RESTORE_SIDE: f32 = 64.0;

/// The note for `faces` small faces ([`ROUGH_RESTORE_SIDE`]) that only the password restores,
/// in `what` (a photo's name, or "the folder's photos").
fn rough_restore_note(faces: usize, what: &str) -> String {
    format!(
        "faceveil: note: {faces} face(s) of {what} are under {ROUGH_RESTORE_SIDE:.0} px: a password restore brings faces that small back only roughly (about 25-31 dB, against 42-45 for larger ones); --seal-password or --recipient seals them, and they come back exactly"
    )
}

/// The note of a restore that brought back `faces` small faces from their surrogates alone.
fn rough_restored_note(faces: usize, what: &str) -> String {
    format!(
        "faceveil: note: {faces} face(s) of {what} under {ROUGH_RESTORE_SIDE:.0} px had no seal that this restore opens (--identity, or the password they were sealed to) and came back from their surrogates only roughly (about 25-31 dB against the original)"
    )
}

/// The faces of `record` under [`ROUGH_RESTORE_SIDE`] that come back from their surrogates: those
/// with no seal, and the sealed ones too where `seals_open` is false (a restore given neither an
/// identity nor the password they were sealed to).
fn rough_faces(record: &FrameRecord, seals_open: bool) -> usize {
    record.faces.iter().filter(|f| (f.sealed.is_none() || !seals_open) && f.square[2] < ROUGH_RESTORE_SIDE).count()
}

fn anonymize_one(path: &Path, output: &Path, finder: &mut FaceFinder, anonymizer: &mut Anonymizer) -> Result<Anonymized> {
    ensure!(!same_file(path, output), "refusing to overwrite the input {}", path.display());
    let bytes = read(path)?;
    let was_output = imagemeta::extract(&bytes).is_some();
    let mut photo = load(path, &bytes)?;
    let mut frame = frame_of(&mut photo.rgb);
    let tracks = finder.find_in_photo(&frame)?.to_vec();
    let outcome = anonymizer.process(&mut frame, &tracks, None)?;
    // The record rides in the photo it describes: it has no need of the picture's look.
    let record = FrameRecord { look: None, ..outcome.record.clone() };
    let text = anonymizer.header().map(|h| serde_json::to_string(&Embedded { header: h.clone(), record })).transpose()?;
    save(photo, output, text.as_deref())?;
    // Only the password restores a face that is not sealed, where one restores at all; a sealed
    // one comes back exactly to whoever opens its seal.
    let password_restores = anonymizer.header().is_some_and(|h| h.no_password_restores().is_none());
    let rough = if password_restores { rough_faces(&outcome.record, true) } else { 0 };
    Ok(Anonymized { faces: outcome.tracks.iter().map(progress::BoxJson::from).collect(), was_output, rough })
}

/// What [`anonymize_one`] did to a photo.
struct Anonymized {
    faces: Vec<progress::BoxJson>,
    /// The photo carried faceveil's data: it was an anonymized output already.
    was_output: bool,
    /// Its faces that a password restore brings back only roughly ([`ROUGH_RESTORE_SIDE`]).
    rough: usize,
}

pub fn anonymize_file(
    path: &Path,
    output: &Path,
    finder: &mut FaceFinder,
    anonymizer: &mut Anonymizer,
    boxes: Option<&Path>,
) -> Result<()> {
    let Anonymized { faces, was_output, rough } = anonymize_one(path, output, finder, anonymizer)?;
    eprintln!("{}: {} face(s) anonymized -> {}", path.display(), faces.len(), output.display());
    if rough > 0 {
        eprintln!("{}", rough_restore_note(rough, &path.display().to_string()));
    }
    if was_output {
        // Its restore data is replaced by the new output's, so the two restores no longer chain.
        eprintln!(
            "faceveil: note: {} was already an anonymized output: {} restores to it, and only {} itself to the original",
            path.display(),
            output.display(),
            path.display()
        );
    }
    if let Some(b) = boxes {
        let all = vec![FileBoxes { file: path.display().to_string(), faces }];
        write_atomically(b, serde_json::to_string_pretty(&all)?.as_bytes())?;
    }
    Ok(())
}

/// The files of a folder run, each in name order, and where they are written.
pub struct Folder {
    dir: PathBuf,
    out: PathBuf,
    photos: Vec<PathBuf>,
    videos: Vec<PathBuf>,
}

/// Video files a folder run takes by their extension (a video's first bytes say less than a
/// photo's); the sidecars faceveil writes beside videos are theirs, not files of their own.
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "mkv", "webm", "avi", "ts", "m2ts", "mts", "mpg", "mpeg", "3gp", "flv"];

/// The videos of `dir` (not of its subfolders), by their extension, in the order of their names.
pub fn videos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut videos = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read the folder {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot read the folder {}", dir.display()))?.path();
        if path.is_file() && VIDEO_EXTENSIONS.contains(&extension(&path).as_str()) {
            videos.push(path);
        }
    }
    videos.sort();
    Ok(videos)
}

impl Folder {
    /// The photos and videos of `dir` (and of its subfolders, `recursive`), to be written into
    /// `out`. Other files are named on standard error: they are not written to the output
    /// folder, and a user who expects every file there should know which are missing.
    pub fn of(dir: &Path, out: &Path, recursive: bool) -> Result<Self> {
        ensure!(
            !same_file(dir, out),
            "refusing to write into the input folder {}: the outputs would replace the files they come from",
            dir.display()
        );
        let (mut paths, mut folders) = (Vec::new(), Vec::new());
        list(dir, out, recursive, &mut paths, &mut folders)?;
        skipped(
            &folders,
            "subfolder(s): a folder run takes the files of the folder it is given (--recursive: and of its subfolders)",
        );
        let (mut photos, mut videos, mut animated, mut heif, mut others) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in paths {
            match picture(&p) {
                Some(Picture::Still(_)) => photos.push(p),
                Some(Picture::Animated(_)) => animated.push(p),
                Some(Picture::Heif) => heif.push(p),
                None if VIDEO_EXTENSIONS.contains(&extension(&p).as_str()) => videos.push(p),
                None if extension(&p) == "faceveil" => {}
                None => others.push(p),
            }
        }
        skipped(&others, "file(s) not a photo (PNG, JPEG, WebP, TIFF, BMP or GIF) or a video");
        skipped(&animated, "file(s) animated, a video: anonymize it on its own to a video file (-o NAME.mp4)");
        skipped(&heif, "file(s) HEIF (HEIC or AVIF), which faceveil cannot read: convert them to JPEG or PNG first");
        ensure!(!photos.is_empty() || !videos.is_empty(), "no photos or videos in {}", dir.display());
        Ok(Self { dir: dir.to_path_buf(), out: out.to_path_buf(), photos, videos })
    }

    /// Where `file` (one of the folder's) is written under `name`: the subfolder of the output
    /// that matches its own, made if need be.
    fn target(&self, file: &Path, name: OsString) -> Result<PathBuf> {
        let within = file.parent().and_then(|p| p.strip_prefix(&self.dir).ok()).unwrap_or(Path::new(""));
        let folder = self.out.join(within);
        std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
        Ok(folder.join(name))
    }
}

/// The files of `dir` into `files` and, unless `recursive` takes them in too, its subfolders
/// into `folders`, each in name order. The output folder, where it lies inside, is not read,
/// nor are links to folders, which could lead back up.
fn list(dir: &Path, out: &Path, recursive: bool, files: &mut Vec<PathBuf>, folders: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<std::fs::DirEntry> =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let (path, kind) = (entry.path(), entry.file_type());
        if kind.as_ref().is_ok_and(|k| k.is_dir()) {
            if same_file(&path, out) {
                continue;
            }
            if recursive {
                list(&path, out, recursive, files, folders)?;
            } else {
                folders.push(path);
            }
        } else if path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Names on standard error what a folder run leaves out; `what` follows their count: what they
/// are, and why they are left out.
fn skipped(paths: &[PathBuf], what: &str) {
    if paths.is_empty() {
        return;
    }
    const NAMED: usize = 5;
    let names: Vec<String> = paths.iter().take(NAMED).map(|p| p.display().to_string()).collect();
    let more = paths.len().saturating_sub(NAMED);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    eprintln!("faceveil: skipped {} {what}: {}{more}", paths.len(), names.join(", "));
}

/// The name a video of a folder run is written under: its own where faceveil writes that
/// container (MP4, Matroska, MPEG-TS), else with `.mp4` added (`a.webm` -> `a.webm.mp4`).
fn video_output_name(path: &Path) -> OsString {
    let mut name = path.file_name().expect("listed files have names").to_owned();
    if !writes_container(path) {
        name.push(".mp4");
    }
    name
}

/// Runs `video` on each video of a folder run, writing into the output ([`video_output_name`]);
/// failures are reported and counted, and the rest still run.
fn each_video(folder: &Folder, video: &dyn Fn(&Path, &Path) -> Result<()>) -> usize {
    let mut failed = 0;
    for v in folder.videos.iter().take_while(|_| !crate::cli::stop::requested()) {
        if let Err(e) = folder.target(v, video_output_name(v)).and_then(|target| video(v, &target)) {
            failed += 1;
            eprintln!("{}: {e:#}", v.display());
        }
    }
    failed
}

/// The name a photo of a folder run is written under: its own where it is a .png or .jpg, whose
/// metadata carry the restore data; else with `.png` added (`a.webp.png`), which keeps every
/// pixel and the name it had.
fn output_name(path: &Path) -> OsString {
    let mut name = path.file_name().expect("listed files have names").to_owned();
    if photo_format(path).is_none() {
        name.push(".png");
    }
    name
}

/// Every photo of `folder` into its output, under its own name ([`output_name`]) in the matching
/// subfolder, then every video through `video` (the video front end, with the same settings). A file that fails is reported
/// and the rest still run; the exit status is an error if any failed. `boxes` lists the photos'
/// faces only.
pub fn anonymize_dir(
    folder: &Folder,
    finder: &mut FaceFinder,
    anonymizer: &mut Anonymizer,
    boxes: Option<&Path>,
    video: &dyn Fn(&Path, &Path) -> Result<()>,
) -> Result<()> {
    let (files, out) = (&folder.photos, &folder.out);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let bar = progress::bar(files.len() as u64, "images");
    let (mut all, mut failed, mut rough) = (Vec::new(), 0, 0);
    for f in files.iter().take_while(|_| !crate::cli::stop::requested()) {
        match folder.target(f, output_name(f)).and_then(|target| anonymize_one(f, &target, finder, anonymizer)) {
            Ok(done) => {
                rough += done.rough;
                all.push(FileBoxes { file: f.display().to_string(), faces: done.faces });
            }
            Err(e) => {
                failed += 1;
                // Not bar.println, which says nothing where standard error is not a terminal.
                bar.suspend(|| eprintln!("{}: {e:#}", f.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish();
    if !files.is_empty() {
        eprintln!("{} of {} photos anonymized -> {}", all.len(), files.len(), out.display());
    }
    if rough > 0 {
        eprintln!("{}", rough_restore_note(rough, "the folder's photos"));
    }
    if let Some(b) = boxes {
        write_atomically(b, serde_json::to_string_pretty(&all)?.as_bytes())?;
    }
    if boxes.is_some() && !folder.videos.is_empty() {
        eprintln!("faceveil: note: --boxes-json lists the faces of the folder's photos, not of its videos");
    }
    failed += each_video(folder, video);
    stopped_or_failed(failed, files.len() + folder.videos.len())
}

/// The end of a folder run: an error where Ctrl-C or SIGTERM stopped it or any file failed.
fn stopped_or_failed(failed: usize, files: usize) -> Result<()> {
    ensure!(
        !crate::cli::stop::requested(),
        "stopped (Ctrl-C or SIGTERM) before the folder's end: the files done before it were written"
    );
    ensure!(failed == 0, "{failed} of {files} files failed");
    Ok(())
}

/// Restores one photo: how many faces, and how many of them only roughly ([`rough_faces`]).
fn restore_one(path: &Path, output: &Path, restorer: &dyn Fn(&StreamHeader) -> Result<Restorer>) -> Result<(usize, usize)> {
    ensure!(!same_file(path, output), "refusing to overwrite the input {}", path.display());
    let bytes = read(path)?;
    let (header, record) = embedded(path, &bytes)?;
    // A PNG holds the surrogate exactly; any other format (JPEG) went through a lossy codec.
    let lossy = image::guess_format(&bytes).map_or(true, |format| format != ImageFormat::Png);
    let mut r = restorer(&header)?.lossy_input(lossy);
    let mut photo = load(path, &bytes)?;
    let n = r.process_record(&mut frame_of(&mut photo.rgb), &record)?;
    save(photo, output, None)?;
    Ok((n, rough_faces(&record, r.opens_seals())))
}

/// The header (checked) and the record an anonymized photo's `bytes` carry in their metadata.
pub fn embedded(path: &Path, bytes: &[u8]) -> Result<(StreamHeader, FrameRecord)> {
    let text = imagemeta::extract(bytes).with_context(|| {
        format!("{} carries no faceveil data (not an sdn output, or its metadata was stripped)", path.display())
    })?;
    let embedded: Embedded = serde_json::from_str(&text).context("faceveil data in the image is damaged")?;
    Ok((StreamHeader::decode(&serde_json::to_string(&embedded.header)?)?, embedded.record))
}

pub fn restore_file(path: &Path, output: &Path, restorer: &dyn Fn(&StreamHeader) -> Result<Restorer>) -> Result<()> {
    let (n, rough) = restore_one(path, output, restorer)?;
    eprintln!("{}: {n} face(s) restored -> {}", path.display(), output.display());
    if rough > 0 {
        eprintln!("{}", rough_restored_note(rough, &path.display().to_string()));
    }
    Ok(())
}

/// Every photo of `folder` restored into its output under its own name in the matching
/// subfolder, then every video through `video` (each with the sidecar beside it, where there is
/// one).
pub fn restore_dir(
    folder: &Folder,
    restorer: &dyn Fn(&StreamHeader) -> Result<Restorer>,
    video: &dyn Fn(&Path, &Path) -> Result<()>,
) -> Result<()> {
    let (files, out) = (&folder.photos, &folder.out);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (mut restored, mut failed, mut rough) = (0, 0, 0);
    for f in files.iter().take_while(|_| !crate::cli::stop::requested()) {
        match folder.target(f, output_name(f)).and_then(|target| restore_one(f, &target, restorer)) {
            Ok((_, small)) => {
                restored += 1;
                rough += small;
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", f.display());
            }
        }
    }
    if !files.is_empty() {
        eprintln!("{restored} of {} photos restored -> {}", files.len(), out.display());
    }
    if rough > 0 {
        eprintln!("{}", rough_restored_note(rough, "the folder's photos"));
    }
    failed += each_video(folder, video);
    stopped_or_failed(failed, files.len() + folder.videos.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2 x 2 TIFF in YCbCr subsampled 2:2 (as ffmpeg writes a TIFF from a JPEG), which the
    /// decoder does not read.
    fn ycbcr_tiff() -> Vec<u8> {
        let entries: [(u16, u16, u32, u32); 10] = [
            (256, 3, 1, 2),           // width
            (257, 3, 1, 2),           // height
            (258, 3, 3, 134),         // bits per sample: at 134
            (259, 3, 1, 1),           // no compression
            (262, 3, 1, 6),           // YCbCr
            (273, 4, 1, 140),         // the strip: at 140
            (277, 3, 1, 3),           // samples per pixel
            (278, 3, 1, 2),           // rows per strip
            (279, 4, 1, 6),           // the strip's bytes: 4 Y, Cb, Cr
            (530, 3, 2, 0x0002_0002), // subsampling 2, 2
        ];
        let mut t = b"II*\0".to_vec();
        t.extend(8u32.to_le_bytes());
        t.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            t.extend(tag.to_le_bytes());
            t.extend(kind.to_le_bytes());
            t.extend(count.to_le_bytes());
            t.extend(value.to_le_bytes());
        }
        t.extend(0u32.to_le_bytes());
        assert_eq!(t.len(), 134);
        t.extend([8u16, 8, 8].iter().flat_map(|b| b.to_le_bytes()));
        t.extend([90, 100, 110, 120, 128, 128]);
        t
    }

    #[test]
    fn a_photo_in_a_layout_the_decoder_lacks_is_said_to_need_converting() {
        let dir = std::env::temp_dir().join(format!("faceveil-ycbcr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (tiff, broken) = (dir.join("ycbcr.tiff"), dir.join("broken.png"));
        std::fs::write(&tiff, ycbcr_tiff()).unwrap();
        std::fs::write(&broken, b"\x89PNG not the rest").unwrap();
        let said = |path: &Path| format!("{:#}", load(path, &read(path).unwrap()).err().expect("not decoded"));
        let e = said(&tiff);
        assert!(e.contains("ycbcr.tiff (convert it to 8-bit RGB PNG or JPEG first)"), "{e}");
        // A damaged file is not told to be converted.
        let e = said(&broken);
        assert!(e.contains("cannot decode image") && !e.contains("convert"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_that_fails_leaves_no_partial_file_behind() {
        let dir = std::env::temp_dir().join(format!("faceveil-atomic-{}", std::process::id()));
        // A folder that is not empty cannot be replaced by a file: the rename fails after the
        // whole partial file was written.
        let taken = dir.join("taken.jpg");
        std::fs::create_dir_all(taken.join("inside")).unwrap();
        let e = write_atomically(&taken, b"photo").expect_err("a folder is in the way");
        assert!(format!("{e:#}").contains("cannot write"), "{e:#}");
        assert!(!dir.join("taken.jpg.partial").exists(), "the partial file was left behind");
        write_atomically(&dir.join("free.jpg"), b"photo").unwrap();
        assert_eq!(std::fs::read(dir.join("free.jpg")).unwrap(), b"photo");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
