//! The global allocator: mimalloc, asked the way its fast path is written for.
//!
//! The `mimalloc` crate hands every allocation to `mi_malloc_aligned`, whatever its
//! alignment. In mimalloc 3 that call takes its fast path only for blocks of at most 1 KiB
//! whose free block happens to be aligned; a larger block with an ordinary alignment (a
//! boxed request future of 10 KiB, a 1.6 KiB phase future, a grown buffer) falls through to
//! over-allocation, which also marks the page as holding interior pointers and so slows
//! every later free from it. Every mimalloc block is a whole number of words from a 16-byte
//! aligned start, so an alignment of a word or less needs no help: such a layout goes to
//! `mi_malloc`, and only a larger alignment to the aligned calls
//! (docs/benchmarks.md, "The allocator's aligned path").
//!
//! Not part of the library, which forbids `unsafe`: the binary and the benchmarks' builds
//! of bare Pingora include this file.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every mimalloc block has: block sizes are whole words.
const WORD: usize = std::mem::size_of::<usize>();

pub struct Mimalloc;

// SAFETY: each call goes to the mimalloc function for that job; a layout whose alignment
// exceeds a word always takes mimalloc's aligned variant, and every block, however it was
// made, is freed by `mi_free` (mimalloc's contract for all of its allocation calls).
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            mi_malloc(layout.size()).cast()
        } else {
            mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            mi_zalloc(layout.size()).cast()
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around mimalloc's size classes and its 1 KiB small-block limit, up to a block
    /// of its large pages.
    fn sizes() -> impl Iterator<Item = usize> {
        (1..=64).chain((1000..=1100).step_by(8)).chain([
            1616, 1808, 2464, 3824, 4095, 4096, 4097, 10_680, 65_536, 300_001,
        ])
    }

    fn check(layout: Layout, ptr: *mut u8) {
        assert!(!ptr.is_null(), "{layout:?}");
        assert_eq!(ptr as usize % layout.align(), 0, "{layout:?} at {ptr:p}");
    }

    #[test]
    fn blocks_are_aligned_filled_kept_on_growth_and_freed() {
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in sizes() {
                let size = size.next_multiple_of(align);
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let zeroed = Mimalloc.alloc_zeroed(layout);
                    check(layout, zeroed);
                    assert!(std::slice::from_raw_parts(zeroed, size)
                        .iter()
                        .all(|&b| b == 0));
                    Mimalloc.dealloc(zeroed, layout);

                    let ptr = Mimalloc.alloc(layout);
                    check(layout, ptr);
                    for i in 0..size {
                        *ptr.add(i) = i as u8;
                    }
                    let grown = Mimalloc.realloc(ptr, layout, size * 3);
                    let grown_layout = Layout::from_size_align(size * 3, align).unwrap();
                    check(grown_layout, grown);
                    for i in 0..size {
                        assert_eq!(*grown.add(i), i as u8, "{layout:?} byte {i} after growth");
                    }
                    let shrunk = Mimalloc.realloc(grown, grown_layout, align);
                    check(Layout::from_size_align(align, align).unwrap(), shrunk);
                    assert_eq!(*shrunk, 0);
                    Mimalloc.dealloc(shrunk, Layout::from_size_align(align, align).unwrap());
                }
            }
        }
    }

    /// Many live blocks of one class at once, so a page fills and the next is taken: each
    /// keeps its alignment and its contents.
    #[test]
    fn live_blocks_do_not_overlap() {
        for (size, align) in [(24, 8), (1616, 8), (10_680, 8), (48, 16), (192, 64)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let blocks: Vec<*mut u8> = (0..2_000)
                .map(|n| unsafe {
                    let ptr = Mimalloc.alloc(layout);
                    check(layout, ptr);
                    std::ptr::write_bytes(ptr, n as u8, size);
                    ptr
                })
                .collect();
            for (n, &ptr) in blocks.iter().enumerate() {
                let block = unsafe { std::slice::from_raw_parts(ptr, size) };
                assert!(block.iter().all(|&b| b == n as u8), "{layout:?} block {n}");
                unsafe { Mimalloc.dealloc(ptr, layout) };
            }
        }
    }
}
