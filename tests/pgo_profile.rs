//! The shipped profile, `pgo/usher.profdata`, guides every release build of the image
//! (docs/benchmarks.md#profile-guided-build-2026-12-03). rustc only warns about a profile
//! it cannot read and builds without it, so a corrupt profile, or one written by an LLVM
//! newer than this toolchain's, would ship an unguided binary without failing anything:
//! this test fails instead.

use std::path::Path;
use std::process::Command;

/// rustc's diagnostics for an empty program optimized with `profile`.
fn compile_with(profile: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("probe.rs");
    std::fs::write(&source, "fn main() {}\n").unwrap();
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-O")
        .arg(format!("-Cprofile-use={}", profile.display()))
        .args(["--emit=obj", "-o"])
        .arg(dir.path().join("probe.o"))
        .arg(&source)
        .output()
        .expect("running rustc");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "rustc failed: {stderr}");
    stderr
}

#[test]
fn this_toolchain_reads_the_shipped_profile_without_a_warning() {
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("pgo/usher.profdata");
    let stderr = compile_with(&profile);
    assert!(
        stderr.trim().is_empty(),
        "rustc warned about the profile: {stderr}"
    );
}

#[test]
fn an_unreadable_profile_is_a_warning_the_check_above_sees() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.profdata");
    std::fs::write(&bad, b"not a profile").unwrap();
    let stderr = compile_with(&bad);
    assert!(
        stderr.contains("bad.profdata"),
        "rustc said nothing about a bad profile: {stderr}"
    );
}
