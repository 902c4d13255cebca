//! Every conformance vector in `shared/golden/*.json` rendered and compared
//! byte for byte with what Neutron produced.

use std::path::PathBuf;

use leasehold_core::model::Network;
use leasehold_core::options::{OptionSpec, Options, Origin};
use leasehold_dnsmasq::config::{DnsmasqConfig, OPTIONS};
use leasehold_dnsmasq::render::{self, render_all, Rendered, RuntimeFacts};
use leasehold_dnsmasq::sanitize::sanitize;
use serde_json::Value;

fn golden_dir() -> PathBuf {
    let shared = std::env::var_os("LEASEHOLD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")));
    shared.join("golden")
}

/// The options as the agent would have them: declared specs (plus the agent's
/// `state_path`) and the vector's values.
fn config_of(vector: &Value) -> Result<DnsmasqConfig, String> {
    let mut o = Options::new();
    o.declare(&[OptionSpec::str(
        "DEFAULT",
        "state_path",
        Some("/var/lib/neutron"),
        "state",
    )]);
    o.declare(OPTIONS);
    if let Some(map) = vector["config"].as_object() {
        for (k, v) in map {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            o.set("DEFAULT", k, text, Origin::Program);
        }
    }
    DnsmasqConfig::from_options(&o).map_err(|e| e.to_string())
}

/// A line diff that shows where two texts part.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) =
        (expected.split('\n').collect(), actual.split('\n').collect());
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => out.push_str(&format!("    {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  - {x:?}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  + {y:?}\n"));
                }
            }
        }
    }
    out
}

fn check(name: &str, vector: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let config = match config_of(vector) {
        Ok(c) => c,
        Err(e) => return vec![format!("{name}: config: {e}")],
    };
    let facts: RuntimeFacts = match serde_json::from_value(vector["runtime"].clone()) {
        Ok(f) => f,
        Err(e) => return vec![format!("{name}: runtime: {e}")],
    };
    let network = match Network::from_json_value(vector["network"].clone()) {
        Ok((n, w)) => {
            // The core model drops fixed IPs outside their subnet (the HA
            // port's 169.254.169.20 in the dual-stack fakes); such ports get no
            // entry in Neutron either, so the output is unchanged.
            for w in w {
                eprintln!("{name}: model warning: {w}");
            }
            n
        }
        Err(e) => return vec![format!("{name}: network does not parse: {e}")],
    };
    let r: Rendered = render_all(&network, &config, &facts);
    // The single-file functions must agree with the fused render_all.
    let (clean, _) = sanitize(&network, &config);
    for (what, single, fused) in [
        ("hosts", render::hosts(&clean, &config, &facts), &r.hosts),
        (
            "addn_hosts",
            render::addn_hosts(&clean, &config),
            &r.addn_hosts,
        ),
        ("opts", render::opts(&clean, &config, &facts), &r.opts),
        ("leases", render::leases(&clean, &config, &facts), &r.leases),
    ] {
        if &single != fused {
            failures.push(format!(
                "{name}: single-file {what} differs from render_all"
            ));
        }
    }
    if render::cmdline(&clean, &config, &facts) != r.cmdline {
        failures.push(format!(
            "{name}: single-file cmdline differs from render_all"
        ));
    }
    // Warnings do not change bytes (e.g. the newline cut of the CVE fix warns).
    for w in &r.warnings {
        eprintln!("{name}: render warning: {w}");
    }
    let Some(expected) = vector["expected"].as_object() else {
        return vec![format!("{name}: no expected object")];
    };
    for (key, want) in expected {
        let got = match key.as_str() {
            "hosts" => &r.hosts,
            "addn_hosts" => &r.addn_hosts,
            "opts" => &r.opts,
            "leases" => &r.leases,
            "cmdline" => {
                let want: Vec<String> = serde_json::from_value(want.clone()).unwrap_or_default();
                if want != r.cmdline {
                    failures.push(format!(
                        "{name}: cmdline differs:\n{}",
                        diff(&want.join("\n"), &r.cmdline.join("\n"))
                    ));
                }
                continue;
            }
            other => {
                failures.push(format!("{name}: unknown expected key {other}"));
                continue;
            }
        };
        let want = want.as_str().unwrap_or_default();
        if want != got {
            failures.push(format!("{name}: {key} differs:\n{}", diff(want, got)));
        }
    }
    failures
}

#[test]
fn every_golden_vector_renders_byte_exact() {
    let dir = golden_dir();
    let mut names = Vec::new();
    let mut failures = Vec::new();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let vector: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        failures.extend(check(&name, &vector));
        names.push(name);
    }
    assert!(!names.is_empty(), "no vectors found in {}", dir.display());
    eprintln!("checked {} vectors: {}", names.len(), names.join(", "));
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
