//! Names the build in `usher_build_info` and `/health`: the git revision (when built from
//! a checkout; `USHER_GIT_REVISION` overrides it, as a container build passes it) and the
//! Pingora version the lock file pins.

fn main() {
    println!("cargo:rerun-if-env-changed=USHER_GIT_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let revision = std::env::var("USHER_GIT_REVISION").ok().or_else(|| {
        let output = std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=USHER_GIT_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let pingora = lock
        .split("[[package]]")
        .find(|package| package.contains("name = \"pingora\"\n"))
        .and_then(|package| package.lines().find(|l| l.starts_with("version = ")))
        .map(|line| {
            line.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=USHER_PINGORA_VERSION={pingora}");
}
