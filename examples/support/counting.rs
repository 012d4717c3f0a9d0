//! A global allocator that counts allocations and the bytes asked for, then hands the work
//! to Usher's allocator (src/allocator.rs). The counting builds write their totals to the
//! file named by `COUNT_ALLOCATIONS_TO` every 50 ms, for `benches/load/allocations.py` to read
//! before and after a fixed number of requests.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[path = "../../src/allocator.rs"]
mod allocator;

pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on unchanged to Usher's allocator; the counters
// are the only addition.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        allocator::Mimalloc.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        allocator::Mimalloc.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        allocator::Mimalloc.dealloc(ptr, layout)
    }

    /// A reallocation is counted as an allocation: it may move the block, and it costs
    /// about as much.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        allocator::Mimalloc.realloc(ptr, layout, new_size)
    }
}

fn count(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
}

/// Writes `<allocations> <bytes>` to `$COUNT_ALLOCATIONS_TO` every 50 ms, from a thread of
/// its own (which allocates a little itself: a few allocations per write, counted too).
pub fn report_to_file() {
    let Some(path) = std::env::var_os("COUNT_ALLOCATIONS_TO") else {
        return;
    };
    std::thread::spawn(move || loop {
        let line = format!(
            "{} {}\n",
            ALLOCATIONS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed)
        );
        let temporary = std::path::Path::new(&path).with_extension("tmp");
        if std::fs::write(&temporary, line).is_ok() {
            let _ = std::fs::rename(&temporary, &path);
        }
        std::thread::sleep(Duration::from_millis(50));
    });
}
