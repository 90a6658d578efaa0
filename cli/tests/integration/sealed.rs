//! Sealed restore: the original faces, sealed to recipients inside a photo or a video, come back
//! with an identity (bit-exact for photos and for videos sealed losslessly, at 45 dB or more
//! from a video's default face video), for any one recipient or only for a threshold of them
//! together; a stranger and a moved, reordered or spliced face are refused clearly. Faces sealed
//! to the password come back with it alone, and a wrong password is refused. A signed output
//! opens for its signer, and an output a forger sealed anew, or signed with another key, does not;
//! `faceveil verify` refuses a signed recording whose pictures were altered outside the faces,
//! that was cut short of its signed end, or whose pictures' times were changed.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{s, tmpdir};
use faceveil::stream::end;

fn faceveil(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_faceveil"));
    cmd.args(args)
        .env_remove("FACEVEIL_PASSWORD")
        .env_remove("FACEVEIL_IDENTITY_PASSPHRASE")
        .env_remove("FACEVEIL_SIGNING_PASSPHRASE");
    if let Some(p) = password {
        cmd.env("FACEVEIL_PASSWORD", p);
    }
    common::without_criticals(cmd.output().unwrap())
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn failed(o: &Output, says: &str) {
    assert!(!o.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(says), "expected '{says}' in: {err}");
}

/// The astronaut photo as a lossless PNG, so that "exact" can be checked pixel for pixel.
fn lossless_photo(dir: &Path) -> (PathBuf, image::RgbImage) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let img = common::open_image(&repo.join("samples/astronaut.jpg")).to_rgb8();
    let path = dir.join("in.png");
    img.save(&path).unwrap();
    (path, img)
}

fn pixels(path: &Path) -> image::RgbImage {
    common::open_image(path).to_rgb8()
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.age"));
    let recipient = ok(&faceveil(&["keygen", "-o", s(&file)], None));
    (file, recipient)
}

#[test]
fn a_sealed_photo_comes_back_exactly_for_either_recipient_and_not_for_a_stranger() {
    let dir = tmpdir("any");
    let (input, original) = lossless_photo(&dir);
    let ((a, ra), (b, rb), (stranger, _)) = (keygen(&dir, "a"), keygen(&dir, "b"), keygen(&dir, "c"));
    let recipients = dir.join("recipients.txt");
    std::fs::write(&recipients, format!("# the two investigators\n{rb}\n")).unwrap();
    let anon = dir.join("anon.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &ra, "--recipients-file", s(&recipients)], Some("pw")));
    let anonymized = pixels(&anon);
    let changed = anonymized.pixels().zip(original.pixels()).filter(|(p, q)| p != q).count();
    assert!(changed > 5000, "the face was anonymized ({changed} pixels changed)");

    for (who, id) in [("a", &a), ("b", &b)] {
        let out = dir.join(format!("restored-{who}.png"));
        ok(&faceveil(&["restore", s(&anon), "-o", s(&out), "--identity", s(id)], None));
        assert!(pixels(&out) == original, "{who}: the sealed face comes back bit-exact");
    }
    // The password alone restores the surrogate, and says where the sealed face is.
    let by_password = faceveil(&["restore", s(&anon), "-o", s(&dir.join("by-password.png"))], Some("pw"));
    ok(&by_password);
    assert!(String::from_utf8_lossy(&by_password.stderr).contains("--identity gives back the sealed originals"));
    // With the password too, sealed wins: still exact.
    let both = dir.join("restored-both.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&both), "--identity", s(&a)], Some("pw")));
    assert!(pixels(&both) == original);

    let out = dir.join("stranger.png");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&out), "--identity", s(&stranger)], None), "not a recipient");
    assert!(!out.exists(), "nothing is written for a stranger");
}

#[test]
fn a_photo_sealed_to_its_password_comes_back_exactly_with_it_alone_and_a_wrong_one_is_refused() {
    let dir = tmpdir("password");
    let (input, original) = lossless_photo(&dir);
    let anon = dir.join("anon.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--seal-password"], Some("right pw")));
    assert!(pixels(&anon) != original, "the face was anonymized");
    let back = dir.join("back.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&back)], Some("right pw")));
    assert!(pixels(&back) == original, "the sealed face comes back bit-exact with the password alone");
    let wrong = dir.join("wrong.png");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&wrong)], Some("wrong pw")), "not the password");
    assert!(!wrong.exists(), "nothing is written for a wrong password");
    // A password opens alone: it cannot stand beside a two-person rule.
    let (ra, rb) = (keygen(&dir, "a").1, keygen(&dir, "b").1);
    let two = dir.join("two.png");
    let args = ["anonymize", s(&input), "-o", s(&two), "--seal-password", "--recipient", &ra, "--recipient", &rb];
    failed(&faceveil(&[&args[..], &["--recipients-threshold", "2"]].concat(), Some("pw")), "threshold");
    assert!(!two.exists());
}

/// Sealed to recipients with no password, the anonymizing machine holds no secret: the
/// surrogates are keyed at random (another each run), the recipients get the faces back, and a
/// password restore is refused rather than drawing a third face from a key no one has.
#[test]
fn a_photo_sealed_to_recipients_with_no_password_is_keyed_at_random_and_opens_for_them_alone() {
    let dir = tmpdir("no-password");
    let (input, original) = lossless_photo(&dir);
    let (id, recipient) = keygen(&dir, "investigator");
    let [first, second] = ["first", "second"].map(|name| {
        let anon = dir.join(format!("{name}.png"));
        let made = faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &recipient], None);
        ok(&made);
        assert!(String::from_utf8_lossy(&made.stderr).contains("keyed at random"), "the user is told");
        assert_eq!(embedded(&anon)["header"]["keyed_at_random"], true, "the header says so");
        anon
    });
    let (a, b) = (pixels(&first), pixels(&second));
    assert!(a != original && b != original, "the face was anonymized");
    let differ = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
    assert!(differ > 5000, "each run draws its own key: {differ} pixels differ");

    let back = dir.join("back.png");
    ok(&faceveil(&["restore", s(&first), "-o", s(&back), "--identity", s(&id)], None));
    assert!(pixels(&back) == original, "the recipient gets the face back bit-exact");
    let guessed = dir.join("guessed.png");
    failed(&faceveil(&["restore", s(&first), "-o", s(&guessed)], Some("pw")), "no password restores them");
    assert!(!guessed.exists(), "nothing is written for a password");
    // Given none, it is said before a password is asked for.
    failed(&faceveil(&["restore", s(&first), "-o", s(&guessed)], None), "no password restores them");
    // A password given beside the identity is left unused.
    let both = dir.join("both.png");
    ok(&faceveil(&["restore", s(&first), "-o", s(&both), "--identity", s(&id)], Some("pw")));
    assert!(pixels(&both) == original);
    // Sealing to the password needs one.
    let to_password = dir.join("to-password.png");
    let args = ["anonymize", s(&input), "-o", s(&to_password), "--recipient", &recipient, "--seal-password"];
    failed(&faceveil(&args, None), "a password is required");
    assert!(!to_password.exists());
}

/// Blurred or pixelated for every viewer, the original faces sealed for investigators (as
/// surveillance systems keep a confidential copy): a one-way effect seals like the sdn mode,
/// its header naming the effect, and no password restores it.
#[test]
fn faces_blurred_or_pixelated_for_viewers_come_back_exactly_for_a_recipient() {
    let dir = tmpdir("one-way");
    let (input, original) = lossless_photo(&dir);
    let (id, recipient) = keygen(&dir, "investigator");
    let anon = dir.join("pixelated.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--mode", "pixelate", "--recipient", &recipient], None));
    assert!(pixels(&anon) != original, "the face was pixelated");
    assert_eq!(embedded(&anon)["header"]["effect"], "pixelate");
    let back = dir.join("back.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&back), "--identity", s(&id)], None));
    assert!(pixels(&back) == original, "the recipient gets the face back bit-exact");
    let guessed = dir.join("guessed.png");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&guessed)], Some("pw")), "one-way pixelate effect");
    assert!(!guessed.exists(), "nothing is written for a password");

    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let blurred = dir.join("blurred.mp4");
    let args = ["anonymize", s(&clip), "-o", s(&blurred), "--mode", "blur", "--recipient", &recipient, "--sealed-lossless"];
    ok(&faceveil(&args, None));
    let exact = dir.join("exact.mp4");
    ok(&faceveil(&["restore", s(&blurred), "-o", s(&exact), "--identity", s(&id), "--lossless"], None));
    failed(&faceveil(&["restore", s(&blurred), "-o", s(&dir.join("guessed.mp4"))], None), "one-way blur effect");
    let [original, blurred_frames, exact] = [&clip, &blurred, &exact].map(|p| common::media::decode(p).frames);
    assert!([&blurred_frames, &exact].iter().all(|v| v.len() == original.len()), "every frame is kept");
    let (w, h) = (original[0].width, original[0].height);
    let faces: Vec<_> =
        records(&blurred).into_iter().flat_map(|r| r.faces.into_iter().map(move |f| (r.frame as usize, f))).collect();
    assert!(faces.len() >= 150, "the clip's two faces in most frames: {}", faces.len());
    for (i, face) in &faces {
        let (x0, y0, x1, y1) = inside(face, w, h);
        assert!(common::mean_abs_diff(&blurred_frames[*i], &original[*i], x0, y0, x1, y1) > 1.0, "frame {i}: blurred");
        assert_eq!(common::mean_abs_diff(&exact[*i], &original[*i], x0, y0, x1, y1), 0.0, "frame {i}: bit-exact face");
    }
}

/// A JPEG's COM segment holds at most 64 KB, and a large face sealed bit-exact takes more: the
/// data continues in further segments and reads back whole.
#[test]
fn a_jpeg_whose_sealed_faces_outgrow_one_comment_carries_them_in_several() {
    let dir = tmpdir("jpeg-parts");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let small = common::open_image(&repo.join("samples/astronaut.jpg")).to_rgb8();
    let large = image::imageops::resize(&small, small.width() * 3, small.height() * 3, image::imageops::FilterType::Triangle);
    let input = dir.join("large.jpg");
    large.save(&input).unwrap();
    let original = pixels(&input);
    let (id, recipient) = keygen(&dir, "investigator");
    let anon = dir.join("anon.jpg");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &recipient], None));
    let bytes = std::fs::read(&anon).unwrap();
    let continued = bytes.windows(9).filter(|w| *w == b"faceveil+").count();
    assert!(continued >= 1, "the sealed face takes more than one comment ({} bytes)", bytes.len());
    let back = dir.join("back.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&back), "--identity", s(&id)], None));
    let restored = pixels(&back);
    let [cx, cy, side] = [0, 1, 2].map(|i| embedded(&anon)["record"]["faces"][0]["square"][i].as_f64().unwrap());
    let (x0, y0) = ((cx - side / 2.0).max(0.0) as u32 + 2, (cy - side / 2.0).max(0.0) as u32 + 2);
    let (x1, y1) = (((cx + side / 2.0) as u32).min(original.width()) - 2, ((cy + side / 2.0) as u32).min(original.height()) - 2);
    assert!(x1 - x0 > 200, "a large face: {x0}..{x1}");
    for y in y0..y1 {
        for x in x0..x1 {
            assert_eq!(restored.get_pixel(x, y), original.get_pixel(x, y), "({x}, {y}) inside the face comes back exactly");
        }
    }
}

#[test]
fn a_threshold_of_two_needs_both_identities() {
    let dir = tmpdir("threshold");
    let (input, original) = lossless_photo(&dir);
    let ((a, ra), (b, rb)) = (keygen(&dir, "a"), keygen(&dir, "b"));
    let anon = dir.join("anon.png");
    let args = ["anonymize", s(&input), "-o", s(&anon), "--recipient", &ra, "--recipient", &rb, "--recipients-threshold", "2"];
    ok(&faceveil(&args, Some("pw")));
    let one = dir.join("one.png");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&one), "--identity", s(&a)], None), "1 of the 2");
    assert!(!one.exists());
    let two = dir.join("two.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&two), "--identity", s(&a), "--identity", s(&b)], None));
    assert!(pixels(&two) == original);
}

#[test]
fn a_sealed_face_moved_in_its_record_does_not_open() {
    let dir = tmpdir("moved");
    let (input, _) = lossless_photo(&dir);
    let (a, ra) = keygen(&dir, "a");
    let anon = dir.join("anon.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &ra], Some("pw")));
    // Shift the recorded square by one pixel and embed the record again.
    let bytes = std::fs::read(&anon).unwrap();
    let text = faceveil::stream::imagemeta::extract(&bytes).unwrap();
    let mut data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cx = &mut data["record"]["faces"][0]["square"][0];
    *cx = serde_json::json!(cx.as_f64().unwrap() + 1.0);
    let moved = dir.join("moved.png");
    std::fs::write(&moved, faceveil::stream::imagemeta::embed(&bytes, &data.to_string()).unwrap()).unwrap();
    let out = dir.join("out.png");
    failed(&faceveil(&["restore", s(&moved), "-o", s(&out), "--identity", s(&a)], None), "frame 0, face 0");
    assert!(!out.exists());
}

fn signing_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.key"));
    let signer = ok(&faceveil(&["keygen", "--signing", "-o", s(&file)], None));
    assert!(signer.starts_with("faceveil-signer-"), "{signer}");
    (file, signer)
}

fn embedded(photo: &Path) -> serde_json::Value {
    serde_json::from_str(&faceveil::stream::imagemeta::extract(&std::fs::read(photo).unwrap()).unwrap()).unwrap()
}

#[test]
fn a_signed_photo_opens_for_its_signer_and_every_seal_a_forger_rebuilds_is_refused() {
    let dir = tmpdir("signed");
    let (input, original) = lossless_photo(&dir);
    let ((id, recipient), (camera, signer), (forger_key, forger)) =
        (keygen(&dir, "investigator"), signing_keygen(&dir, "camera"), signing_keygen(&dir, "forger"));
    let anon = dir.join("anon.png");
    let sign = ["--recipient", &recipient, "--sign-with", s(&camera)];
    ok(&faceveil(&[&["anonymize", s(&input), "-o", s(&anon)][..], &sign].concat(), Some("pw")));
    let out = dir.join("out.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&out), "--identity", s(&id), "--signer", &signer], None));
    assert!(pixels(&out) == original, "the signed, sealed face comes back bit-exact");
    // Without --signer the restore names who signed.
    let named = faceveil(&["restore", s(&anon), "-o", s(&dir.join("named.png")), "--identity", s(&id)], None);
    ok(&named);
    assert!(String::from_utf8_lossy(&named.stderr).contains(&format!("signed by {signer}")));

    // The forger has the recording and the investigator's public recipient, not the camera's
    // key. They plant another face (the original's, colours inverted) and seal it anew.
    let mut planted = original.clone();
    planted.pixels_mut().for_each(|p| p.0 = p.0.map(|v| 255 - v));
    let planted_in = dir.join("planted.png");
    planted.save(&planted_in).unwrap();
    let forged = dir.join("forged.png");
    ok(&faceveil(&["anonymize", s(&planted_in), "-o", s(&forged), "--recipient", &recipient], Some("other")));
    // Unchecked, the rebuilt seal opens: this is the attack the signature answers.
    let fooled = dir.join("fooled.png");
    ok(&faceveil(&["restore", s(&forged), "-o", s(&fooled), "--identity", s(&id)], None));
    assert!(pixels(&fooled) != original);
    let refused = |photo: &Path, says: &str| {
        let out = dir.join("refused.png");
        failed(&faceveil(&["restore", s(photo), "-o", s(&out), "--identity", s(&id), "--signer", &signer], None), says);
        assert!(!out.exists(), "nothing is written");
    };
    refused(&forged, "not signed");
    // Signed with the forger's own key.
    let theirs = dir.join("theirs.png");
    let sign = ["--recipient", &recipient, "--sign-with", s(&forger_key)];
    ok(&faceveil(&[&["anonymize", s(&planted_in), "-o", s(&theirs)][..], &sign].concat(), Some("other")));
    refused(&theirs, &format!("signed by {forger}"));
    // The genuine header, its signature kept, with the forger's envelope and sealed face: the
    // checksum mended as a forger would, the signature no longer verifies.
    let (genuine, planted_meta) = (embedded(&anon), embedded(&forged));
    let header: faceveil::stream::header::StreamHeader = serde_json::from_value(genuine["header"].clone()).unwrap();
    let envelope = serde_json::from_value(planted_meta["header"]["sealed"].clone()).unwrap();
    let spliced = serde_json::json!({"header": header.with_sealed(envelope), "record": planted_meta["record"]});
    let spliced_png = dir.join("spliced.png");
    let bytes = std::fs::read(&forged).unwrap();
    std::fs::write(&spliced_png, faceveil::stream::imagemeta::embed(&bytes, &spliced.to_string()).unwrap()).unwrap();
    refused(&spliced_png, "signature does not verify");

    // A recipient turned forger holds the content key: they seal the planted face under the
    // genuine signed header, at the genuine face's place, and embed it in the genuine record.
    let header = faceveil::stream::header::StreamHeader::decode(&genuine["header"].to_string()).unwrap();
    let mut record: faceveil::stream::header::FrameRecord = serde_json::from_value(genuine["record"].clone()).unwrap();
    let identity = faceveil::secrets::Identity::from_file(&id, || None).unwrap();
    let mut vault = faceveil::secrets::FaceVault::open(header.sealed.as_ref().unwrap(), &[identity], header.digest()).unwrap();
    let (w, h) = (planted.width() as usize, planted.height() as usize);
    let mut data = planted.into_raw();
    let frame = faceveil::frame::FrameMut::packed(faceveil::frame::PixelFormat::Rgb, w, h, w * 3, &mut data).unwrap();
    let face = &record.faces[0];
    let region = faceveil::faces::blend::CropContext::region(&frame, face.crop()).unwrap();
    let place = faceveil::secrets::FacePlace {
        frame: record.frame,
        pts: record.pts,
        index: 0,
        track: face.track,
        region: [region.x, region.y, region.width, region.height].map(|v| v as u32),
    };
    record.faces[0].sealed = Some(faceveil::stream::header::SealedFace(vault.seal(&frame, region, &place).unwrap()));
    let insider = dir.join("insider.png");
    let bytes = std::fs::read(&anon).unwrap();
    let resealed = serde_json::json!({"header": genuine["header"], "record": record});
    std::fs::write(&insider, faceveil::stream::imagemeta::embed(&bytes, &resealed.to_string()).unwrap()).unwrap();
    // The face opens under the content key, but the record no longer carries the camera's
    // signature: refused, with --signer and without.
    refused(&insider, "frame 0: its record does not carry the signature");
    let out = dir.join("insider-out.png");
    failed(&faceveil(&["restore", s(&insider), "-o", s(&out), "--identity", s(&id)], None), "does not carry the signature");
    assert!(!out.exists());
    // verify, with no identity, tells the genuine photo from the insider's.
    ok(&faceveil(&["verify", s(&anon), "--signer", &signer], None));
    failed(&faceveil(&["verify", s(&insider), "--signer", &signer], None), "frame 0: its record does not carry the signature");
}

/// A signing key that may have been copied is revoked by a file it signs itself: `verify` and
/// `restore` given it refuse what that key signed, whether or not they require its signer, and
/// a revocation altered to name another key, or made by another key, is refused as such.
#[test]
fn a_revoked_signing_key_vouches_for_nothing_it_signed() {
    let dir = tmpdir("revoked");
    let (input, original) = lossless_photo(&dir);
    let ((id, recipient), (camera, signer), (other, _)) =
        (keygen(&dir, "investigator"), signing_keygen(&dir, "camera"), signing_keygen(&dir, "other"));
    let revocation = dir.join("camera.revocation");
    let revoked = ok(&faceveil(&["keygen", "--revoke", s(&camera), "-o", s(&revocation)], None));
    assert_eq!(revoked, signer, "keygen --revoke prints the signer it revokes");
    let text = std::fs::read_to_string(&revocation).unwrap();
    assert!(!text.contains("FACEVEIL-SIGNING-KEY-"), "a revocation holds no secret");
    let other_revocation = dir.join("other.revocation");
    ok(&faceveil(&["keygen", "--revoke", s(&other), "-o", s(&other_revocation)], None));
    // Never overwritten, like a key.
    failed(&faceveil(&["keygen", "--revoke", s(&camera), "-o", s(&revocation)], None), "exists");

    let anon = dir.join("anon.png");
    ok(&faceveil(&["anonymize", s(&input), "-o", s(&anon), "--recipient", &recipient, "--sign-with", s(&camera)], Some("pw")));
    // Another key's revocation changes nothing.
    ok(&faceveil(&["verify", s(&anon), "--signer", &signer, "--revoked", s(&other_revocation)], None));
    let out = dir.join("out.png");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&out), "--identity", s(&id), "--revoked", s(&other_revocation)], None));
    assert!(pixels(&out) == original);
    // The camera's own: refused, with its signer required and without; nothing written.
    for required in [&["--signer", signer.as_str()][..], &[]] {
        let verify = [&["verify", s(&anon), "--revoked", s(&revocation)][..], required].concat();
        failed(&faceveil(&verify, None), "whose key was revoked");
        let out = dir.join("refused.png");
        let restore =
            [&["restore", s(&anon), "-o", s(&out), "--identity", s(&id), "--revoked", s(&revocation)][..], required].concat();
        failed(&faceveil(&restore, None), &format!("signed by {signer}, whose key was revoked"));
        assert!(!out.exists(), "nothing is written");
    }
    // A revocation whose key was swapped for another's no longer verifies; a key file is not one.
    let line = text.lines().find_map(|l| l.strip_prefix("FACEVEIL-REVOCATION-")).unwrap();
    let other_line = std::fs::read_to_string(&other_revocation).unwrap();
    let other_line = other_line.lines().find_map(|l| l.strip_prefix("FACEVEIL-REVOCATION-")).unwrap();
    let swapped = dir.join("swapped.revocation");
    std::fs::write(&swapped, format!("FACEVEIL-REVOCATION-{}{}\n", &other_line[..43], &line[43..])).unwrap();
    failed(&faceveil(&["verify", s(&anon), "--revoked", s(&swapped)], None), "not the revoked key's own");
    failed(&faceveil(&["verify", s(&anon), "--revoked", s(&camera)], None), "no FACEVEIL-REVOCATION- line");
}

/// The sealed faces' bytes (as the SEI carries them; the sidecar has them as base64).
fn sealed_bytes(records: &[faceveil::stream::header::FrameRecord]) -> usize {
    records.iter().map(|r| r.sealed_bytes() as usize).sum()
}

/// The frame records of `video`'s sidecar, without its header line and signed end.
fn records(video: &Path) -> Vec<faceveil::stream::header::FrameRecord> {
    let sidecar = std::fs::read_to_string(faceveil::stream::sidecar::path_for(video)).unwrap();
    // A signed stream's sidecar ends in its signed end, not a frame's record.
    let records = sidecar.lines().skip(1).filter(|l| faceveil::stream::end::StreamEnd::decode(l).is_none());
    records.map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A recorded face's square less 4 px at each edge (the RGB conversion of its edge also reads
/// chroma from outside the square), in a `w` x `h` frame.
fn inside(face: &faceveil::stream::header::FaceRecord, w: usize, h: usize) -> (usize, usize, usize, usize) {
    let b = face.crop().bounds();
    let clip_to = |v: f32, max: usize| (v.max(0.0) as usize).min(max);
    (clip_to(b.x0 + 4.0, w), clip_to(b.y0 + 4.0, h), clip_to(b.x1 - 4.0, w), clip_to(b.y1 - 4.0, h))
}

#[test]
fn a_sealed_video_comes_back_near_exact_by_default_bit_exact_sealed_losslessly_and_not_for_a_stranger() {
    let dir = tmpdir("video");
    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let (a, ra) = keygen(&dir, "a");
    let (b, rb) = keygen(&dir, "b");
    let (c, _) = keygen(&dir, "c");
    let (camera, signer) = signing_keygen(&dir, "camera");
    // The default: each track's faces as a small face video; its header signed.
    let anon = dir.join("anon.mp4");
    let sealed_to = ["--recipient", &ra, "--recipient", &rb, "--sign-with", s(&camera)];
    ok(&faceveil(&[&["anonymize", s(&clip), "-o", s(&anon)][..], &sealed_to].concat(), Some("pw")));
    let near = dir.join("near.mp4");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&near), "--identity", s(&b), "--signer", &signer], None));
    let refused = dir.join("refused.mp4");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&refused), "--identity", s(&c)], None), "not a recipient");
    assert!(!refused.exists(), "nothing is written for a stranger");
    // Its signing key revoked, the video is refused through faceunveil as the photo is.
    let revocation = dir.join("camera.revocation");
    ok(&faceveil(&["keygen", "--revoke", s(&camera), "-o", s(&revocation)], None));
    let restore = ["restore", s(&anon), "-o", s(&refused), "--identity", s(&b), "--revoked", s(&revocation)];
    failed(&faceveil(&restore, None), "whose key was revoked");
    assert!(!refused.exists(), "nothing is written for a revoked signer's video");
    // Sealed losslessly and restored losslessly: the original's bytes. Made with no password,
    // keyed at random (through the faceveil element): no password restores it.
    let anon_exact = dir.join("anon-exact.mp4");
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&anon_exact), "--recipient", &ra, "--sealed-lossless"], None));
    let exact = dir.join("exact.mp4");
    ok(&faceveil(&["restore", s(&anon_exact), "-o", s(&exact), "--identity", s(&a), "--lossless"], None));
    failed(&faceveil(&["restore", s(&anon_exact), "-o", s(&refused)], Some("pw")), "no password restores them");
    assert!(!refused.exists(), "nothing is written for a password");
    // That one is not signed: a restore that requires the camera's signature refuses it.
    failed(
        &faceveil(&["restore", s(&anon_exact), "-o", s(&refused), "--identity", s(&a), "--signer", &signer], None),
        "not signed",
    );
    assert!(!refused.exists());

    let [original, anonymized, near, exact] = [&clip, &anon, &near, &exact].map(|p| common::media::decode(p).frames);
    assert!([&anonymized, &near, &exact].iter().all(|v| v.len() == original.len()), "every frame is kept");
    let (w, h) = (original[0].width, original[0].height);
    let (video_records, exact_records) = (records(&anon), records(&anon_exact));
    let mut near_psnr = Vec::new();
    for record in &video_records {
        let i = record.frame as usize;
        for face in &record.faces {
            assert!(face.sealed.is_some(), "frame {i}: every face is sealed");
            let rect = [inside(face, w, h)];
            assert!(common::psnr_over(&anonymized[i], &original[i], &rect) < 30.0, "frame {i}: the face was anonymized");
            near_psnr.push(common::psnr_over(&near[i], &original[i], &rect));
        }
    }
    for record in &exact_records {
        let i = record.frame as usize;
        for face in &record.faces {
            let (x0, y0, x1, y1) = inside(face, w, h);
            assert_eq!(common::mean_abs_diff(&exact[i], &original[i], x0, y0, x1, y1), 0.0, "frame {i}: bit-exact face");
        }
    }
    let faces = near_psnr.len();
    let (mean, worst) = mean_and_worst(&near_psnr);
    let (video_bytes, lossless_bytes) = (sealed_bytes(&video_records), sealed_bytes(&exact_records));
    let anonymized_bytes = std::fs::metadata(&anon).unwrap().len() as usize - video_bytes;
    // The faces' own bytes, as the frames hold them (I420: a byte and a half a pixel).
    let raw_bytes: usize = exact_records
        .iter()
        .flat_map(|r| &r.faces)
        .map(|f| {
            let b = f.crop().bounds();
            let side = |lo: f32, hi: f32, max: usize| (hi.min(max as f32) - lo.max(0.0)).max(0.0) as usize;
            side(b.x0, b.x1, w) * side(b.y0, b.y1, h) * 3 / 2
        })
        .sum();
    eprintln!(
        "{faces} sealed faces; the default restore: {mean:.2} dB on average, {worst:.2} dB for the worst face; sealed {} KB \
         as video ({:.0}% of the anonymized video's other bytes), {} KB losslessly, of {} KB of faces",
        video_bytes / 1000,
        100.0 * video_bytes as f64 / anonymized_bytes as f64,
        lossless_bytes / 1000,
        raw_bytes / 1000
    );
    assert!(faces >= 150, "the clip's two faces in most frames: {faces}");
    assert!(mean >= 45.0 && worst >= 43.0, "the default restore keeps sealed faces near exact: {mean:.2} dB, worst {worst:.2}");
    assert!(video_bytes * 2 < lossless_bytes, "near exact is under half of exact: {video_bytes} against {lossless_bytes}");
    // Coded as a video, one face predicted from the last: each face alone (a PNG) took 2.5 times as much.
    assert!(lossless_bytes * 3 < raw_bytes, "exact faces ride as a video: {lossless_bytes} of {raw_bytes} bytes");
}

/// Sealed to the password, a video's faces come back from their face videos with the password
/// alone, past the x264 encode the anonymized video went through (the password restore of the
/// surrogates gives 28 to 30 dB there); a wrong password writes nothing.
#[test]
fn a_video_sealed_to_its_password_comes_back_near_exact_with_it_and_a_wrong_one_writes_nothing() {
    let dir = tmpdir("video-password");
    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let (anon, _, scores) = sealed_to_the_password_and_back(&dir, &clip, "default", &[]);
    let wrong = dir.join("wrong.mp4");
    failed(&faceveil(&["restore", s(&anon), "-o", s(&wrong)], Some("wrong pw")), "not the password");
    assert!(!wrong.exists(), "nothing is written for a wrong password");
    let (mean, worst) = mean_and_worst(&scores);
    eprintln!("{} faces sealed to the password: {mean:.2} dB on average, {worst:.2} dB for the worst", scores.len());
    assert!(scores.len() >= 150, "the clip's two faces in most frames: {}", scores.len());
    assert!(mean >= 45.0 && worst >= 43.0, "the password restore gives the sealed faces back: {mean:.2} dB, worst {worst:.2}");
}

/// `--sealed-quantizer` trades the sealed faces' quality for their size: at 25 (13 by default)
/// two_faces' sealed faces took 29% of the default's bytes and came back at 39.5 dB on average
/// (2026-12-06, scripts/sealed_size_psnr.py), under half the anonymized video. It goes only
/// with face videos (not lossless ones, not a photo's), and only where faces are sealed.
#[test]
fn a_coarser_sealed_quantizer_seals_smaller_faces_that_still_come_back() {
    let dir = tmpdir("video-quantizer");
    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let (_, fine_bytes, fine) = sealed_to_the_password_and_back(&dir, &clip, "fine", &[]);
    let (_, coarse_bytes, coarse) = sealed_to_the_password_and_back(&dir, &clip, "coarse", &["--sealed-quantizer", "25"]);
    let ((fine_mean, _), (coarse_mean, coarse_worst)) = (mean_and_worst(&fine), mean_and_worst(&coarse));
    eprintln!(
        "sealed at the default quantizer: {} KB, {fine_mean:.2} dB on average; at 25: {} KB, {coarse_mean:.2} dB, worst {coarse_worst:.2}",
        fine_bytes / 1000,
        coarse_bytes / 1000
    );
    assert_eq!(coarse.len(), fine.len(), "the same faces are sealed");
    assert!(coarse_bytes * 5 < fine_bytes * 2, "under two fifths of the default's bytes: {coarse_bytes} against {fine_bytes}");
    assert!(coarse_mean < fine_mean - 4.0, "coarser faces: {coarse_mean:.2} against {fine_mean:.2} dB");
    assert!(coarse_mean >= 37.0 && coarse_worst >= 33.0, "and still the faces: {coarse_mean:.2} dB, worst {coarse_worst:.2}");
    let out = dir.join("refused.mp4");
    let refuse = |extra: &[&str], why: &str| {
        failed(&faceveil(&[&["anonymize", s(&clip), "-o", s(&out)][..], extra].concat(), Some("pw")), why);
        assert!(!out.exists(), "nothing is written: {extra:?}");
    };
    refuse(&["--sealed-quantizer", "20"], "--sealed-quantizer needs --recipient");
    refuse(&["--seal-password", "--sealed-lossless", "--sealed-quantizer", "20"], "do not go together");
    refuse(&["--seal-password", "--sealed-quantizer", "52"], "52 is not in 1..=51");
    let photo = common::repo().join("samples/astronaut.jpg");
    let args = ["anonymize", s(&photo), "-o", s(&out), "--seal-password", "--sealed-quantizer", "20"];
    failed(&faceveil(&args, Some("pw")), "--sealed-quantizer is for videos: a photo's faces are sealed bit-exact");
    assert!(!out.exists(), "nothing is written for a photo either");
}

/// `clip` anonymized with its faces sealed to a password (and `extra`), then restored with it:
/// the anonymized video, its sealed bytes, and each restored face's PSNR against the original.
fn sealed_to_the_password_and_back(dir: &Path, clip: &Path, name: &str, extra: &[&str]) -> (PathBuf, usize, Vec<f64>) {
    let anon = dir.join(format!("{name}-anon.mp4"));
    let made = faceveil(&[&["anonymize", s(clip), "-o", s(&anon), "--seal-password"][..], extra].concat(), Some("right pw"));
    ok(&made);
    let back = dir.join(format!("{name}-back.mp4"));
    ok(&faceveil(&["restore", s(&anon), "-o", s(&back)], Some("right pw")));
    let [original, back] = [clip, &back].map(|p| common::media::decode(p).frames);
    assert_eq!(back.len(), original.len(), "every frame is kept");
    let (w, h) = (original[0].width, original[0].height);
    let records = records(&anon);
    let scores = records
        .iter()
        .flat_map(|r| r.faces.iter().map(move |f| (r.frame as usize, f)))
        .map(|(i, face)| {
            assert!(face.sealed.is_some(), "frame {i}: every face is sealed");
            common::psnr_over(&back[i], &original[i], &[inside(face, w, h)])
        })
        .collect();
    let sealed = sealed_bytes(&records);
    // The closing line says what sealing cost, against the whole video, as the sidecar counts it.
    let said = String::from_utf8_lossy(&made.stderr);
    let cost = format!(
        "({} KB, of which sealed faces {} KB;",
        std::fs::metadata(&anon).unwrap().len().div_ceil(1000),
        sealed.div_ceil(1000)
    );
    assert!(said.contains(&cost), "{cost} in: {said}");
    (anon, sealed, scores)
}

fn mean_and_worst(scores: &[f64]) -> (f64, f64) {
    (scores.iter().sum::<f64>() / scores.len() as f64, scores.iter().copied().fold(f64::INFINITY, f64::min))
}

/// The crowd's small faces are where the restored file's own encoding costs most: with x264
/// `veryfast` at CRF 2 they came back at 45.4 dB on average and 43.4 for the worst face, from
/// face videos a lossless restore gives back at 48.0 and 46.1.
///
/// The faces are blurred rather than given surrogates: each sdn run's salt gives other
/// surrogates around the seals, hence another restored file, and its worst face of 742 moved by
/// 0.7 dB from run to run (44.34 to 45.05 dB, 2026-12-07), across the bound; a blur gives the
/// same file each run, and the seals, what this measures, are the same either way.
#[test]
fn the_small_sealed_faces_of_a_crowd_keep_their_quality_in_the_restored_file() {
    let Some(clip) = common::shared("data/videos/05_crowd_mot20-08_960x366.mp4") else { return };
    let dir = tmpdir("crowd");
    let (identity, recipient) = keygen(&dir, "a");
    let anon = dir.join("anon.mp4");
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&anon), "--mode", "blur", "--recipient", &recipient], None));
    let back = dir.join("back.mp4");
    ok(&faceveil(&["restore", s(&anon), "-o", s(&back), "--identity", s(&identity)], None));
    let [original, back] = [&clip, &back].map(|p| common::media::decode(p).frames);
    let (w, h) = (original[0].width, original[0].height);
    let psnr: Vec<f64> = records(&anon)
        .iter()
        .flat_map(|r| r.faces.iter().map(move |f| (r.frame as usize, inside(f, w, h))))
        .filter(|&(_, (x0, y0, x1, y1))| x1 > x0 && y1 > y0)
        .map(|(i, rect)| common::psnr_over(&back[i], &original[i], &[rect]))
        .collect();
    let (mean, worst) = mean_and_worst(&psnr);
    eprintln!("{} sealed faces restored: {mean:.2} dB on average, {worst:.2} dB for the worst", psnr.len());
    assert!(psnr.len() >= 200, "the crowd's faces: {}", psnr.len());
    assert!(mean >= 46.5 && worst >= 44.5, "the restored file keeps what was sealed: {mean:.2} dB, worst {worst:.2}");
}

/// `faceveil bench --recipient` seals as `anonymize --recipient` does and says what sealing
/// cost, as a stage of its own; without a recipient nothing is sealed and that stage is empty.
#[test]
fn bench_times_sealing_as_a_stage_of_its_own() {
    let dir = tmpdir("bench-seal");
    let (_, recipient) = keygen(&dir, "a");
    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let seal_ms = |out: &str| -> f64 {
        let line = out.lines().find_map(|l| l.trim().strip_prefix("seal "));
        line.and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no seal stage in: {out}"))
    };
    let plain = ok(&faceveil(&["bench", s(&clip)], None));
    let sealed = ok(&faceveil(&["bench", s(&clip), "--recipient", &recipient], None));
    assert_eq!(seal_ms(&plain), 0.0, "nothing sealed without a recipient: {plain}");
    assert!(seal_ms(&sealed) > 0.0 && sealed.contains("sealed to 1 recipient"), "sealing timed: {sealed}");
    failed(&faceveil(&["bench", s(&clip), "--sealed-lossless"], None), "--sealed-lossless needs --recipient");
}

fn sidecar_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_reordered_or_spliced_sealed_video_face_fails_naming_its_frame() {
    let dir = tmpdir("video-tamper");
    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let (a, ra) = keygen(&dir, "a");
    let (anon, other) = (dir.join("anon.mp4"), dir.join("other.mp4"));
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&anon), "--recipient", &ra], Some("pw")));
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&other), "--recipient", &ra], Some("pw")));
    // The same video without its SEI (faceveil's UUID overwritten, pixels untouched), so that a
    // restore reads the records from a sidecar.
    let bytes = std::fs::read(&anon).unwrap();
    let uuid = faceveil::stream::SEI_UUID;
    let mut stripped = bytes.clone();
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(uuid.len()) {
        if bytes[i..i + uuid.len()] == uuid {
            stripped[i..i + uuid.len()].copy_from_slice(b"not-faceveil-sei");
            hits += 1;
        }
    }
    assert!(hits > 50, "the SEI rode on most frames ({hits})");
    let video = dir.join("no-sei.mp4");
    std::fs::write(&video, stripped).unwrap();
    let lines = sidecar_lines(&faceveil::stream::sidecar::path_for(&anon));
    let restore = |records: &[serde_json::Value], name: &str| {
        let sidecar = dir.join(format!("{name}.faceveil"));
        std::fs::write(&sidecar, records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
        let out = dir.join(format!("{name}.mkv"));
        let o = faceveil(&["restore", s(&video), "-o", s(&out), "--identity", s(&a), "--sidecar", s(&sidecar)], None);
        (o, out)
    };
    // Untouched, the sidecar alone restores, every face from its seal, as the closing line says.
    let (o, out) = restore(&lines, "intact");
    ok(&o);
    assert!(out.exists());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("100 frames restored") && said.contains("(200 faces from their seals)"), "{said}");
    // Frames 10 and 11 swap their sealed faces: each opens only in its own place.
    let mut swapped = lines.clone();
    let (ten, eleven) = (swapped[11]["faces"][0]["sealed"].clone(), swapped[12]["faces"][0]["sealed"].clone());
    assert_eq!(swapped[11]["frame"], 10);
    swapped[11]["faces"][0]["sealed"] = eleven;
    swapped[12]["faces"][0]["sealed"] = ten;
    let (o, out) = restore(&swapped, "swapped");
    failed(&o, "frame 10, face 0");
    assert!(!out.exists(), "nothing is written from a tampered stream");
    // A face from another recording of the same clip, for the same recipient, at the same place.
    let mut spliced = lines.clone();
    spliced[11]["faces"][0]["sealed"] =
        sidecar_lines(&faceveil::stream::sidecar::path_for(&other))[11]["faces"][0]["sealed"].clone();
    let (o, out) = restore(&spliced, "spliced");
    failed(&o, "frame 10, face 0");
    assert!(!out.exists());
    // Frame 10's sealed face dropped: nothing wrong is shown; the track's face stays anonymized
    // until its next keyframe, at the next header (frame 30), and the restore says so.
    let mut dropped = lines.clone();
    dropped[11]["faces"][0].as_object_mut().unwrap().remove("sealed");
    let (o, out) = restore(&dropped, "dropped");
    ok(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("frame 11") && said.contains("next keyframe"), "{said}");
    // Its 19 faces from frame 11 to 29 are counted as left, the others as opened.
    assert!(
        said.contains("(180 faces from their seals; 19 faces left anonymized until their face video's next keyframe)"),
        "{said}"
    );
    let [original, restored] = [&clip, &out].map(|p| common::media::decode(p).frames);
    let face = |i: usize| {
        let record: faceveil::stream::header::FrameRecord = serde_json::from_value(lines[i + 1].clone()).unwrap();
        let (w, h) = (original[i].width, original[i].height);
        common::psnr_over(&restored[i], &original[i], &[inside(&record.faces[0], w, h)])
    };
    assert!(face(9) > 40.0 && face(30) > 40.0, "before the gap and from the keyframe on, the face is back");
    assert!(face(10) < 30.0 && face(29) < 30.0, "from the gap to the keyframe, it stays anonymized");
}

/// two_faces_640x360.mp4 anonymized to `anon.mp4` in a fresh folder, its faces sealed to a fresh
/// identity and the output signed by a fresh camera key.
struct SignedClip {
    dir: common::TestDir,
    clip: PathBuf,
    id: PathBuf,
    recipient: String,
    camera: PathBuf,
    signer: String,
    anon: PathBuf,
}

fn signed_clip(name: &str) -> SignedClip {
    let dir = tmpdir(name);
    let clip = common::repo().join("samples/two_faces_640x360.mp4");
    let ((id, recipient), (camera, signer)) = (keygen(&dir, "a"), signing_keygen(&dir, "camera"));
    let anon = dir.join("anon.mp4");
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&anon), "--recipient", &recipient, "--sign-with", s(&camera)], Some("pw")));
    SignedClip { dir, clip, id, recipient, camera, signer, anon }
}

/// A signed recording with frames cut out of its middle (made again from its pictures, as an
/// editor exports it, its sidecar beside it): the restore says which frames are missing.
/// `faceveil verify`, with no identity, finds the recording whole from its SEI, and a sidecar
/// with records cut out or altered not.
#[test]
fn a_signed_recording_with_frames_cut_out_says_which_are_missing_and_verify_checks_it_whole() {
    let SignedClip { dir, clip, id, recipient, camera, signer, anon } = signed_clip("signed-cut");
    let sealed_to = ["--recipient", &recipient, "--sign-with", s(&camera)];
    let frames = common::media::decode(&anon).frames;
    let kept: Vec<_> = frames[..40].iter().chain(&frames[50..]).cloned().collect();
    let cut = dir.join("cut.mp4");
    common::media::encode(&kept, 30, &cut);
    std::fs::copy(faceveil::stream::sidecar::path_for(&anon), faceveil::stream::sidecar::path_for(&cut)).unwrap();
    let back = dir.join("back.mp4");
    let o = faceveil(&["restore", s(&cut), "-o", s(&back), "--identity", s(&id), "--signer", &signer], None);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("frames 40 to 49 of the signed recording are missing before its frame 50"), "{said}");
    assert_eq!(common::media::decode(&back).frames.len(), 90, "the frames there are, restored");
    // Encoded anew, the cut video lost its SEI and with it the pictures' signatures: its sidecar's
    // records are whole, but its pictures are not the ones signed.
    failed(&faceveil(&["verify", s(&cut)], None), "the video lost its SEI, and with it its pictures' signatures");

    // verify: the recording's own SEI, every record signed, none missing.
    let whole = ok(&faceveil(&["verify", s(&anon), "--signer", &signer], None));
    assert!(whole.contains("100 frame records, frames 0 to 99: every one signed, none missing"), "{whole}");
    assert!(whole.ends_with("100 coded pictures: every one as its signer coded it"), "{whole}");
    let sidecar = std::fs::read_to_string(faceveil::stream::sidecar::path_for(&anon)).unwrap();
    let lines: Vec<&str> = sidecar.lines().collect();
    // A sidecar with ten records cut out (line 0 is the header), and one with a square moved.
    let cut_sidecar = dir.join("cut.faceveil");
    std::fs::write(&cut_sidecar, [&lines[..41], &lines[51..]].concat().join("\n") + "\n").unwrap();
    failed(&faceveil(&["verify", s(&anon), "--sidecar", s(&cut_sidecar)], None), "frames 40 to 49 are missing before frame 50");
    // One without its first 30 records: whole from there, and said to begin late.
    let late_sidecar = dir.join("late.faceveil");
    std::fs::write(&late_sidecar, [&lines[..1], &lines[31..]].concat().join("\n") + "\n").unwrap();
    let late = faceveil(&["verify", s(&anon), "--sidecar", s(&late_sidecar)], None);
    assert!(ok(&late).contains("70 frame records, frames 30 to 99"));
    let said = String::from_utf8_lossy(&late.stderr);
    assert!(said.contains("the recording begins at frame 30 of its stream: frames 0 to 29 are not in it"), "{said}");
    let mut record: serde_json::Value = serde_json::from_str(lines[21]).unwrap();
    let cx = &mut record["faces"][0]["square"][0];
    *cx = serde_json::json!(cx.as_f64().unwrap() + 1.0);
    let mut moved: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    moved[21] = record.to_string();
    let moved_sidecar = dir.join("moved.faceveil");
    std::fs::write(&moved_sidecar, moved.join("\n") + "\n").unwrap();
    failed(
        &faceveil(&["verify", s(&anon), "--sidecar", s(&moved_sidecar)], None),
        "frame 20: its record does not carry the signature",
    );
    // A transport stream (what serve records), whose pads come before their caps.
    let ts = dir.join("anon.ts");
    ok(&faceveil(&[&["anonymize", s(&clip), "-o", s(&ts)][..], &sealed_to].concat(), Some("pw")));
    // MPEG-TS keeps no tag: the stream's end is its sidecar's, beside it.
    let whole = ok(&faceveil(&["verify", s(&ts), "--signer", &signer], None));
    assert!(whole.contains("the records reach the recording's signed end (100 frames)"), "{whole}");
    let short_ts = dir.join("short.ts");
    remux_cut(&ts, &short_ts, 80, true);
    let beside = faceveil::stream::sidecar::path_for;
    std::fs::copy(beside(&ts), beside(&short_ts)).unwrap();
    failed(&faceveil(&["verify", s(&short_ts)], None), "the recording was cut short of its signed end");
    std::fs::remove_file(beside(&ts)).unwrap();
    let whole = ok(&faceveil(&["verify", s(&ts), "--signer", &signer], None));
    assert!(whole.ends_with("100 coded pictures: every one as its signer coded it"), "{whole}");
    // Another signer required, and an unsigned recording.
    let (_, other) = signing_keygen(&dir, "other");
    failed(&faceveil(&["verify", s(&anon), "--signer", &other], None), "not by the required");
    let unsigned = dir.join("unsigned.mp4");
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&unsigned), "--recipient", &recipient], Some("pw")));
    failed(&faceveil(&["verify", s(&unsigned)], None), "this output is not signed");
}

/// The signed H.264 MP4 `input` remuxed to `output` through h264parse and mp4mux, each access
/// unit (in coding order, length-prefixed) passed through `edit`, as a forger who keeps the
/// faceveil data but changes pictures would.
fn remux_editing(input: &Path, output: &Path, edit: impl Fn(usize, Vec<u8>) -> Vec<u8> + Send + Sync + 'static) {
    use gst::prelude::*;
    remux(input, output, "", |pad| {
        let seen = std::sync::atomic::AtomicUsize::new(0);
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            if let Some(gst::PadProbeData::Buffer(buf)) = probe.data.as_mut() {
                let au = buf.map_readable().unwrap().to_vec();
                let mut out = gst::Buffer::from_mut_slice(edit(seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed), au));
                buf.copy_into(out.get_mut().unwrap(), gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::TIMESTAMPS, ..)
                    .unwrap();
                *buf = out;
            }
            gst::PadProbeReturn::Ok
        });
    });
}

/// The signed H.264 `input` remuxed to `output` with only its first `pictures` coded
/// pictures, as a forger who cuts a recording short would: with the container's tags, or
/// without them.
fn remux_cut(input: &Path, output: &Path, pictures: usize, keep_tags: bool) {
    use gst::prelude::*;
    remux(input, output, &format!("eos-after={pictures}"), |pad| {
        if !keep_tags {
            // Each tag event emptied rather than dropped: a dropped sticky event is offered
            // again before every buffer, and GStreamer 1.22 then unrefs a null event
            // (thousands of CRITICALs in the test's output).
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, probe| {
                if let Some(gst::PadProbeData::Event(e)) = probe.data.as_mut()
                    && e.type_() == gst::EventType::Tag
                {
                    *e = gst::event::Tag::new(gst::TagList::new());
                }
                gst::PadProbeReturn::Ok
            });
        }
    });
}

/// Remuxes the H.264 `input` to `output` through h264parse, an identity (with `identity`'s
/// properties) and the muxer of `output`'s kind (MP4, Matroska or MPEG-TS, by their names),
/// after `setup` was given the identity's source pad.
fn remux(input: &Path, output: &Path, identity: &str, setup: impl FnOnce(&gst::Pad)) {
    use gst::prelude::*;
    gst::init().unwrap();
    let kind = |path: &Path| {
        let name = path.to_string_lossy();
        ["mkv", "ts"].into_iter().find(|ext| name.contains(&format!(".{ext}"))).unwrap_or("mp4")
    };
    let demux = match kind(input) {
        "mkv" => "matroskademux",
        "ts" => "tsdemux",
        _ => "qtdemux",
    };
    let (format, mux) = match kind(output) {
        "mkv" => ("avc", "matroskamux"),
        "ts" => ("byte-stream", "mpegtsmux"),
        _ => ("avc", "mp4mux"),
    };
    let desc = format!(
        "filesrc location={} ! {demux} ! h264parse ! video/x-h264,stream-format={format},alignment=au ! identity name=edit {identity} \
         ! {mux} ! filesink location={}",
        input.display(),
        output.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap().downcast::<gst::Pipeline>().unwrap();
    setup(&pipeline.by_name("edit").unwrap().static_pad("src").unwrap());
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error])
        .expect("the remux ends within a minute");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "remux: {msg:?}");
}

/// Runs `faceveil ARGS -o OUT` (a signed anonymization) and kills it with SIGKILL once the end
/// file beside OUT holds a checkpoint of 60 frames: the file it left (`OUT.partial`), which
/// `verify --open-end` passes up to that checkpoint, and the checkpoint.
fn killed_at_a_checkpoint(args: &[&str], out: &Path, signer: &str) -> (PathBuf, end::StreamEnd) {
    use common::served::{log_text, spawn, wait_for};
    let log = out.with_extension("log");
    let mut writer = spawn(&[args, &["-o", s(out)]].concat(), &log);
    let kept = end::file_beside(out);
    let checkpoint = || end::read_file(&kept).ok().flatten();
    wait_for("a checkpoint of 60 frames beside the output", 120, || checkpoint().is_some_and(|c| c.frames >= 60));
    writer.0.kill().unwrap();
    writer.0.wait().unwrap();
    let (partial, checkpoint) = (PathBuf::from(format!("{}.partial", out.display())), checkpoint().unwrap());
    assert!(checkpoint.open && partial.exists(), "{}", log_text(&log));
    let o = faceveil(&["verify", s(&partial), "--signer", signer, "--open-end"], None);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("only a checkpoint its writer signed while it recorded: the records reach it"), "{said}");
    (partial, checkpoint)
}

/// A signed recording whose writer was killed midway (a crash, a power cut) has no signed end;
/// beside it the writer kept the newest checkpoint whose frames were all in the file, so
/// `faceveil verify --open-end` passes what it left and finds it cut short of that checkpoint.
#[test]
fn a_signed_recording_whose_writer_was_killed_keeps_beside_it_a_checkpoint_that_shows_a_cut_before_it() {
    use common::served::serve_clip;
    let dir = tmpdir("killed-signed");
    let ((_, recipient), (camera, signer)) = (keygen(&dir, "a"), signing_keygen(&dir, "camera"));
    let long = dir.join("long.mp4");
    common::media::moving_ball(&long, 900, 30);
    let (_server, url) = serve_clip(&long, &["--mode", "blur"], &dir);
    let signing = ["--recipient", recipient.as_str(), "--sign-with", s(&camera)];
    let (partial, checkpoint) =
        killed_at_a_checkpoint(&[&["anonymize", &url], &signing[..]].concat(), &dir.join("recorded.mkv"), &signer);
    failed(&faceveil(&["verify", s(&partial), "--signer", &signer], None), "has no signed end, only a checkpoint");
    // Cut 20 frames short of the checkpoint, its file beside it: found. Without it, the cut
    // would pass as what a killed writer left.
    let cut = dir.join("cut.mkv");
    remux_cut(&partial, &cut, checkpoint.frames as usize - 20, true);
    ok(&faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None));
    std::fs::copy(end::file_beside(&dir.join("recorded.mkv")), end::file_beside(&cut)).unwrap();
    failed(
        &faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None),
        "the recording was cut short of a checkpoint its writer signed",
    );
}

/// An MP4 anonymized from a file whose writer was killed midway is readable up to its last
/// whole fragment, and its checkpoint beside it: `verify --open-end` passes it, and a restore
/// gives back what it holds. Until 2026-12-06 only a live source's MP4 was written in fragments,
/// and such a file had no index at all: nothing of it could be read, verified or restored.
#[test]
fn a_signed_mp4_anonymized_from_a_file_whose_writer_was_killed_reads_verifies_and_restores_up_to_where_it_stopped() {
    let dir = tmpdir("killed-file-mp4");
    let ((id, recipient), (camera, signer)) = (keygen(&dir, "a"), signing_keygen(&dir, "camera"));
    let long = dir.join("long.mp4");
    common::media::moving_ball(&long, 1800, 30);
    let signing = ["--mode", "blur", "--recipient", recipient.as_str(), "--sign-with", s(&camera)];
    let (partial, checkpoint) =
        killed_at_a_checkpoint(&[&["anonymize", s(&long)], &signing[..]].concat(), &dir.join("anon.mp4"), &signer);
    let held = common::media::decode(&partial).frames.len();
    assert!(held as u64 >= checkpoint.frames, "{held} frames readable, a checkpoint of {}", checkpoint.frames);
    // The restore writes what the file holds, and says that it ends early.
    let back = dir.join("back.mkv");
    let o = faceveil(&["restore", s(&partial), "-o", s(&back), "--identity", s(&id), "--signer", &signer], None);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() || said.contains("the input ends early"), "{said}");
    assert!(common::media::decode(&back).frames.len() as u64 >= checkpoint.frames, "{said}");
}

/// A finished MP4 cut short after (a copy or a download that stopped) has lost its index with
/// its end; the CLI wrote it in fragments, so `verify --open-end` passes it up to its last whole
/// fragment and a restore gives back what it holds. Until 2026-12-06 nothing of it could be read
/// ("This file contains no playable streams"). A plain MP4 cut so is refused, saying why.
#[test]
fn a_finished_mp4_cut_short_after_verifies_and_restores_up_to_the_cut() {
    let dir = tmpdir("finished-mp4-cut");
    let ((id, recipient), (camera, signer)) = (keygen(&dir, "a"), signing_keygen(&dir, "camera"));
    let clip = dir.join("clip.mp4");
    common::media::moving_ball(&clip, 300, 30);
    let anon = dir.join("anon.mp4");
    let signing = ["--mode", "blur", "--recipient", recipient.as_str(), "--sign-with", s(&camera)];
    ok(&faceveil(&[&["anonymize", s(&clip), "-o", s(&anon)], &signing[..]].concat(), None));
    let bytes = std::fs::read(&anon).unwrap();
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5]).unwrap();
    failed(&faceveil(&["verify", s(&cut), "--signer", &signer], None), "has no signed end");
    let o = faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None);
    let told = ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("ends before its index (cut short after it was finished"));
    let records: usize = told
        .lines()
        .find_map(|l| l.split_once(" frame records").and_then(|(n, _)| n.parse().ok()))
        .unwrap_or_else(|| panic!("{told}"));
    assert!(records >= 120, "{told}");
    let back = dir.join("back.mkv");
    let o = faceveil(&["restore", s(&cut), "-o", s(&back), "--identity", s(&id), "--signer", &signer], None);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(common::media::decode(&back).frames.len() + 2 >= records, "{said}");
    let plain = dir.join("plain.mp4");
    let original = std::fs::read(&clip).unwrap();
    std::fs::write(&plain, &original[..original.len() / 2]).unwrap();
    failed(&faceveil(&["verify", s(&plain)], None), "cut short before its index (`moov`");
}

/// A signed live recording that a full disk stops ends on whole pictures, in each container a
/// live recording is written to: the write the disk cut short is taken off again, so that
/// `verify --open-end` passes every picture kept. Until 2026-12-06 the CLI left that write as
/// far as the disk took it, and a picture cut short within an MPEG-TS file failed its
/// signature as an altered one does (`a_signed_recording_cut_within_its_last_picture_…`).
#[test]
fn a_signed_live_recording_stopped_by_a_full_disk_ends_on_whole_pictures_that_verify() {
    use common::served::serve_clip;
    let dir = tmpdir("full-signed");
    let ((_, recipient), (camera, signer)) = (keygen(&dir, "a"), signing_keygen(&dir, "camera"));
    let long = dir.join("long.mp4");
    // The served clip plays once, shared by the three recordings at once: 40 s.
    common::media::moving_ball(&long, 1200, 30);
    let (_server, url) = serve_clip(&long, &["--mode", "blur"], &dir);
    let record = |ext: &str| {
        let out = dir.join(format!("recorded.{ext}"));
        // A disk that fills at 128 KiB.
        let o = common::without_criticals(
            common::faceveil_on_a_disk_that_fills(256)
                .args(["anonymize", &url, "-o", s(&out), "--recipient", &recipient, "--sign-with", s(&camera)])
                .env("FACEVEIL_PASSWORD", "full disk")
                .output()
                .unwrap(),
        );
        (out, o)
    };
    let recorded: Vec<_> = std::thread::scope(|scope| {
        let runs = ["ts", "mkv", "mp4"].map(|ext| scope.spawn(move || (ext, record(ext))));
        runs.map(|run| run.join().unwrap()).into_iter().collect()
    });
    for (ext, (out, o)) in recorded {
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && said.contains("File too large"), "{ext}: {said}");
        assert!(said.contains("the recording stopped there, and what was written of its"), "{ext}: {said}");
        let verified = faceveil(&["verify", s(&out), "--signer", &signer, "--open-end"], None);
        let told = String::from_utf8_lossy(&verified.stdout);
        assert!(verified.status.success(), "{ext}: {said}\nverify: {told}{}", String::from_utf8_lossy(&verified.stderr));
        assert!(told.contains("coded pictures: every one as its signer coded it"), "{ext}: {told}");
    }
}

/// A signed recording written by gst-launch-1.0 keeps its newest checkpoint beside it too
/// (`faceveilcheckpoint` before the file sink): killed midway, what it left verifies with
/// `--open-end` up to the checkpoint and a copy cut short of it does not; a run that ends leaves
/// no end file, its end being in the file.
#[test]
fn a_gst_launch_recording_keeps_its_checkpoint_beside_it_until_it_ends() {
    use common::served::{Child, log_text, wait_for};
    let dir = tmpdir("launch-checkpoint");
    let ((_, recipient), (camera, signer)) = (keygen(&dir, "a"), signing_keygen(&dir, "camera"));
    let password = dir.join("password.txt");
    std::fs::write(&password, "launch\n").unwrap();
    let record = |clip: &Path, out: &Path, log: &Path| {
        let pipeline = format!(
            "filesrc location={} ! decodebin ! videoconvert ! identity sync=true ! faceveil password-file={} recipients={recipient} \
             signing-key={} ! videoconvert ! x264enc ! faceveilsei ! matroskamux ! faceveilcheckpoint ! filesink location={}",
            clip.display(),
            password.display(),
            camera.display(),
            out.display()
        );
        let log = std::fs::File::create(log).unwrap();
        Child(
            Command::new("gst-launch-1.0")
                .args(pipeline.split_whitespace())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let long = dir.join("long.mp4");
    common::media::moving_ball(&long, 900, 30);
    let (out, log) = (dir.join("recorded.mkv"), dir.join("launch.log"));
    let mut recorder = record(&long, &out, &log);
    let kept = end::file_beside(&out);
    let checkpoint = || end::read_file(&kept).ok().flatten();
    wait_for("a checkpoint of 60 frames beside the recording", 120, || checkpoint().is_some_and(|c| c.frames >= 60));
    recorder.0.kill().unwrap();
    recorder.0.wait().unwrap();
    let checkpoint = checkpoint().unwrap();
    assert!(checkpoint.open, "{}", log_text(&log));
    let o = faceveil(&["verify", s(&out), "--signer", &signer, "--open-end"], None);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("only a checkpoint its writer signed while it recorded: the records reach it"), "{said}");
    let cut = dir.join("cut.mkv");
    remux_cut(&out, &cut, checkpoint.frames as usize - 20, true);
    std::fs::copy(end::file_beside(&dir.join("recorded.mkv")), end::file_beside(&cut)).unwrap();
    failed(
        &faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None),
        "the recording was cut short of a checkpoint its writer signed",
    );
    // A run to its end: the end file goes, the end is in the file.
    let short = dir.join("short.mp4");
    common::media::moving_ball(&short, 75, 30);
    let mut whole = record(&short, &out, &log);
    assert!(whole.0.wait().unwrap().success(), "{}", log_text(&log));
    assert!(!kept.exists(), "the end file outlived a run that ended");
    let verified = ok(&faceveil(&["verify", s(&out), "--signer", &signer], None));
    assert!(verified.contains("the records reach the recording's signed end (75 frames)"), "{verified}");
}

/// A signed recording's writer signs its end: `faceveil verify` finds a recording cut short of
/// it (with its tags kept, or stripped), in the video and in its sidecar, and a forged end, and
/// accepts one without its end only when told to (`--open-end`). It finds pictures shown at
/// other times than recorded too.
#[test]
fn a_signed_recording_cut_short_of_its_signed_end_or_retimed_fails_verify_unless_its_end_is_left_open() {
    let SignedClip { dir, id, signer, anon, .. } = signed_clip("signed-end");
    let whole = ok(&faceveil(&["verify", s(&anon), "--signer", &signer], None));
    assert!(whole.contains("the records reach the recording's signed end (100 frames)"), "{whole}");
    assert!(!end::file_beside(&anon).exists(), "a run that ended left its checkpoint file");
    let restore = |video: &Path| {
        let back = dir.join("back.mp4");
        let o = faceveil(&["restore", s(video), "-o", s(&back), "--identity", s(&id), "--signer", &signer], None);
        ok(&o);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(!restore(&anon).contains("at its end"), "the whole recording restores without a word of its end");

    // The last ten pictures cut off, the container's tags kept: the end names the frames lost.
    let cut = dir.join("cut.mp4");
    remux_cut(&anon, &cut, 90, true);
    let o = faceveil(&["verify", s(&cut), "--signer", &signer], None);
    failed(&o, "it does not reach its signed end");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("to 99 are missing at its end: the recording was cut short of its signed end"), "{said}");
    // The restore gives back what the cut file holds, and says it was cut short.
    let said = restore(&cut);
    assert!(said.contains("to 99 of the signed recording are missing at its end: it was cut short"), "{said}");
    // The tags stripped as well: no end where MP4 keeps one. Accepted only as an open end.
    let stripped = dir.join("stripped.mp4");
    remux_cut(&anon, &stripped, 90, false);
    failed(&faceveil(&["verify", s(&stripped)], None), "the recording has no signed end: it was cut short");
    // Cut in coding order, as a writer stopped at any picture leaves it, it may also lack the
    // B-pictures shown before its last (x264's B-pyramid: two runs of them): said apart, at
    // every cut.
    for pictures in 84..=92 {
        remux_cut(&anon, &stripped, pictures, false);
        let o = faceveil(&["verify", s(&stripped), "--open-end"], None);
        let open = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            o.status.success() && open.contains("no signed end (accepted: --open-end)") && !open.contains("it was cut short"),
            "{open}"
        );
    }

    // A pause of a second put in before the 51st picture (the segment left open, so that the
    // pictures pushed past the clip's end are kept): each record's time is signed, so the
    // pictures moved show.
    let retimed = dir.join("retimed.mp4");
    remux(&anon, &retimed, "", |pad| {
        use gst::prelude::*;
        let seen = std::sync::atomic::AtomicUsize::new(0);
        pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |_, probe| {
            match probe.data.as_mut() {
                Some(gst::PadProbeData::Buffer(buf)) if seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 50 => {
                    let buf = buf.make_mut();
                    let later = |t: Option<gst::ClockTime>| t.map(|t| t + gst::ClockTime::SECOND);
                    buf.set_pts(later(buf.pts()));
                    buf.set_dts(later(buf.dts()));
                }
                Some(gst::PadProbeData::Event(event)) => {
                    if let gst::EventView::Segment(segment) = event.view()
                        && let Some(segment) = segment.segment().downcast_ref::<gst::ClockTime>()
                    {
                        let mut open = segment.clone();
                        open.set_stop(gst::ClockTime::NONE);
                        *event = gst::event::Segment::new(&open);
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
    });
    let o = faceveil(&["verify", s(&retimed), "--signer", &signer], None);
    failed(&o, "50 pictures shown at other times than recorded");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("are shown at other times than they were recorded (up to 1000 ms off)"), "{said}");

    // The sidecar: cut with its end line, cut before it, and with its end's count changed.
    let text = std::fs::read_to_string(faceveil::stream::sidecar::path_for(&anon)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 102, "the header, 100 records and the end");
    let sidecar = |name: &str, lines: &[&str]| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let short = sidecar("short.faceveil", &[&lines[..91], &lines[101..]].concat());
    failed(&faceveil(&["verify", s(&anon), "--sidecar", s(&short)], None), "frames 90 to 99 are missing at its end");
    let endless = sidecar("endless.faceveil", &lines[..91]);
    failed(&faceveil(&["verify", s(&anon), "--sidecar", s(&endless)], None), "the recording has no signed end");
    let open = ok(&faceveil(&["verify", s(&anon), "--sidecar", s(&endless), "--open-end"], None));
    assert!(open.contains("90 frame records, frames 0 to 89: every one signed, none missing"), "{open}");
    let forged = lines[101].replace("\"frames\":100", "\"frames\":90");
    assert_ne!(forged, lines[101]);
    let forged = sidecar("forged.faceveil", &[&lines[..91], &[forged.as_str()]].concat());
    failed(&faceveil(&["verify", s(&anon), "--sidecar", s(&forged)], None), "a stream end that does not carry the signature");
}

/// The MPEG-TS `video` cut in the middle of the packets of its last large video PES packet, as
/// a disk that fills within a picture leaves it (TS packets of 188 bytes, all whole).
fn cut_within_last_picture(video: &Path, cut: &Path) {
    let bytes = std::fs::read(video).unwrap();
    let packets: Vec<&[u8]> = bytes.chunks_exact(188).collect();
    let pid = |p: &[u8]| (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    // The video's packets are most of the file.
    let mut counts = std::collections::HashMap::new();
    for p in &packets {
        *counts.entry(pid(p)).or_insert(0) += 1;
    }
    let video_pid = counts.into_iter().max_by_key(|&(_, n)| n).unwrap().0;
    let ours: Vec<usize> = (0..packets.len()).filter(|&i| pid(packets[i]) == video_pid).collect();
    let starts: Vec<usize> = ours.iter().copied().filter(|&i| packets[i][1] & 0x40 != 0).collect();
    // Of the last five PES packets, the one in most TS packets: cut before half of them.
    let largest = starts[starts.len() - 5..]
        .iter()
        .map(|&start| {
            let end = starts.iter().copied().find(|&s| s > start).unwrap_or(packets.len());
            ours.iter().copied().filter(|&i| i >= start && i < end).collect::<Vec<_>>()
        })
        .max_by_key(Vec::len)
        .unwrap();
    assert!(largest.len() >= 4, "a picture of {} packets", largest.len());
    std::fs::write(cut, &bytes[..largest[largest.len() / 2] * 188]).unwrap();
}

/// A signed MPEG-TS recording whose writer stopped within its last picture (a crash, a power cut,
/// a full disk) and signed no end: that picture fails, as an altered one would, but it lies where
/// frames are not proven anyway (past the newest checkpoint, or in a recording with none), so
/// `verify` sets it aside with a note. Where the stream's signed end, or a checkpoint that covers
/// the picture, is beside it, the same picture is a fault, said to be the last of its stream and
/// of the video.
#[test]
fn a_signed_recording_cut_within_its_last_picture_sets_it_aside_only_past_what_its_writer_signed() {
    use faceveil::secrets::SigningKey;
    use faceveil::stream::end::StreamEnd;
    use faceveil::stream::sidecar;
    let SignedClip { dir, clip, id, recipient, camera, signer, .. } = signed_clip("signed-cut-picture");
    let ts = dir.join("anon.ts");
    ok(&faceveil(&["anonymize", s(&clip), "-o", s(&ts), "--recipient", &recipient, "--sign-with", s(&camera)], Some("pw")));
    // Without its sidecar, which keeps the stream's end: as serve's segments are.
    let cut = dir.join("cut.ts");
    cut_within_last_picture(&ts, &cut);
    let o = faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None);
    let told = ok(&o);
    assert!(told.contains("the last, which its writer stopped within, set aside"), "{told}");
    let said = String::from_utf8_lossy(&o.stderr);
    // Records of pictures coded ahead of frames the cut took (x264's B-frames; where the cut
    // falls decides whether there are any) are counted apart, as the note says.
    assert_eq!(
        told.contains(" coded ahead of frames that never came (set aside: see above): every one signed"),
        said.contains("which were coded ahead: the recording stops among them"),
        "{told}\n{said}"
    );
    let set_aside = |said: &str, past: &str| {
        said.lines()
            .filter(|l| l.contains("note: ") && l.contains(&format!("; it is the last picture of the recording, {past}")))
            .count()
    };
    assert_eq!(set_aside(&said, "which has no signed end or checkpoint"), 1, "{said}");
    // A restore that names the signer gives back the pictures before it, and leaves it out. What
    // its warning says is wrong with the picture depends on where the cut fell: within its slices
    // ("altered after it was signed", as a cut picture fails its signature), or within its
    // faceveil data ("carries no faceveil data"); either way not the error that refuses an
    // altered recording whole.
    let back = dir.join("back.mp4");
    let o = faceveil(&["restore", s(&cut), "-o", s(&back), "--identity", s(&id), "--signer", &signer], None);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stderr);
    let left_out: Vec<&str> = said.lines().filter(|l| l.ends_with(gstfaceveil::streamdata::LAST_PICTURE_LEFT_OUT)).collect();
    assert_eq!(left_out.len(), 1, "{said}");
    assert!(left_out[0].contains("its coded picture was altered") || left_out[0].contains("carries no faceveil data"), "{said}");
    assert!(!said.contains("nothing of it is restored"), "{said}");
    // A face video that lost its chunk with a frame coded ahead (x264's B-frames) waits for its
    // next keyframe; the warning names the frame by its recorded number, the one after the gap
    // (it named the frame's place in the stream, the missing one's number, before).
    for line in said.lines().filter(|l| l.contains(": a sealed face continues a face video")) {
        let frame = line.split("frame ").nth(1).and_then(|rest| rest.split(':').next()).unwrap();
        assert!(said.contains(&format!("missing before its frame {frame} ")), "{said}");
    }
    let restored = common::media::decode(&back).frames.len();
    let in_cut = common::media::decode(&cut).frames.len();
    assert!(restored + 1 >= in_cut && restored > 80, "{restored} frames restored of the {in_cut} the cut file decodes to");

    // A checkpoint of its first 30 frames beside it, signed by its writer: the picture lies past it.
    let key = SigningKey::from_file(&camera, || None).unwrap();
    let digest = sidecar::read_header(&sidecar::path_for(&ts)).unwrap().digest();
    end::write_file(&end::file_beside(&cut), &StreamEnd::checkpoint_with(30, None, &key, &digest)).unwrap();
    let o = faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None);
    ok(&o);
    assert_eq!(set_aside(&String::from_utf8_lossy(&o.stderr), "past its newest checkpoint (frame 29)"), 1);
    // One of all 100 frames: the writer had written that picture whole, so it was altered since.
    end::write_file(&end::file_beside(&cut), &StreamEnd::checkpoint_with(100, None, &key, &digest)).unwrap();
    let o = faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None);
    failed(&o, " coded pictures, 1 not as signed");
    let last_of_its_stream = |o: &Output| {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter(|l| l.contains("; it is the last picture of its stream and of the video"))
            .count()
    };
    assert_eq!(last_of_its_stream(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    // Its sidecar beside it instead, with the stream's signed end: the same.
    std::fs::remove_file(end::file_beside(&cut)).unwrap();
    std::fs::copy(sidecar::path_for(&ts), sidecar::path_for(&cut)).unwrap();
    let o = faceveil(&["verify", s(&cut), "--signer", &signer, "--open-end"], None);
    failed(&o, " coded pictures, 1 not as signed");
    assert_eq!(last_of_its_stream(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    // The whole file passes.
    let whole = ok(&faceveil(&["verify", s(&ts), "--signer", &signer, "--open-end"], None));
    assert!(whole.contains("every one as its signer coded it"), "{whole}");
}

#[test]
fn a_signed_recording_whose_pictures_were_altered_outside_the_faces_fails_verify_and_a_signed_restore() {
    use faceveil::stream::pictures::PICTURE_SIGNATURE_UUID;
    use faceveil::stream::sei::{self, Codec, Framing};
    let SignedClip { dir, id, signer, anon, .. } = signed_clip("signed-pictures");
    let length_prefixed = |units: Vec<Vec<u8>>| -> Vec<u8> {
        units.iter().flat_map(|u| [&(u.len() as u32).to_be_bytes()[..], u].concat()).collect()
    };
    let units = |au: &[u8]| -> Vec<Vec<u8>> { sei::nal_units(au, Framing::Avc(4)).into_iter().map(<[u8]>::to_vec).collect() };

    // Remuxed as it is, every picture still checks: the signatures are of the coded bytes.
    let remuxed = dir.join("remuxed.mp4");
    remux_editing(&anon, &remuxed, |_, au| au);
    let whole = ok(&faceveil(&["verify", s(&remuxed), "--signer", &signer], None));
    assert!(whole.ends_with("100 coded pictures: every one as its signer coded it"), "{whole}");

    // One picture's last slice changed in one byte (its faceveil data and signature kept), and
    // another picture's signature taken out; the last picture changed too, as a writer that
    // stopped within it (a full disk) would leave it.
    let altered = dir.join("altered.mp4");
    remux_editing(&anon, &altered, move |n, au| {
        let mut units = units(&au);
        match n {
            20 | 99 => {
                let slice = units.iter_mut().rev().find(|u| (1..=5).contains(&(u[0] & 0x1f))).expect("a slice");
                let middle = slice.len() / 2;
                slice[middle] ^= 0x01;
            }
            40 => units.retain(|u| {
                sei::find_user_data(&length_prefixed(vec![u.clone()]), Framing::Avc(4), Codec::H264, &PICTURE_SIGNATURE_UUID)
                    .is_empty()
            }),
            _ => {}
        }
        length_prefixed(units)
    });
    let o = faceveil(&["verify", s(&altered), "--signer", &signer], None);
    failed(&o, "of 100 coded pictures, 3 not as signed");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("its coded picture was altered after it was signed"), "{said}");
    // Only the last is said to be where a writer cut short leaves one: still a fault.
    let at_end = said.lines().filter(|l| l.contains("it is the last picture of its stream and of the video")).count();
    assert_eq!(at_end, 1, "{said}");
    assert!(said.contains("its coded picture carries no signature"), "{said}");
    // The records themselves are untouched: only the pictures give the forgery away.
    assert!(said.contains("of 100 records (frames 0 to 99), 0 without the signature, 0 gaps"), "{said}");
    // A restore that names the signer refuses it too, and writes nothing; the remuxed one restores.
    let back = dir.join("back.mp4");
    let restore =
        |video: &Path| faceveil(&["restore", s(video), "-o", s(&back), "--identity", s(&id), "--signer", &signer], None);
    let o = restore(&altered);
    failed(&o, "its coded picture was altered after it was signed");
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing of it is restored"));
    assert!(!back.exists(), "nothing written");
    ok(&restore(&remuxed));
    assert_eq!(common::media::decode(&back).frames.len(), 100);
    // Another signer required: the restore says who signed it, not that its pictures changed.
    let (_, other) = signing_keygen(&dir, "other");
    std::fs::remove_file(&back).unwrap();
    let o = faceveil(&["restore", s(&remuxed), "-o", s(&back), "--identity", s(&id), "--signer", &other], None);
    failed(&o, "not by the required");
}
