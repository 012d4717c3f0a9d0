//! How much Usher is holding right now: the requests it is serving (which overload shedding
//! and the shutdown drain act on) and the bytes of request bodies it buffers (bounded by
//! `limits.max_buffered_bytes`). Control state, not metrics: the
//! `usher_http_requests_in_flight` and `usher_request_body_buffered_bytes` gauges read it
//! when `/metrics` is scraped.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);
static BUFFERED: AtomicU64 = AtomicU64::new(0);

/// Bytes reserved by buffered request bodies now.
pub fn bytes_buffered() -> u64 {
    BUFFERED.load(Ordering::Relaxed)
}

/// Room for one request's buffered body, held until it is dropped.
#[derive(Debug)]
pub struct BufferedBody(u64);

impl BufferedBody {
    /// Reserves `bytes`, unless all buffered bodies would then hold more than `ceiling`.
    pub fn reserve(bytes: u64, ceiling: u64) -> Option<Self> {
        BUFFERED
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|total| *total <= ceiling)
            })
            .ok()
            .map(|_| BufferedBody(bytes))
    }
}

impl Drop for BufferedBody {
    fn drop(&mut self) {
        BUFFERED.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// Requests received and not yet finished.
pub fn requests_in_flight() -> i64 {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// One request, counted for as long as this lives.
pub struct InFlightRequest(());

impl InFlightRequest {
    pub fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlightRequest(())
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_while_a_request_lives() {
        let before = requests_in_flight();
        let request = InFlightRequest::start();
        assert!(requests_in_flight() > before);
        drop(request);
    }

    #[test]
    fn buffered_bodies_stay_under_their_ceiling() {
        let ceiling = u64::MAX / 2;
        let first = BufferedBody::reserve(ceiling - bytes_buffered() - 10, ceiling).unwrap();
        assert!(
            BufferedBody::reserve(11, ceiling).is_none(),
            "over the ceiling"
        );
        let fits = BufferedBody::reserve(10, ceiling).expect("exactly at the ceiling");
        drop((first, fits));
        assert!(
            BufferedBody::reserve(11, ceiling).is_some(),
            "room again once given back"
        );
    }
}
