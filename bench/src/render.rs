//! Render: host, addn_hosts and opts for large networks, from the same JSON,
//! by Leasehold's renderer and by neutron's own `Dnsmasq` driver (pinned
//! venv), files written on both sides. Each round parses the JSON, builds
//! the model and writes every network's three files; the figure is the
//! median round's CPU time (wall time is printed too).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use leasehold_core::model::{from_str, Network};
use leasehold_dnsmasq::config::DnsmasqConfig;
use leasehold_dnsmasq::files::{ensure_dir, write_atomic};
use leasehold_dnsmasq::render::{render_all, RuntimeFacts};
use serde_json::{json, Value};

use crate::table::{secs, Row, Table};
use crate::util::{median, process_cpu_time};

/// One network of `ports` dual-stack ports plus router and DHCP ports;
/// every fifth port has extra DHCP options. All fields the reference's
/// model reads are present, as neutron-server sends them.
pub fn network_json(id: usize, ports: usize) -> Value {
    let net_id = format!("{id:08x}-0000-4000-8000-000000000000");
    let s4 = format!("{id:08x}-4444-4000-8000-000000000000");
    let s6 = format!("{id:08x}-6666-4000-8000-000000000000");
    let mut list: Vec<Value> = Vec::with_capacity(ports + 2);
    list.push(
        json!({"id": format!("{id:08x}-aaaa-4000-8000-000000000001"),
        "mac_address": "fa:16:3e:ff:ff:01", "device_owner": "network:router_interface",
        "device_id": "router", "admin_state_up": true, "extra_dhcp_opts": [], "dns_assignment": [],
        "fixed_ips": [{"subnet_id": s4, "ip_address": "10.0.0.1"}]}),
    );
    list.push(
        json!({"id": format!("{id:08x}-aaaa-4000-8000-000000000002"),
        "mac_address": "fa:16:3e:ff:ff:02", "device_owner": "network:dhcp",
        "device_id": "dhcp", "admin_state_up": true, "extra_dhcp_opts": [], "dns_assignment": [],
        "fixed_ips": [{"subnet_id": s4, "ip_address": "10.0.0.2"},
                      {"subnet_id": s6, "ip_address": "2001:db8::2"}]}),
    );
    for i in 0..ports {
        let n = i + 10;
        let v4 = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
        let v6 = format!("2001:db8::{n:x}");
        let mac = format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 255,
            (n >> 8) & 255,
            n & 255
        );
        let opts = if i % 5 == 0 {
            json!([
                {"opt_name": "tag:ipxe,bootfile-name", "opt_value": "http://boot/ipxe", "ip_version": 4},
                {"opt_name": "dns-server", "opt_value": "[2001:db8::53]", "ip_version": 6},
            ])
        } else {
            json!([])
        };
        list.push(json!({
            "id": format!("{i:08x}-1111-4111-8111-{id:012x}"),
            "mac_address": mac, "device_owner": "compute:nova", "device_id": "vm",
            "admin_state_up": true,
            "fixed_ips": [{"subnet_id": s4, "ip_address": v4},
                          {"subnet_id": s6, "ip_address": v6}],
            "dns_assignment": [
                {"hostname": format!("vm-{i}"), "ip_address": v4, "fqdn": format!("vm-{i}.example.org.")},
                {"hostname": format!("vm-{i}"), "ip_address": v6, "fqdn": format!("vm-{i}.example.org.")}],
            "extra_dhcp_opts": opts,
        }));
    }
    json!({"id": net_id, "mtu": 1450, "admin_state_up": true,
        "subnets": [
            {"id": s4, "cidr": "10.0.0.0/8", "ip_version": 4, "gateway_ip": "10.0.0.1",
             "enable_dhcp": true, "dns_nameservers": ["10.0.0.53"],
             "host_routes": [{"destination": "172.16.0.0/12", "nexthop": "10.0.0.254"}],
             "ipv6_address_mode": null, "ipv6_ra_mode": null, "segment_id": null},
            {"id": s6, "cidr": "2001:db8::/64", "ip_version": 6, "gateway_ip": "2001:db8::1",
             "enable_dhcp": true, "dns_nameservers": [], "host_routes": [],
             "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful",
             "segment_id": null}],
        "ports": list})
}

/// Leasehold's rounds: parse, model, render, write the three files.
fn ours(raw: &[u8], confs: &Path, rounds: usize) -> Result<Rounds> {
    let config = DnsmasqConfig {
        dhcp_confs: confs.to_path_buf(),
        enable_isolated_metadata: true,
        ..Default::default()
    };
    let facts = RuntimeFacts {
        interface_name: "tap0".into(),
        dnsmasq_host_tag_support: Some(true),
        ..Default::default()
    };
    let (mut wall, mut cpu, mut parse) = (Vec::new(), Vec::new(), Vec::new());
    // Wall time per phase over all rounds: where the time goes.
    let mut phases = [0.0f64; 4];
    for _ in 0..rounds {
        let (w0, c0) = (Instant::now(), process_cpu_time());
        // Straight into the model (no intermediate Value), as the agent's
        // RPC layer does with a payload.
        let text = std::str::from_utf8(raw)?;
        let mut nets: Vec<Network> = from_str(text)?;
        phases[0] += w0.elapsed().as_secs_f64();
        let t = Instant::now();
        for net in &mut nets {
            net.check_structure()?;
            let _warnings = net.drop_bad_elements();
        }
        phases[1] += t.elapsed().as_secs_f64();
        parse.push(process_cpu_time() - c0);
        for net in nets {
            let t1 = Instant::now();
            let r = render_all(&net, &config, &facts);
            let t2 = Instant::now();
            let dir = confs.join(net.id.to_string());
            ensure_dir(&dir)?;
            write_atomic(&dir.join("host"), r.hosts.as_bytes())?;
            write_atomic(&dir.join("addn_hosts"), r.addn_hosts.as_bytes())?;
            write_atomic(&dir.join("opts"), r.opts.as_bytes())?;
            phases[2] += (t2 - t1).as_secs_f64();
            phases[3] += t2.elapsed().as_secs_f64();
        }
        wall.push(w0.elapsed().as_secs_f64());
        cpu.push(process_cpu_time() - c0);
    }
    let n = rounds.max(1) as f64;
    eprintln!(
        "  leasehold per round: JSON parse into the model {}, checks {}, render {}, write files {}",
        secs(phases[0] / n),
        secs(phases[1] / n),
        secs(phases[2] / n),
        secs(phases[3] / n)
    );
    Ok(Rounds { wall, cpu, parse })
}

/// CPU per round of only writing the files `ours` left in `confs` again,
/// each through a temporary file and a rename as both renderers do, with no
/// parsing or rendering: what file writes alone cost, the bound on how much
/// faster than the reference any renderer that writes the same files can be.
fn write_floor(confs: &Path, rounds: usize) -> Result<f64> {
    use std::io::Write;
    let mut files = Vec::new();
    for dir in std::fs::read_dir(confs)? {
        let dir = dir?.path();
        for name in ["host", "addn_hosts", "opts"] {
            let path = dir.join(name);
            files.push((std::fs::read(&path)?, dir.join(".floor-tmp"), path));
        }
    }
    let mut cpu = Vec::new();
    for _ in 0..rounds {
        let c0 = process_cpu_time();
        for (bytes, tmp, path) in &files {
            std::fs::File::create_new(tmp)?.write_all(bytes)?;
            std::fs::rename(tmp, path)?;
        }
        cpu.push(process_cpu_time() - c0);
    }
    Ok(median(&cpu))
}

/// Figures per round, in seconds.
struct Rounds {
    /// Wall time of the whole round.
    wall: Vec<f64>,
    /// CPU time of the whole round.
    cpu: Vec<f64>,
    /// CPU time of parsing the JSON into the model (and checking it).
    parse: Vec<f64>,
}

/// The reference's rounds, in its own Python process.
fn reference(venv: &Path, json_path: &Path, confs: &Path, rounds: usize) -> Result<Rounds> {
    let script = crate::util::repo_root().join("bench/reference/render_ref.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(json_path)
        .arg(rounds.to_string())
        .arg(confs)
        .output()
        .context("running the reference renderer")?;
    if !out.status.success() {
        bail!(
            "reference renderer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .unwrap_or_default(),
    )
    .context("reference output")?;
    let list = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    Ok(Rounds {
        wall: list("wall"),
        cpu: list("cpu"),
        parse: list("parse"),
    })
}

/// Compares every file both sides wrote; returns the names that differ.
fn differences(a: &Path, b: &Path) -> Vec<String> {
    let mut diff = Vec::new();
    let Ok(entries) = std::fs::read_dir(a) else {
        return vec!["(no output)".into()];
    };
    for e in entries.filter_map(Result::ok) {
        for f in ["host", "addn_hosts", "opts"] {
            let x = std::fs::read(e.path().join(f)).ok();
            let y = std::fs::read(b.join(e.file_name()).join(f)).ok();
            if x != y {
                diff.push(format!("{}/{f}", e.file_name().to_string_lossy()));
            }
        }
    }
    diff
}

/// Runs the three render cases and adds their rows.
pub fn run(table: &mut Table, venv: &Path, quick: bool) -> Result<()> {
    let cases: Vec<(&str, Vec<Value>, usize, usize)> = vec![
        (
            "1 network × 1,000 ports",
            vec![network_json(1, 1_000)],
            20,
            5,
        ),
        (
            "1 network × 10,000 ports",
            vec![network_json(2, 10_000)],
            10,
            3,
        ),
        (
            "1,000 networks × 10 ports",
            (0..1_000).map(|i| network_json(i + 10, 10)).collect(),
            10,
            3,
        ),
    ];
    for (name, nets, rounds_ours, rounds_ref) in cases {
        let (rounds_ours, rounds_ref) = if quick {
            (3, 1)
        } else {
            (rounds_ours, rounds_ref)
        };
        // On tmpfs: on this machine's ext4 each new inode costs about 1 ms
        // (both sides write through a temporary file and rename), which
        // would measure the file system rather than the renderers.
        let dir = tempfile::Builder::new()
            .prefix("leasehold-bench-render")
            .tempdir_in(tmpfs_or_tmp())?;
        let json_path = dir.path().join("networks.json");
        let raw = serde_json::to_vec(&nets)?;
        std::fs::write(&json_path, &raw)?;
        let (ours_dir, ref_dir) = (dir.path().join("ours"), dir.path().join("ref"));
        eprintln!("render: {name}");
        let o = ours(&raw, &ours_dir, rounds_ours)?;
        let r = reference(venv, &json_path, &ref_dir, rounds_ref)?;
        let diff = differences(&ours_dir, &ref_dir);
        if !diff.is_empty() {
            eprintln!(
                "  note: {} of the files differ from the reference's, e.g. {:?}",
                diff.len(),
                &diff[..diff.len().min(3)]
            );
        }
        let same = if diff.is_empty() {
            "same bytes"
        } else {
            "OUTPUT DIFFERS"
        };
        let (oc, rc) = (median(&o.cpu), median(&r.cpu));
        table.push(Row {
            what: format!(
                "render {name}: JSON → model → 3 files written, CPU/round (wall {} vs {}; {same})",
                secs(median(&o.wall)),
                secs(median(&r.wall)),
            ),
            ours: secs(oc),
            theirs: secs(rc),
            ratio: Some(rc / oc),
            goal: "≥ 100× faster".into(),
            met: Some(rc / oc >= 100.0),
        });
        // The same rounds without the JSON parse and model building.
        let ow: Vec<f64> = o.cpu.iter().zip(&o.parse).map(|(c, p)| c - p).collect();
        let rw: Vec<f64> = r.cpu.iter().zip(&r.parse).map(|(c, p)| c - p).collect();
        let (ow, rw) = (median(&ow), median(&rw));
        table.push(Row {
            what: format!("render {name}: model → 3 files written (no parse), CPU/round"),
            ours: secs(ow),
            theirs: secs(rw),
            ratio: Some(rw / ow),
            goal: "≥ 100× faster".into(),
            met: Some(rw / ow >= 100.0),
        });
        let floor = write_floor(&ours_dir, rounds_ours)?;
        table.push(Row {
            what: format!(
                "render {name}: the ratio's ceiling — the reference's round vs the same files only written (temporary file, rename; no parse, no render), CPU/round"
            ),
            ours: secs(floor),
            theirs: secs(rc),
            ratio: Some(rc / floor),
            goal: "-".into(),
            met: None,
        });
    }
    Ok(())
}

/// `/dev/shm` when it is there, else the temporary directory.
fn tmpfs_or_tmp() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
