//! How many requests Usher is serving right now: control state that overload shedding and
//! the shutdown drain act on. It lives here, not in the metrics registry; the
//! `usher_http_requests_in_flight` gauge reads it when `/metrics` is scraped.

use std::sync::atomic::{AtomicI64, Ordering};

static IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

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
}
