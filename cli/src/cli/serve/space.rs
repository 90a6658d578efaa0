//! Disk space: how much of a recording disk must stay free (`record.min_free`), and how much is.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use gst_rtsp_server::gio;
use gst_rtsp_server::gio::prelude::*;
use serde::Deserialize;

/// Space to keep free on a disk: a size ("2 GiB", "500 MB") or a share of the disk ("10%").
#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(try_from = "String")]
pub enum FreeSpace {
    Bytes(u64),
    Percent(f64),
}

const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl TryFrom<String> for FreeSpace {
    type Error = anyhow::Error;

    fn try_from(text: String) -> Result<Self> {
        let wrong = || format!("{text:?} is neither a size (\"2 GiB\", \"500 MB\") nor a share of the disk (\"10%\")");
        let t = text.trim();
        if let Some(share) = t.strip_suffix('%') {
            let share: f64 = share.trim().parse().with_context(wrong)?;
            // 100% could never be met: every segment but the one being written would go.
            if !(share > 0.0 && share < 100.0) {
                bail!("{text:?}: a share of the disk must be above 0% and below 100%");
            }
            return Ok(Self::Percent(share));
        }
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (number, unit) = (t[..split].parse::<f64>().with_context(wrong)?, t[split..].trim().to_ascii_lowercase());
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else { bail!(wrong()) };
        let bytes = number * scale as f64;
        if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
            bail!("{text:?}: the size must be at least a byte");
        }
        Ok(Self::Bytes(bytes as u64))
    }
}

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "{}", Bytes(*b)),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl FreeSpace {
    /// The bytes to keep free on a disk of `size` bytes.
    pub fn bytes_of(self, size: u64) -> u64 {
        match self {
            Self::Bytes(b) => b,
            Self::Percent(p) => (size as f64 * p / 100.0).ceil() as u64,
        }
    }
}

/// A number of bytes as people read them: "1.5 GiB".
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0 as f64;
        for unit in ["B", "KiB", "MiB", "GiB"] {
            if value < 1024.0 {
                return if unit == "B" { write!(f, "{} B", self.0) } else { write!(f, "{value:.1} {unit}") };
            }
            value /= 1024.0;
        }
        write!(f, "{value:.1} TiB")
    }
}

/// The disk that holds `dir`: the bytes a writer who is not root may still write, and its size.
pub fn of_disk(dir: &Path) -> Result<(u64, u64)> {
    let info = gio::File::for_path(dir)
        .query_filesystem_info("filesystem::free,filesystem::size", gio::Cancellable::NONE)
        .with_context(|| format!("cannot tell the free space where {} lies", dir.display()))?;
    Ok((info.attribute_uint64("filesystem::free"), info.attribute_uint64("filesystem::size")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_shares_read_as_people_write_them_and_nonsense_is_refused() {
        let read = |t: &str| FreeSpace::try_from(t.to_string());
        assert_eq!(read("2 GiB").unwrap(), FreeSpace::Bytes(2 << 30));
        assert_eq!(read("500MB").unwrap(), FreeSpace::Bytes(500_000_000));
        assert_eq!(read("1.5 gb").unwrap(), FreeSpace::Bytes(1_500_000_000));
        assert_eq!(read(" 10 % ").unwrap(), FreeSpace::Percent(10.0));
        assert_eq!(read("10%").unwrap().bytes_of(1_000_001), 100_001);
        for bad in ["", "2", "2 GB free", "GiB", "-1 GiB", "0 B", "0%", "100%", "1e9 B", "x%"] {
            assert!(read(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(Bytes(1536 << 20).to_string(), "1.5 GiB");
        assert_eq!(Bytes(800).to_string(), "800 B");
        assert_eq!(read("2 GiB").unwrap().to_string(), "2.0 GiB");
    }

    #[test]
    fn the_disk_of_a_folder_has_a_size_and_no_more_free_than_that() {
        let (free, size) = of_disk(&std::env::temp_dir()).unwrap();
        assert!(size > 0 && free <= size, "free {free} of {size}");
        assert!(of_disk(Path::new("/no/such/folder")).is_err());
    }
}
