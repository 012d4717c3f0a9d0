//! `usher run` with a counting allocator (support/counting.rs), for
//! `benches/load/allocations.py`: allocations per request, on the same code Usher ships.
//!
//! `COUNT_ALLOCATIONS_TO=<file> usher_counting <routes.yaml>`

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

fn main() {
    let Some(config) = std::env::args_os().nth(1) else {
        eprintln!("usage: usher_counting <routes.yaml>");
        std::process::exit(2);
    };
    counting::report_to_file();
    std::process::exit(usher::commands::run::run(config.as_ref(), None));
}
