//! Runs the Python connector runtime's own unit tests (stdlib unittest) as part of `cargo test`,
//! so the README's single test command covers the runtime the scaffold copies into connectors.

use std::process::Command;

#[test]
fn python_runtime_unit_tests_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "tests/python", "-t", "tests/python", "-v"])
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 must be installed to run the runtime tests");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // unittest reports on stderr; show it so a failure is readable from `cargo test` output.
    eprintln!("{stderr}");
    assert!(out.status.success(), "the Python runtime's unit tests failed");
    let ran = stderr
        .lines()
        .find_map(|l| l.strip_prefix("Ran ").and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse::<u32>().ok()))
        .unwrap_or(0);
    assert!(ran >= 30, "expected the full runtime suite, but unittest ran only {ran} tests");
}
