//! [`bare_proxy`](bare_proxy.rs) on mimalloc, the allocator Usher ships with: the load
//! benchmark measures bare Pingora with both allocators and compares Usher with the better.
//!
//! `bare_proxy_mimalloc <listen addr> <upstream addr> <threads>`

#[path = "bare_proxy.rs"]
mod bare_proxy;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    bare_proxy::main();
}
