//! A run's throughput limit: objects per second and bytes per second, each a schedule of
//! start times that items reserve before they begin. Zero means unlimited.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How often a waiting item looks at the run's stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

use super::model::runs::Limit;

#[derive(Debug)]
struct Rate {
    per_second: f64,
    next: Mutex<Instant>,
}

impl Rate {
    fn new(per_second: i64) -> Option<Self> {
        (per_second > 0).then(|| Self {
            per_second: per_second as f64,
            next: Mutex::new(Instant::now()),
        })
    }

    /// Reserves `cost` units; returns when the reservation may start.
    fn reserve(&self, cost: f64, now: Instant) -> Instant {
        let Ok(mut next) = self.next.lock() else {
            return now;
        };
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(cost / self.per_second);
        start
    }
}

#[derive(Debug)]
pub struct Pace {
    objects: Option<Rate>,
    bytes: Option<Rate>,
}

impl Pace {
    pub fn new(limit: Limit) -> Self {
        Self {
            objects: Rate::new(limit.objects_per_second),
            bytes: Rate::new(limit.bytes_per_second),
        }
    }

    /// Waits until an item of `bytes` may start; false if `stop` was set meanwhile.
    pub async fn admit(&self, bytes: u64, stop: &AtomicBool) -> bool {
        let now = Instant::now();
        let start = [
            self.objects.as_ref().map(|r| r.reserve(1.0, now)),
            self.bytes.as_ref().map(|r| r.reserve(bytes as f64, now)),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now);
        while Instant::now() < start {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            let nap = (start - Instant::now()).min(STOP_CHECK);
            tokio::time::sleep(nap).await;
        }
        !stop.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_spaced_by_the_rate() {
        let rate = Rate::new(10).unwrap();
        let now = Instant::now();
        let first = rate.reserve(1.0, now);
        let second = rate.reserve(1.0, now);
        let third = rate.reserve(5.0, now);
        assert_eq!(first, now);
        assert_eq!(second - first, Duration::from_millis(100));
        assert_eq!(third - second, Duration::from_millis(100));
        assert_eq!(rate.reserve(1.0, now) - third, Duration::from_millis(500));
    }

    #[test]
    fn zero_is_unlimited() {
        assert!(Rate::new(0).is_none());
    }
}
