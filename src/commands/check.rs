//! `usher check FILE`: validate like `nginx -t`.

use std::path::Path;

pub fn check(path: &Path) -> i32 {
    match super::prepare_file(path) {
        Ok(prepared) => {
            let config = prepared.config;
            let public = config
                .routes
                .iter()
                .filter(|r| !matches!(r.access, crate::config::Access::Authenticated))
                .count();
            println!(
                "{}: ok: {} routes ({} with public paths), {} upstreams, hash {}",
                path.display(),
                config.routes.len(),
                public,
                config.upstreams.len(),
                config.hash
            );
            0
        }
        Err(errors) => {
            eprint!("{errors}");
            let count = errors.0.len();
            eprintln!(
                "{}: {count} error{}",
                path.display(),
                if count == 1 { "" } else { "s" }
            );
            1
        }
    }
}
