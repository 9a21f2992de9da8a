//! The split of an input the device cannot hold at once, and the capacity of a new workspace.

use std::ops::Range;

use super::layout::Layout;
use super::sizes::{Extent, Limits};
use crate::error::{Error, Result};
use crate::spec::RnnSpec;

/// A workspace capacity for an input of `need`: steps and batch rounded up to powers of two
/// (so inputs of many lengths share few workspaces), each rounding dropped where it would
/// exceed a limit.
pub(crate) fn capacity(spec: &RnnSpec, limits: &Limits, need: Extent) -> Extent {
    let (t, b) = (
        need.steps.next_power_of_two(),
        need.batch.next_power_of_two(),
    );
    [
        Extent::new(t, b),
        Extent::new(t, need.batch),
        Extent::new(need.steps, b),
    ]
    .into_iter()
    .find(|&e| Layout::new(spec, limits, e).is_ok())
    .unwrap_or(need)
}

/// One part of an input the device cannot run at once: batch elements × time steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub batch: Range<usize>,
    pub time: Range<usize>,
}

impl Chunk {
    pub fn extent(&self) -> Extent {
        Extent::new(self.time.len(), self.batch.len())
    }
}

/// The chunks an input of `extent` runs in: the whole input where it fits; else contiguous
/// batch parts of equal size (±1) as large as fit; else, for a unidirectional model, time
/// windows (the state carried from one to the next) of batch parts. Chunks come batch part by
/// batch part, each part's windows in time order.
pub(crate) fn chunks(spec: &RnnSpec, limits: &Limits, extent: Extent) -> Result<Vec<Chunk>> {
    let Extent { steps, batch } = extent;
    let fits = |e: Extent| Layout::new(spec, limits, e);
    let whole = match fits(extent) {
        Ok(_) => {
            return Ok(vec![Chunk {
                batch: 0..batch,
                time: 0..steps,
            }])
        }
        Err(e) => e,
    };
    if let Some(part) = largest(batch, |b| fits(Extent::new(steps, b)).is_ok()) {
        return Ok(parts(batch, part)
            .map(|b| Chunk {
                batch: b,
                time: 0..steps,
            })
            .collect());
    }
    if spec.needs_whole_sequence() {
        return Err(match whole {
            Error::ExceedsLimit {
                what,
                limit,
                needed,
                allowed,
            } => Error::ExceedsLimit {
                what: format!(
                    "{what} (a {} model cannot be split over time: its reverse direction needs the whole sequence)",
                    crate::spec::Direction::of(spec).name()
                ),
                limit,
                needed,
                allowed,
            },
            e => e,
        });
    }
    let part = largest(batch, |b| fits(Extent::new(1, b)).is_ok())
        .ok_or_else(|| fits(Extent::new(1, 1)).err().unwrap_or(whole))?;
    let window = largest(steps, |t| fits(Extent::new(t, part)).is_ok()).unwrap_or(1);
    let mut out = Vec::new();
    for b in parts(batch, part) {
        for start in (0..steps).step_by(window) {
            out.push(Chunk {
                batch: b.clone(),
                time: start..(start + window).min(steps),
            });
        }
    }
    Ok(out)
}

/// The largest `n` in `1..=max` for which `ok(n)` holds, `ok` being monotone (true up to some
/// point, false after); `None` when `ok(1)` fails.
fn largest(max: usize, ok: impl Fn(usize) -> bool) -> Option<usize> {
    if max == 0 || !ok(1) {
        return None;
    }
    let (mut lo, mut hi) = (1, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// `0..n` cut into the fewest contiguous parts of at most `part` elements, of equal size ±1.
fn parts(n: usize, part: usize) -> impl Iterator<Item = Range<usize>> {
    let count = n.div_ceil(part.max(1));
    (0..count).map(move |i| i * n / count..(i + 1) * n / count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::plan::test_limits::{roomy, small};
    use crate::spec::Cell;

    #[test]
    fn whole_input_is_one_chunk() {
        let spec = RnnSpec::lstm(3, 5);
        let c = chunks(&spec, &roomy(), Extent::new(9, 4)).unwrap();
        assert_eq!(
            c,
            vec![Chunk {
                batch: 0..4,
                time: 0..9
            }]
        );
    }

    /// Every chunk fits, the chunks tile the input exactly once, and the parts are as large
    /// as the limits allow.
    fn check_tiling(spec: &RnnSpec, limits: &Limits, e: Extent) -> Vec<Chunk> {
        let c = chunks(spec, limits, e).unwrap();
        let mut seen = vec![0u8; e.steps * e.batch];
        for ch in &c {
            Layout::new(spec, limits, ch.extent()).unwrap();
            for t in ch.time.clone() {
                for b in ch.batch.clone() {
                    seen[t * e.batch + b] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{c:?}");
        c
    }

    #[test]
    fn too_large_splits_over_batch() {
        let spec = RnnSpec::lstm(16, 32);
        let limits = small(64 * 1024, 65_535);
        let e = Extent::new(20, 37);
        let c = check_tiling(&spec, &limits, e);
        assert!(c.len() > 1);
        assert!(c.iter().all(|ch| ch.time == (0..20)));
        // The largest part fits, one more sequence would not.
        let part = c.iter().map(|ch| ch.batch.len()).max().unwrap();
        assert!(Layout::new(&spec, &limits, Extent::new(20, part + 1)).is_err() || part == 37);
        let sizes: Vec<usize> = c.iter().map(|ch| ch.batch.len()).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }

    #[test]
    fn too_long_splits_over_time() {
        let spec = RnnSpec::lstm(16, 32).layers(2);
        let limits = small(64 * 1024, 65_535);
        let e = Extent::new(500, 1);
        let c = check_tiling(&spec, &limits, e);
        assert!(c.len() > 1);
        assert!(c.iter().all(|ch| ch.batch == (0..1)));
        assert_eq!(c[0].time.start, 0);
        assert!(c.windows(2).all(|w| w[0].time.end == w[1].time.start));
    }

    #[test]
    fn long_and_wide_splits_over_both() {
        let spec = RnnSpec::new(Cell::Gru, 16, 32);
        let limits = small(16 * 1024, 65_535);
        check_tiling(&spec, &limits, Extent::new(300, 9));
    }

    #[test]
    fn the_workgroup_limit_splits_too() {
        let spec = RnnSpec::lstm(4, 8);
        let limits = small(1 << 30, 16);
        let c = check_tiling(&spec, &limits, Extent::new(40, 64));
        assert!(c.len() > 1);
    }

    #[test]
    fn bidirectional_cannot_split_over_time() {
        let spec = RnnSpec::lstm(16, 32).bidirectional(true);
        let limits = small(64 * 1024, 65_535);
        let e = chunks(&spec, &limits, Extent::new(5000, 1)).unwrap_err();
        assert!(matches!(e, Error::ExceedsLimit { .. }), "{e}");
        assert!(e.to_string().contains("bidirectional"), "{e}");
    }

    #[test]
    fn capacity_rounds_up_within_limits() {
        let spec = RnnSpec::lstm(3, 5);
        assert_eq!(
            capacity(&spec, &roomy(), Extent::new(37, 3)),
            Extent::new(64, 4)
        );
        // Where the rounded capacity would exceed a limit, the input's own extent is used.
        let limits = small(64 * 1024, 65_535);
        let spec = RnnSpec::lstm(16, 32);
        let need = Extent::new(20, 5);
        let cap = capacity(&spec, &limits, need);
        assert!(cap.covers(need));
        Layout::new(&spec, &limits, cap).unwrap();
    }

    #[test]
    fn parts_are_balanced() {
        let p: Vec<_> = parts(10, 4).collect();
        assert_eq!(p, vec![0..3, 3..6, 6..10]);
        assert_eq!(parts(4, 4).count(), 1);
        assert_eq!(largest(100, |n| n <= 37), Some(37));
        assert_eq!(largest(100, |_| false), None);
    }
}
