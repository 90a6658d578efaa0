//! Frames' timestamps made strictly increasing on their way to an encoder. A decoder now and
//! then gives two frames one timestamp (libav's, of 05_crowd_mot20-08's 0.28 s; one stopped
//! midway by `identity eos-after`, two frames of 2.48 s), and what comes after the encoder loses
//! a frame for it: x264enc passes both timestamps on, h264parse keeps a repeated timestamp only on
//! the first frame that carries it, and matroskamux drops the frame left without one ("Invalid
//! buffer timestamp; dropping buffer"; mp4mux stops on "Buffer has no PTS"). A signed recording
//! then lacked a picture its signed end counted, and verified as cut (2026-12-05: 2 of about 150
//! runs of the signed-pictures test under load).

/// The timestamps given so far, to move one that does not follow them.
#[derive(Default)]
pub struct Increasing {
    last: Option<gst::ClockTime>,
}

impl Increasing {
    /// `pts`, or the last timestamp given plus a nanosecond (x264enc's timebase) where `pts` is
    /// not after it.
    pub fn next(&mut self, pts: gst::ClockTime) -> gst::ClockTime {
        let pts = match self.last {
            Some(last) if pts <= last => last + gst::ClockTime::from_nseconds(1),
            _ => pts,
        };
        self.last = Some(pts);
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_or_earlier_timestamp_moves_just_past_the_last() {
        let mut times = Increasing::default();
        let ms = gst::ClockTime::from_mseconds;
        let ns = gst::ClockTime::from_nseconds;
        assert_eq!(times.next(ms(320)), ms(320));
        assert_eq!(times.next(ms(2480)), ms(2480));
        assert_eq!(times.next(ms(2480)), ms(2480) + ns(1));
        assert_eq!(times.next(ms(400)), ms(2480) + ns(2));
        assert_eq!(times.next(ms(2520)), ms(2520));
    }
}
