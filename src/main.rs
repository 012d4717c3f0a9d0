//! CLI wiring only: parse the arguments and hand over to the command.

use clap::Parser;
use usher::cli::{Cli, Command};
use usher::commands;

mod allocator;

/// mimalloc instead of the system allocator: the proxy allocates and frees small buffers
/// on every request, and glibc's malloc was a tenth of Usher's CPU profile under load
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command.unwrap_or(Command::Run {
        config: "routes.yaml".into(),
        threads: None,
    }) {
        Command::Run { config, threads } => commands::run::run(&config, threads),
        Command::Check { config, strict } => commands::check::check(&config, strict),
        Command::Routes { config } => commands::routes::routes(&config),
        Command::Demo { port, admin_port } => commands::demo::demo(port, admin_port),
        Command::Probe {
            config,
            admin,
            path,
        } => commands::probe::probe(config.as_deref(), &admin, &path),
    };
    std::process::exit(code);
}
