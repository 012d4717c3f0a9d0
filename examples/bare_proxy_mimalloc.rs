//! [`bare_proxy`](bare_proxy.rs) on mimalloc, asked the way Usher asks it
//! (src/allocator.rs): the load benchmark measures bare Pingora with both allocators and
//! compares Usher with the better.
//!
//! `bare_proxy_mimalloc <listen addr> <upstream addr> <threads>`

#[path = "bare_proxy.rs"]
mod bare_proxy;

#[path = "../src/allocator.rs"]
mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

fn main() {
    bare_proxy::main();
}
