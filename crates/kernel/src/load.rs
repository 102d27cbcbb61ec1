//! How busy this node is answering requests, so background work (jobs)
//! can step aside: a burst of orders makes a burst of mail and webhook
//! jobs, and those must not slow the orders and scans that made them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

/// Requests in flight at or above this make the node busy.
pub const BUSY_AT: usize = 8;
/// The longest a job worker waits between jobs while the node is busy:
/// background work slows down under load but never stops.
pub const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Requests being handled on this node (handler time only: a live stream
/// counts while its handler runs, not while its body streams).
#[derive(Clone, Default)]
pub struct Load(Arc<AtomicUsize>);

/// Counts one request while it lives.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Load {
    pub fn enter(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// How long background work should wait before its next item: nothing
    /// when the node is quiet, longer the busier it is, at most
    /// [`MAX_PAUSE`].
    pub fn pause(&self) -> Option<Duration> {
        let n = self.in_flight();
        (n >= BUSY_AT).then(|| (MAX_PAUSE * (n / BUSY_AT) as u32 / 4).min(MAX_PAUSE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_nodes_do_not_pause_and_busy_ones_pause_more_up_to_a_bound() {
        let load = Load::default();
        assert_eq!(load.pause(), None);
        let guards: Vec<_> = (0..BUSY_AT).map(|_| load.enter()).collect();
        let some = load.pause().unwrap();
        assert!(some > Duration::ZERO && some <= MAX_PAUSE);
        let more: Vec<_> = (0..10 * BUSY_AT).map(|_| load.enter()).collect();
        assert_eq!(load.pause(), Some(MAX_PAUSE));
        drop(more);
        drop(guards);
        assert_eq!(load.in_flight(), 0);
        assert_eq!(load.pause(), None);
    }
}
