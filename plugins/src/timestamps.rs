//! Frames' timestamps made strictly increasing on their way to an encoder. A decoder now and
//! then gives two frames one timestamp (libav's, of 05_crowd_mot20-08's 0.28 s; one stopped
//! midway by `identity eos-after`, two frames of 2.48 s), and what comes after the encoder loses
//! a frame for it: x264enc passes both timestamps on, h264parse keeps a repeated timestamp only on
//! the first frame that carries it, and matroskamux drops the frame left without one ("Invalid
//! buffer timestamp; dropping buffer"; mp4mux stops on "Buffer has no PTS"). A signed recording
//! then lacked a picture its signed end counted, and verified as cut (2026-12-05: 2 of about 150
//! runs of the signed-pictures test under load).
//!
//! Moved a nanosecond on, such a frame still shared its millisecond with the one before, and
//! Matroska keeps times to the millisecond: read back, h264parse left it without a timestamp, and
//! a remux of the recording dropped it (a live RTSP source whose decoder gave two frames times
//! 43 ms earlier than the one before them: `sealed.rs::a_signed_recording_whose_writer_was_killed_…`,
//! 1 of 3 runs of its binary, 2026-12-06). So a frame that does not come at least a millisecond
//! after the last is moved to a millisecond after it.

/// The least step between two timestamps given: what Matroska, the coarsest container written
/// here, keeps apart.
const LEAST_STEP: gst::ClockTime = gst::ClockTime::from_mseconds(1);

/// The timestamps given so far, to move one that does not follow them.
#[derive(Default)]
pub struct Increasing {
    last: Option<gst::ClockTime>,
}

impl Increasing {
    /// `pts`, or the last timestamp given plus `LEAST_STEP` where `pts` is not that far after
    /// it.
    pub fn next(&mut self, pts: gst::ClockTime) -> gst::ClockTime {
        let pts = match self.last {
            Some(last) if pts < last + LEAST_STEP => last + LEAST_STEP,
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
    fn a_repeated_earlier_or_too_close_timestamp_moves_a_millisecond_past_the_last() {
        let mut times = Increasing::default();
        let ms = gst::ClockTime::from_mseconds;
        let us = gst::ClockTime::from_useconds;
        assert_eq!(times.next(ms(320)), ms(320));
        assert_eq!(times.next(ms(2480)), ms(2480));
        assert_eq!(times.next(ms(2480)), ms(2481));
        assert_eq!(times.next(ms(400)), ms(2482));
        // Within the millisecond after the last: it would share it in a Matroska file.
        assert_eq!(times.next(ms(2482) + us(300)), ms(2483));
        assert_eq!(times.next(ms(2520)), ms(2520));
        // A millisecond after the last is far enough.
        assert_eq!(times.next(ms(2521)), ms(2521));
    }
}
