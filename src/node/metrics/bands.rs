//! Priority bands: the bounded label set of `taskraft_queue_depth`.
//!
//! A task's priority is any integer in `0..=MAX_PRIORITY` (1000). One series per distinct
//! priority could mean a thousand series per replica, most of them noise; five equal-width
//! bands keep the queue's shape (is the urgent end backing up?) at a fixed cost. The default
//! priority (500) sits in the middle band, so "everything default" reads as one series.

use crate::scheduler::MAX_PRIORITY;

/// The bands, lowest first: the label value and the highest priority in the band.
pub const BANDS: [(&str, u32); 5] =
    [("0-199", 199), ("200-399", 399), ("400-599", 599), ("600-799", 799), ("800-1000", MAX_PRIORITY)];

/// The index in [`BANDS`] of `priority`. Priorities above `MAX_PRIORITY` cannot be submitted;
/// should one appear anyway it lands in the top band rather than in no band.
pub fn band_of(priority: u32) -> usize {
    BANDS.iter().position(|&(_, top)| priority <= top).unwrap_or(BANDS.len() - 1)
}

/// Sums per-priority counts into the bands.
pub fn by_band(per_priority: impl IntoIterator<Item = (u32, u64)>) -> [u64; BANDS.len()] {
    let mut bands = [0; BANDS.len()];
    for (priority, n) in per_priority {
        bands[band_of(priority)] += n;
    }
    bands
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bands_cover_every_priority_once_in_order() {
        assert_eq!(band_of(0), 0);
        assert_eq!(band_of(199), 0);
        assert_eq!(band_of(200), 1);
        assert_eq!(band_of(crate::scheduler::DEFAULT_PRIORITY), 2);
        assert_eq!(band_of(MAX_PRIORITY), 4);
        assert_eq!(band_of(u32::MAX), 4);
        assert_eq!(by_band([(0, 2), (150, 1), (500, 7), (1000, 1)]), [3, 0, 7, 0, 1]);
    }
}
