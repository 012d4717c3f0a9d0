//! The command line: `run` (the default), `check`, `routes` and `demo`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "usher",
    version,
    about = "A programmable edge proxy on Pingora, driven by one hot-reloadable routes.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve traffic with the given configuration (the default command).
    Run {
        #[arg(long, short, default_value = "routes.yaml")]
        config: PathBuf,
        /// Worker threads for the public listener; overrides `server.threads`.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a configuration like `nginx -t`: a summary on success, every error otherwise.
    /// What the environment must supply (secrets, key and certificate files) is checked too,
    /// but reported as warnings unless `--strict`, so CI can check a file without secrets.
    Check {
        config: PathBuf,
        /// Treat missing secrets and files as errors, as startup does.
        #[arg(long)]
        strict: bool,
    },
    /// Print the route table: what matches, where it goes, and who may call it.
    Routes { config: PathBuf },
    /// Ask a running Usher's admin listener whether it is ready: exit 0 if so, 1 if not.
    /// For container health checks that have no shell tools.
    Probe {
        /// Read the admin address from this configuration (0.0.0.0 means 127.0.0.1).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The admin address, when no configuration is given.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: String,
        /// The endpoint to ask.
        #[arg(long, default_value = "/health/ready")]
        path: String,
    },
    /// Run Usher on the shipped routes.yaml with in-process demo upstreams.
    Demo {
        /// Public listener port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Admin listener port on 127.0.0.1.
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
    },
}
