//! `faceveil verify`: whether a signed output is its signer's and whole, without opening any
//! face (no identity, no password): the header's signature and every frame record's, read from
//! a photo's metadata or a video's own SEI (its sidecar where the SEI was lost, or where one is
//! named), and whether the records' numbers run without a gap.

use std::path::Path;

use anyhow::{Result, bail};
use faceveil::secrets::Signer;
use faceveil::stream::header::{FrameRecord, StreamHeader};
use faceveil::stream::sidecar;
use faceveil::stream::signed::SignedRecords;

use super::args::VerifyArgs;
use super::input::{Input, StreamSource};
use super::{images, video};

pub fn run(args: &VerifyArgs) -> Result<()> {
    let required: Option<Signer> = args.signer.as_deref().map(str::parse).transpose()?;
    let mut tally = Tally { required, ..Tally::default() };
    match Input::parse(&args.input)? {
        Input::Image(path) => {
            let (header, record) = images::embedded(&path, &std::fs::read(&path)?)?;
            tally.header(&header)?;
            tally.record(&record);
        }
        Input::Stream(StreamSource::File(path)) => match &args.sidecar {
            Some(file) => in_sidecar(file, &mut tally)?,
            None => {
                // The video's own SEI: a sidecar lists the records of frames cut from the video since.
                in_stream(&path, &mut tally)?;
                let beside = sidecar::path_for(&path);
                if tally.header.is_none() && beside.exists() {
                    eprintln!(
                        "faceveil: note: the video carries no faceveil data of its own (its SEI was lost): the sidecar's records are checked, which do not show frames cut from the video"
                    );
                    tally = Tally { required: tally.required, ..Tally::default() };
                    in_sidecar(&beside, &mut tally)?;
                }
            }
        },
        _ => bail!("verify reads a photo or a video file (with its sidecar, or its own SEI)"),
    }
    tally.finish()
}

fn in_sidecar(file: &Path, tally: &mut Tally) -> Result<()> {
    tally.cut_line = sidecar::each_record(file, |header, record| {
        tally.header(header)?;
        tally.record(&record);
        Ok(())
    })?;
    Ok(())
}

/// The records as the video's SEI carries them, each checked under the header that last came.
fn in_stream(path: &Path, tally: &mut Tally) -> Result<()> {
    let mut failed = Ok(());
    video::each_payload_in_file(path, |payload| match payload {
        None => true,
        Some(Err(e)) => {
            tally.damaged += 1;
            eprintln!("faceveil: a picture's faceveil data does not read: {e}");
            true
        }
        Some(Ok(payload)) => {
            if let Some(header) = &payload.header {
                failed = tally.header(header);
            }
            if let Some(record) = &payload.record {
                tally.record(record);
            }
            failed.is_ok()
        }
    })?;
    failed
}

/// What the check found so far.
#[derive(Default)]
struct Tally {
    required: Option<Signer>,
    /// The header the records are checked under, and its check.
    header: Option<(StreamHeader, SignedRecords)>,
    /// Records met before any header (a stream's SEI joined midway).
    headless: u64,
    /// The numbers of the records checked: a video's SEI comes in coding order, so whether they
    /// run without a gap is asked of them sorted, at the end.
    numbers: Vec<u64>,
    unsigned: u64,
    damaged: u64,
    cut_line: Option<usize>,
}

impl Tally {
    /// A header met: the first, or a new one (a source that reconnected starts another stream).
    fn header(&mut self, header: &StreamHeader) -> Result<()> {
        if self.header.as_ref().is_some_and(|(known, _)| known == header) {
            return Ok(());
        }
        let Some(check) = SignedRecords::of(header, self.required.as_ref())? else {
            bail!("this output is not signed (it was made without --sign-with): there is nothing to verify");
        };
        if let Some((_, before)) = &self.header
            && before.signer() != check.signer()
        {
            bail!("the output's signer changes midway, from {} to {}", before.signer(), check.signer());
        }
        self.header = Some((header.clone(), check));
        Ok(())
    }

    fn record(&mut self, record: &FrameRecord) {
        let Some((_, check)) = &self.header else {
            self.headless += 1;
            return;
        };
        self.numbers.push(record.frame);
        if let Err(e) = check.verify(record) {
            eprintln!("faceveil: {e}");
            self.unsigned += 1;
        }
    }

    /// Says what was found; an error unless the output is whole and signed throughout.
    fn finish(mut self) -> Result<()> {
        let Some((_, check)) = &self.header else {
            bail!("no faceveil header found: not a faceveil output, or its data was stripped")
        };
        let whose = if self.required.is_some() { "the required signer" } else { "not compared with any: give --signer" };
        println!("signed by {} ({whose})", check.signer());
        self.numbers.sort_unstable();
        let mut gaps = 0;
        for pair in self.numbers.windows(2) {
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
        if self.headless > 0 {
            eprintln!("faceveil: note: {} records came before the first header and were not checked", self.headless);
        }
        if let Some(line) = self.cut_line {
            eprintln!("faceveil: note: the sidecar ends in a line cut short (line {line}), where its writer stopped");
        }
        let (records, first, last) =
            (self.numbers.len(), self.numbers.first().copied().unwrap_or(0), self.numbers.last().copied().unwrap_or(0));
        if self.unsigned + gaps + self.damaged > 0 {
            bail!(
                "the output is not whole as its signer made it: of {records} records (frames {first} to {last}), {} without the signature, {gaps} gaps or repeats in their numbers, {} unreadable",
                self.unsigned,
                self.damaged
            );
        }
        println!("{records} frame records, frames {first} to {last}: every one signed, none missing");
        Ok(())
    }
}
