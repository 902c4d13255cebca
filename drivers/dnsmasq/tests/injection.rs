//! Hostile input must not add a line, directive or option to any dnsmasq file
//! or argument: each hostile element is left out (or cut, where Neutron cuts),
//! a warning names the port and field, and the rest of the network renders.

use std::net::IpAddr;

use leasehold_core::model::Network;
use leasehold_core::options::{OptionSpec, Options, Origin};
use leasehold_dnsmasq::config::{DnsmasqConfig, OPTIONS};
use leasehold_dnsmasq::render::{self, render_all, Rendered, RuntimeFacts};
use leasehold_dnsmasq::sanitize::sanitize;
use serde_json::{json, Value};

const NET: &str = "net-1";
const GOOD_HOST_V4: &str = "fa:16:3e:00:00:01,vm1.example.org.,198.51.100.10,set:port-good1\n";

fn base_ports() -> Vec<Value> {
    vec![
        json!({"id": "good1", "mac_address": "fa:16:3e:00:00:01", "device_owner": "compute:nova",
               "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.51.100.10"},
                             {"subnet_id": "s6", "ip_address": "2001:db8::10"}],
               "dns_assignment": [
                   {"hostname": "vm1", "ip_address": "198.51.100.10", "fqdn": "vm1.example.org."},
                   {"hostname": "vm1", "ip_address": "2001:db8::10", "fqdn": "vm1.example.org."}],
               "extra_dhcp_opts": [
                   {"opt_name": "tag:ipxe,bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
                   {"opt_name": "dns-server", "opt_value": "2001:db8::53", "ip_version": 6}]}),
        json!({"id": "router1", "mac_address": "fa:16:3e:00:00:02",
               "device_owner": "network:router_interface",
               "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.51.100.1"}]}),
    ]
}

fn network_with(hostile: Value) -> Network {
    let mut ports = base_ports();
    ports.push(hostile);
    let v = json!({"id": NET,
        "subnets": [
            {"id": "s4", "cidr": "198.51.100.0/24", "ip_version": 4, "gateway_ip": "198.51.100.1",
             "dns_nameservers": ["198.51.100.53"]},
            {"id": "s6", "cidr": "2001:db8::/64", "ip_version": 6, "gateway_ip": null,
             "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}],
        "ports": ports});
    let (n, w) = Network::from_json_value(v).expect("network parses");
    assert!(w.is_empty(), "{w:?}");
    n
}

/// A port `bad1` on the v4 subnet with the given extras.
fn hostile_port(extra: Value) -> Value {
    let mut p = json!({"id": "bad1", "mac_address": "fa:16:3e:00:00:99", "device_owner": "compute:nova",
                       "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.51.100.99"}]});
    for (k, v) in extra.as_object().expect("object") {
        p[k] = v.clone();
    }
    p
}

fn render(n: &Network) -> Rendered {
    let facts = RuntimeFacts {
        interface_name: "tap0".into(),
        dnsmasq_host_tag_support: Some(true),
        ..Default::default()
    };
    render_all(n, &DnsmasqConfig::default(), &facts)
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':').count() == 6
        && s.split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_name(s: &str) -> bool {
    s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn is_ip_field(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
        || s.strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .is_some_and(|x| x.parse::<std::net::Ipv6Addr>().is_ok())
}

fn no_control(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

/// Each host line: MAC, then only known field shapes; one address field.
fn check_hosts_grammar(hosts: &str) {
    assert!(hosts.is_empty() || hosts.ends_with('\n'));
    for line in hosts.lines() {
        assert!(no_control(line), "{line:?}");
        let fields: Vec<&str> = line.split(',').collect();
        assert!(is_mac(fields[0]), "{line:?}");
        let mut addresses = 0;
        for f in &fields[1..] {
            if is_ip_field(f) {
                addresses += 1;
            } else {
                assert!(
                    *f == "tag:dhcpv6"
                        || f.strip_prefix("id:")
                            .is_some_and(|x| is_name(x) || x.contains(':'))
                        || f.strip_prefix("set:port-").is_some_and(is_name)
                        || is_name(f),
                    "field {f:?} of {line:?}"
                );
            }
        }
        assert!(addresses <= 1, "{line:?}");
    }
}

/// Each addn_hosts line: `<ip>\t<fqdn> <hostname>`.
fn check_addn_hosts_grammar(addn: &str) {
    for line in addn.lines() {
        let (ip, names) = line.split_once('\t').expect("tab");
        assert!(ip.parse::<IpAddr>().is_ok(), "{line:?}");
        let names: Vec<&str> = names.split(' ').collect();
        assert_eq!(names.len(), 2, "{line:?}");
        assert!(names.iter().all(|n| is_name(n)), "{line:?}");
    }
}

/// Each opts line starts with a known tag and has no control character.
fn check_opts_grammar(opts: &str, ports: &[&str]) {
    assert!(!opts.ends_with('\n'));
    for line in opts.split('\n') {
        assert!(no_control(line), "{line:?}");
        assert!(line.len() < 1024, "{} bytes", line.len());
        let ok = ["tag:subnet-s4,", "tag:subnet-s6,"]
            .iter()
            .any(|t| line.starts_with(t))
            || ports
                .iter()
                .any(|p| line.starts_with(&format!("tag:port-{p},")));
        assert!(ok, "{line:?}");
    }
}

struct Case {
    what: &'static str,
    extra: Value,
    /// Text that must appear nowhere in any output.
    payload: &'static str,
    /// The warning's field.
    field: &'static str,
    /// The port keeps its host entries (only an option is dropped or cut).
    port_kept: bool,
}

fn cases() -> Vec<Case> {
    let long = "a".repeat(10_000);
    let long: &'static str = Box::leak(long.into_boxed_str());
    let long_fqdn: &'static str = Box::leak(format!("{long}.example.org.").into_boxed_str());
    let names = |hostname: &str, fqdn: &str| json!({"dns_assignment": [{"hostname": hostname, "ip_address": "198.51.100.99", "fqdn": fqdn}]});
    let opt = |name: &str, value: &str| json!({"extra_dhcp_opts": [{"opt_name": name, "opt_value": value, "ip_version": 4}]});
    vec![
        Case {
            what: "hostname with newline",
            payload: "EVIL",
            extra: names(
                "vm\nfa:16:3e:66:66:66,198.51.100.66,EVIL",
                "vm.example.org.",
            ),
            field: "dns_assignment[0].hostname",
            port_kept: false,
        },
        Case {
            what: "fqdn with comma",
            payload: "EVIL",
            extra: names("vm", "vm.example.org.,set:port-EVIL"),
            field: "dns_assignment[0].fqdn",
            port_kept: false,
        },
        Case {
            what: "fqdn with space",
            payload: "EVIL",
            extra: names("vm", "vm.example.org. EVIL.example.org."),
            field: "dns_assignment[0].fqdn",
            port_kept: false,
        },
        Case {
            what: "fqdn with hash",
            payload: "EVIL",
            extra: names("vm", "vm.example.org.#EVIL"),
            field: "dns_assignment[0].fqdn",
            port_kept: false,
        },
        Case {
            what: "hostname with NUL",
            payload: "EVIL",
            extra: names("vm\0EVIL", "vm.example.org."),
            field: "dns_assignment[0].hostname",
            port_kept: false,
        },
        Case {
            what: "hostname with CR",
            payload: "EVIL",
            extra: names("vm\rEVIL", "vm.example.org."),
            field: "dns_assignment[0].hostname",
            port_kept: false,
        },
        Case {
            what: "10k fqdn",
            payload: long,
            extra: names("vm", long_fqdn),
            field: "dns_assignment[0].fqdn",
            port_kept: false,
        },
        Case {
            what: "client-id with newline",
            payload: "EVIL",
            extra: opt("client-id", "cid\nfa:16:3e:77:77:77,198.51.100.77,EVIL"),
            field: "extra_dhcp_opts[0].opt_value",
            port_kept: false,
        },
        Case {
            what: "client-id with comma",
            payload: "EVIL",
            extra: opt("61", "cid,set:port-EVIL"),
            field: "extra_dhcp_opts[0].opt_value",
            port_kept: false,
        },
        Case {
            what: "option name with newline (cut)",
            payload: "EVIL",
            extra: opt("dns-server\ndhcp-option=EVIL", "198.51.100.53"),
            field: "extra_dhcp_opts[0].opt_name",
            port_kept: true,
        },
        Case {
            what: "option value with newline (cut)",
            payload: "EVIL",
            extra: opt(
                "dns-server",
                "198.51.100.53\ntag:subnet-s4,option:router,EVIL",
            ),
            field: "extra_dhcp_opts[0].opt_value",
            port_kept: true,
        },
        Case {
            what: "option name with CR",
            payload: "EVIL",
            extra: opt("dns-server\rEVIL", "198.51.100.53"),
            field: "extra_dhcp_opts[0].opt_name",
            port_kept: true,
        },
        Case {
            what: "option value with CR",
            payload: "EVIL",
            extra: opt("dns-server", "198.51.100.53\rEVIL"),
            field: "extra_dhcp_opts[0].opt_value",
            port_kept: true,
        },
        Case {
            what: "option value with NUL",
            payload: "EVIL",
            extra: opt("dns-server", "198.51.100.53\0EVIL"),
            field: "extra_dhcp_opts[0].opt_value",
            port_kept: true,
        },
        Case {
            what: "option name with tag and NUL",
            payload: "EVIL",
            extra: opt("tag:x\0EVIL,dns-server", "198.51.100.53"),
            field: "extra_dhcp_opts[0].opt_name",
            port_kept: true,
        },
        Case {
            what: "10k option value",
            payload: long,
            extra: opt("bootfile-name", long),
            field: "extra_dhcp_opts[0].opt_value",
            port_kept: true,
        },
        Case {
            what: "10k option name",
            payload: long,
            extra: opt(long, "x"),
            field: "extra_dhcp_opts[0].opt_name",
            port_kept: true,
        },
    ]
}

#[test]
fn hostile_elements_are_left_out_and_named() {
    let clean = render(&network_with(hostile_port(json!({}))));
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
    let clean_hosts = clean.hosts.lines().count();
    let clean_addn = clean.addn_hosts.lines().count();
    let clean_opts = clean.opts.split('\n').count();

    for case in cases() {
        let n = network_with(hostile_port(case.extra.clone()));
        let r = render(&n);
        let what = case.what;
        // sanitize + the single-file functions decide the same as render_all.
        let c = DnsmasqConfig::default();
        let facts = RuntimeFacts {
            interface_name: "tap0".into(),
            dnsmasq_host_tag_support: Some(true),
            ..Default::default()
        };
        let (clean, w) = sanitize(&n, &c);
        assert_eq!(w, r.warnings, "{what}");
        assert_eq!(render::hosts(&clean, &c, &facts), r.hosts, "{what}");
        assert_eq!(render::addn_hosts(&clean, &c), r.addn_hosts, "{what}");
        assert_eq!(render::opts(&clean, &c, &facts), r.opts, "{what}");
        assert_eq!(render::leases(&clean, &c, &facts), r.leases, "{what}");
        check_hosts_grammar(&r.hosts);
        check_addn_hosts_grammar(&r.addn_hosts);
        check_opts_grammar(&r.opts, &["good1", "bad1"]);
        for (file, text) in [
            ("hosts", &r.hosts),
            ("addn_hosts", &r.addn_hosts),
            ("opts", &r.opts),
            ("leases", &r.leases),
        ] {
            assert!(
                !text.contains(case.payload),
                "{what}: payload in {file}: {text:?}"
            );
        }
        assert!(
            r.cmdline.iter().all(|a| !a.contains(case.payload)),
            "{what}"
        );

        // The other ports render as without the hostile one.
        assert!(r.hosts.contains(GOOD_HOST_V4), "{what}: {:?}", r.hosts);
        assert!(
            r.opts
                .contains("tag:port-good1,tag:ipxe,option:bootfile-name,pxelinux.0"),
            "{what}"
        );
        assert!(
            r.leases.contains("0 fa:16:3e:00:00:01 198.51.100.10 * *\n"),
            "{what}"
        );

        // Exactly the lines expected: the hostile port's lines are gone, or
        // (an option dropped or cut) everything else stays.
        let bad_host = r
            .hosts
            .lines()
            .filter(|l| l.starts_with("fa:16:3e:00:00:99,"))
            .count();
        let bad_addn = r
            .addn_hosts
            .lines()
            .filter(|l| l.starts_with("198.51.100.99\t"))
            .count();
        let bad_lease = r
            .leases
            .lines()
            .filter(|l| l.contains(" fa:16:3e:00:00:99 "))
            .count();
        if case.port_kept {
            assert_eq!((bad_host, bad_addn, bad_lease), (1, 1, 1), "{what}: {r:?}");
            assert_eq!(r.hosts.lines().count(), clean_hosts, "{what}");
        } else {
            assert_eq!((bad_host, bad_addn, bad_lease), (0, 0, 0), "{what}: {r:?}");
            assert_eq!(r.hosts.lines().count(), clean_hosts - 1, "{what}");
            assert_eq!(r.addn_hosts.lines().count(), clean_addn - 1, "{what}");
        }
        let bad_opts = r
            .opts
            .split('\n')
            .filter(|l| l.starts_with("tag:port-bad1,"))
            .count();
        assert!(bad_opts <= 1, "{what}: {:?}", r.opts);
        assert!(r.opts.split('\n').count() <= clean_opts + 1, "{what}");

        let w = r
            .warnings
            .iter()
            .find(|w| w.port_id.as_deref() == Some("bad1") && w.field == case.field)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no warning for bad1 {}: {:?}",
                    case.field, r.warnings
                )
            });
        assert_eq!(w.network_id, NET);
        assert!(w.value.len() < 200, "{what}: warning value not shortened");
    }
}

#[test]
fn newline_cut_keeps_neutrons_bytes() {
    let r = render(&network_with(hostile_port(json!({"extra_dhcp_opts": [
        {"opt_name": "malicious-option\nwith-new-line", "opt_value": "aaa\nbbb.ccc\n", "ip_version": 4}]}))));
    assert!(
        r.opts
            .ends_with("\ntag:port-bad1,option:malicious-option,aaa"),
        "{:?}",
        r.opts
    );
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
}

#[test]
fn hostile_config_values_are_rejected() {
    let mut base = Options::new();
    base.declare(&[OptionSpec::str(
        "DEFAULT",
        "state_path",
        Some("/var/lib/neutron"),
        "",
    )]);
    base.declare(OPTIONS);
    for (option, value) in [
        ("dns_domain", "example.org\n--dhcp-script=/tmp/x"),
        ("dns_domain", "example.org,set:x"),
        ("dns_domain", "-C/tmp/evil"),
        ("dnsmasq_dns_servers", "8.8.8.8,--dhcp-script=/tmp/x"),
        ("dnsmasq_txt_record", "txt\n--dhcp-script=/tmp/x"),
        ("dnsmasq_config_file", "-C /tmp/evil"),
        ("dnsmasq_base_log_dir", "/tmp\n--dhcp-script=/tmp/x"),
    ] {
        let mut o = base.clone();
        o.set("DEFAULT", option, value, Origin::Program);
        let e = DnsmasqConfig::from_options(&o).expect_err(value);
        assert_eq!(e.option, option);
        assert!(e.to_string().contains(option), "{e}");
    }

    // A config built by hand, bypassing from_options: no argv at all, and
    // generated names carrying the bad domain are left out with a warning.
    let config = DnsmasqConfig {
        dns_domain: "example.org,set:port-good1".into(),
        ..Default::default()
    };
    let n = network_with(hostile_port(json!({})));
    let r = render_all(&n, &config, &RuntimeFacts::default());
    assert!(r.cmdline.is_empty());
    check_hosts_grammar(&r.hosts);
    assert!(r.hosts.contains(GOOD_HOST_V4));
    assert!(!r.hosts.contains("198.51.100.99"));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.port_id.as_deref() == Some("bad1") && w.field == "dns_domain"));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.port_id.is_none() && w.field == "dns_domain"));
}

#[test]
fn hostile_addresses_do_not_parse_at_all() {
    // Addresses and ids are checked by the model: such a network is refused.
    for bad in [
        json!({"id": NET, "subnets": [{"id": "s4", "cidr": "198.51.100.0/24", "ip_version": 4,
               "dns_nameservers": ["198.51.100.53\n--evil"]}]}),
        json!({"id": "net\n1", "subnets": []}),
        json!({"id": NET, "ports": [{"id": "p", "mac_address": "fa:16:3e:00:00:01,EVIL"}]}),
    ] {
        assert!(Network::from_json_value(bad).is_err());
    }
}
