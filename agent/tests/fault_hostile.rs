//! Hostile input over RabbitMQ to a running agent: every case of
//! `agent/tests/hostile/` (plus two generated ones: deep nesting and a huge
//! list) is sent to the agent binary through a real oslo.messaging peer on a
//! private vhost. Each must be rejected (or, for a network the server
//! describes, the hostile element left out) with a log line naming the
//! field; the agent keeps running, touches no file outside its state
//! directory, and keeps serving the good network.

mod fault_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fault_support::{tail, Net, Standalone};
use leasehold_testkit::rabbit::{OsloPeer, Vhost};
use leasehold_testkit::{privileged, wait_for};
use serde_json::{json, Value};

/// One hostile case as checked in.
struct Case {
    name: String,
    doc: Value,
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("hostile corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    let mut cases: Vec<Case> = names
        .into_iter()
        .map(|p| Case {
            name: p.file_name().unwrap().to_string_lossy().into_owned(),
            doc: serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("case is JSON"),
        })
        .collect();
    // Too big to check in usefully; made here.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let inner = format!(r#"{{"method": "network_delete_end", "args": {{"payload": {deep}}}}}"#);
    let body = serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner})).unwrap();
    cases.push(Case {
        name: "generated: 100,000 levels of nesting".into(),
        doc: json!({"raw_b64": b64(&body), "log": "does not decode"}),
    });
    let mut ips: Vec<Value> = (0..200_000)
        .map(|i| json!({"ip_address": format!("198.51.{}.{}", (i / 250) % 250, i % 250)}))
        .collect();
    ips.push(json!({"ip_address": "not-an-address"}));
    cases.push(Case {
        name: "generated: a list of 200,001 addresses, the last one bad".into(),
        doc: json!({"cast": "port_delete_end", "payload": {"port_id": "hostile-huge", "network_id": "$GOOD", "fixed_ips": ips},
                    "log": "fixed_ips[200000]"}),
    });
    cases
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Replaces `$GOOD` and `$NET` in every string of `v`.
fn substitute(v: &Value, good: &str, net: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("$GOOD", good).replace("$NET", net)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, good, net)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, good, net)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every file under `root` (not under `skip`) with its size and mtime.
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, (u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if skip.iter().any(|s| p.starts_with(s)) {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p, (m.size(), m.mtime_nsec() + m.mtime() * 1_000_000_000));
        }
    }
    out
}

#[test]
fn fault_hostile_messages_over_rabbitmq_rejected_naming_the_field() {
    if !privileged("fault_hostile") {
        return;
    }
    let vhost = Vhost::create();
    let mut peer = OsloPeer::start(&vhost.url());
    let good = Net::new(0x70, 2);
    peer.command(json!({"set_network": good.json()}));
    let mut s = Standalone::with_transport(&vhost.url(), "rpc_response_timeout = 10");
    s.remember(&good.id);
    s.start();
    s.assert_converged(&[&good], Duration::from_secs(60));
    s.assert_lease(&good, 0);

    let state = s.dir.path().join("state");
    let log = s.dir.path().join("agent.log");
    let before = snapshot(s.dir.path(), &[&state, &log]);

    for case in corpus() {
        let net_id = uuid::Uuid::new_v4().to_string();
        let doc = substitute(&case.doc, &good.id, &net_id);
        let mark = s.log().len();
        if let Some(method) = doc.get("cast").and_then(Value::as_str) {
            peer.command(json!({"cast": method, "host": s.host, "payload": doc["payload"]}));
        } else if let Some(body) = doc.get("raw_b64") {
            peer.command(
                json!({"raw": {"routing_key": format!("dhcp_agent.{}", s.host), "body_b64": body}}),
            );
        } else if let Some(network) = doc.get("network") {
            s.remember(&net_id);
            peer.command(json!({"set_network": network}));
            peer.command(json!({"cast": "network_create_end", "host": s.host, "payload": {"network": {"id": net_id}}}));
        } else {
            panic!("{}: no cast, raw_b64 or network", case.name);
        }
        let expected = doc["log"].as_str().expect("log").to_string();
        let seen = wait_for(Duration::from_secs(15), || {
            let text = s.log();
            text.get(mark..).and_then(|t| {
                t.lines()
                    .find(|l| l.contains(&expected))
                    .map(str::to_string)
            })
        });
        assert!(
            seen.is_some(),
            "{}: no log line naming {expected:?}\n{}",
            case.name,
            tail(&s.log(), 20)
        );
        eprintln!("{}: {}", case.name, seen.unwrap_or_default().trim());
        assert!(
            s.alive(),
            "{}: the agent died\n{}",
            case.name,
            tail(&s.log(), 30)
        );
        if let Some(bad) = doc.get("not_in_files").and_then(Value::as_str) {
            // If the network is served, its files carry none of the injected text.
            std::thread::sleep(Duration::from_millis(500));
            let dir = s.conf_dir(&net_id);
            for f in ["host", "addn_hosts", "opts"] {
                let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                assert!(
                    !text.contains(bad),
                    "{}: {f} has {bad:?}:\n{text}",
                    case.name
                );
            }
        }
        if doc.get("network").is_some() {
            peer.command(json!({"delete_network": net_id}));
            peer.command(json!({"cast": "network_delete_end", "host": s.host, "payload": {"network_id": net_id}}));
        }
    }

    // Nothing outside the state directory changed, no traversal target exists.
    assert_eq!(before, snapshot(s.dir.path(), &[&state, &log]));
    assert!(!Path::new("/tmp/lh-hostile-evil").exists());
    assert!(!Path::new("/tmp/lh-hostile-script").exists());
    // The good network is served as before; the hostile ones left nothing.
    s.assert_converged(&[&good], Duration::from_secs(30));
    s.assert_lease(&good, 1);
    assert!(s.alive());
}
