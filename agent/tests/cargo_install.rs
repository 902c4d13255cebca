//! `cargo install --path agent` works: the agent is installed into a throwaway
//! root, as the README says it can be, and the installed binary runs.
//!
//! The install shares this build's target directory, profile and target, so
//! it reuses what `cargo test` has just built (the agent's dependencies and
//! features are the same without dev-dependencies) and costs about a second.
//! `--offline` because `cargo test` has fetched every crate the agent needs;
//! `--locked` because that is how an operator should install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The install must not take longer than this, even when it has to compile.
const LIMIT: Duration = Duration::from_secs(900);

/// Where this test binary's `cargo test` built: target directory, profile
/// (`--profile` name) and target triple when one was given.
fn this_build() -> (PathBuf, String, Option<String>) {
    // <target-dir>/tmp, whatever the profile or triple.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target-dir>/tmp")
        .to_path_buf();
    // <target-dir>[/<triple>]/<profile dir>/leasehold-agent
    let bin = Path::new(env!("CARGO_BIN_EXE_leasehold-agent"));
    let profile_dir = bin.parent().expect("the binary's directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!("cannot tell the profile from {}", bin.display()),
    };
    let above = profile_dir
        .parent()
        .expect("the profile directory's parent");
    let triple = (above != target_dir).then(|| {
        above
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a target triple directory")
            .to_string()
    });
    (target_dir, profile, triple)
}

#[test]
fn cargo_install_path_agent_installs_a_binary_that_runs() {
    let agent = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (target_dir, profile, triple) = this_build();
    let root = tempfile::tempdir().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let mut install = Command::new(cargo);
    install
        .arg("install")
        .arg("--path")
        .arg(agent)
        .arg("--root")
        .arg(root.path())
        .args(["--locked", "--offline", "--profile", &profile])
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(triple) = &triple {
        install.args(["--target", triple]);
    }
    let started = Instant::now();
    let mut child = install.spawn().expect("cargo runs");
    // Read the output while waiting, so a full pipe cannot stall cargo.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cargo install took over {LIMIT:?}: {}",
                reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let log = reader.join().unwrap_or_default();
    assert!(
        status.success(),
        "cargo install --path {} failed ({status}); an --offline failure means a crate the \
         agent needs was not fetched by this build:\n{log}",
        agent.display()
    );
    eprintln!("cargo install --path agent took {took:?}");

    let installed = root.path().join("bin/leasehold-agent");
    let version = Command::new(&installed)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", installed.display()));
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("leasehold-agent {}", env!("CARGO_PKG_VERSION"))
    );
    // The built-in drivers registered themselves in the installed binary too.
    let drivers = Command::new(&installed)
        .arg("drivers")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&drivers.stdout);
    assert!(drivers.status.success(), "{listing}");
    for name in ["dnsmasq", "openvswitch", "linuxbridge", "null"] {
        assert!(
            listing.lines().any(|l| l.trim_start().starts_with(name)),
            "{name} missing from the installed binary's drivers:\n{listing}"
        );
    }
}
