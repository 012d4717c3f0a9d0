//! [`bare_proxy`](bare_proxy.rs) with a counting allocator (support/counting.rs): the
//! allocations per request any Pingora proxy makes, beside Usher's in
//! `benches/load/allocations.py`.
//!
//! `COUNT_ALLOCATIONS_TO=<file> bare_proxy_counting <listen addr> <upstream addr> <threads>`

#[path = "bare_proxy.rs"]
mod bare_proxy;
#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

fn main() {
    counting::report_to_file();
    bare_proxy::main();
}
