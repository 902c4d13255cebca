//! The bodies of Leasehold's fuzz targets, one function per target. The
//! cargo-fuzz binaries in `fuzz_targets/` call them, and
//! `agent/tests/fuzz_targets.rs` runs them in plain `cargo test` over the
//! checked-in corpus, the kept regressions and a bounded random loop. Each
//! must return for any input and panics only when an invariant breaks.

use leasehold_agent::config::{ini, mask_url};
use leasehold_agent::notification;
use leasehold_agent::rabbit::envelope;
use leasehold_core::model::Network;
use leasehold_dnsmasq::config::DnsmasqConfig;
use leasehold_dnsmasq::render::{render_all, RuntimeFacts};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: name and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("envelope", envelope),
    ("notification", notification),
    ("model", model),
    ("ini", ini),
    ("render", render),
];

/// An id that reached the agent must be a safe single path component.
fn assert_safe_id(id: &str) {
    assert!(!id.is_empty(), "empty id accepted");
    assert!(
        !id.contains('/') && !id.contains("..") && !id.contains('\0'),
        "unsafe id accepted: {id:?}"
    );
}

/// An AMQP body as the agent's consumer sees it: the oslo envelope, the
/// request (or reply) inside, and the notification decoded from it.
pub fn envelope(data: &[u8]) {
    let _ = envelope::decode_reply(data);
    let Ok(map) = envelope::decode(data) else {
        return;
    };
    if let Ok(request) = envelope::parse_request(map) {
        if let Ok(event) = notification::decode(&request.method, request.args) {
            if let Some(id) = event.notification.network_id() {
                assert_safe_id(id.as_str());
            }
        }
    }
}

const METHODS: &[&str] = &[
    "network_create_end",
    "network_update_end",
    "network_delete_end",
    "subnet_create_end",
    "subnet_update_end",
    "subnet_delete_end",
    "port_create_end",
    "port_update_end",
    "port_delete_end",
    "agent_updated",
    "unknown_method",
];

/// A notification's args: the first byte picks the method, the rest is JSON.
pub fn notification(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[*first as usize % METHODS.len()];
    let Ok(args) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    if let Ok(event) = notification::decode(method, args) {
        if let Some(id) = event.notification.network_id() {
            assert_safe_id(id.as_str());
        }
    }
}

/// A network dict as `get_network_info` returns it: the model's checks.
pub fn model(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((net, _warnings)) = Network::from_json_str(text) {
        assert_safe_id(net.id.as_str());
        for p in &net.ports {
            assert_safe_id(p.id.as_str());
        }
        for s in &net.subnets {
            assert_safe_id(s.id.as_str());
        }
    }
}

/// An INI file, and the masking of any URL-looking value in it.
pub fn ini(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(assignments) = ini::parse(&text) {
        for a in assignments {
            assert!(!a.key.contains('\n'), "a key with a newline: {:?}", a.key);
            let masked = mask_url(&a.value);
            // A password in user:password@ never survives masking.
            if let Some((userinfo, _)) = a
                .value
                .strip_prefix("rabbit://")
                .and_then(|r| r.split_once('@'))
            {
                if let Some((_, pw)) = userinfo.split_once(':') {
                    // (Unless the same text is also a host, port or path.)
                    if pw.len() >= 4 && !pw.contains('*') && a.value.matches(pw).count() == 1 {
                        assert!(!masked.contains(pw), "{masked:?} shows {pw:?}");
                    }
                }
            }
        }
    }
}

/// A network through the renderers: hosts and addn_hosts get at most one
/// line per fixed IP (an injected newline would add one), and no NUL.
pub fn render(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((net, _)) = Network::from_json_str(text) else {
        return;
    };
    let facts = RuntimeFacts {
        interface_name: "tapfuzz".into(),
        dnsmasq_host_tag_support: Some(data.len().is_multiple_of(2)),
        ..RuntimeFacts::default()
    };
    let r = render_all(&net, &DnsmasqConfig::default(), &facts);
    let ips: usize = net.ports.iter().map(|p| p.fixed_ips.len()).sum();
    for (name, file) in [("host", &r.hosts), ("addn_hosts", &r.addn_hosts)] {
        let lines = file.lines().count();
        assert!(
            lines <= ips,
            "{name} has {lines} lines for {ips} fixed IPs:\n{file}"
        );
    }
    for (name, file) in [
        ("host", &r.hosts),
        ("addn_hosts", &r.addn_hosts),
        ("opts", &r.opts),
    ] {
        assert!(!file.contains('\0'), "{name} has a NUL");
    }
    for arg in &r.cmdline {
        assert!(!arg.contains('\n') && !arg.contains('\0'), "argv {arg:?}");
    }
}
