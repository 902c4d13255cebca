//! Keeps anything a tenant or the server sends from adding a directive or
//! option to a dnsmasq file. Runs inside `render_all` before the renderers.
//!
//! The model already guarantees a lot: ids are `[A-Za-z0-9_-]`, MACs are
//! colon hex, IPs and CIDRs parse (and keep only their parsed text). What is
//! left is free text: `dns_assignment` names, `extra_dhcp_opts` names and
//! values, and `dns_domain` as part of generated names.
//!
//! Where Neutron already neutralises, we do exactly the same so the bytes stay
//! identical: extra option names and values are cut at the first `\n` (the
//! CVE-2021-40085 fix; done by the opts renderer, here only warned about).
//!
//! Where we are STRICTER than Neutron, and why (each leaves out ONE element,
//! with a [`Warning`] naming network, port and field; the rest is served):
//!
//! 1. client-id (`extra_dhcp_opts` named `client-id`/`61`): Neutron writes it
//!    into the `host` line uncut. A newline there adds a dhcp-host line, a
//!    comma adds fields (`set:port-<other>` borrows another port's options, an
//!    address or `ignore` changes the entry), a space or `#` starts a comment.
//!    Any control character, whitespace, `,`, `#`, `"` or more than 255 bytes
//!    → the port gets no `host`/`addn_hosts`/`leases` entries.
//! 2. host names and fqdns (from `dns_assignment`, or generated from the IP
//!    and `dns_domain`): Neutron writes them as they come. In `host` a comma
//!    splits fields; in `addn_hosts` a space adds an alias (a name for someone
//!    else's address) and `#` cuts the line; a newline adds a line; `:` could
//!    make a `set:`/`tag:`/`id:` field. Any control character, whitespace, `,`,
//!    `#`, `"`, `\`, `:` or more than 255 bytes → the port gets no
//!    `host`/`addn_hosts`/`leases` entries. (`dns_domain` is also rejected at
//!    config time, see `DnsmasqConfig::validate`.)
//! 3. extra option names and values, after the newline cut: any other control
//!    character (CR, NUL, VT, FF, the Unicode line separators…) → that option
//!    is left out. Neutron passes them; dnsmasq stops a line at NUL and the
//!    API would have refused them, so they only come from a bad server.
//! 4. an extra option whose line would exceed [`MAX_OPTION_LINE`] bytes → left
//!    out. dnsmasq reads its files with `fgets(buf, 1025)`: the rest of a
//!    longer line is read as a NEW line, i.e. an injected directive. The API
//!    limits (64-byte names, 255-byte values) keep real options far below.
//! 5. an extra option with a `null` value (other than client-id) → left out;
//!    Neutron would fail the whole opts file on it.

use std::borrow::Cow;
use std::collections::HashSet;

use leasehold_core::model::{Network, Port, Warning};

use crate::config::{is_control, DnsmasqConfig};
use crate::render::opts::{cut_at_newline, split_option_name};
use crate::render::{for_each_host_of_port, Index, Names};

/// Longest extra-option line we write (dnsmasq splits lines at 1024 bytes).
pub const MAX_OPTION_LINE: usize = 1000;
/// Longest client-id, host name or fqdn we write (DNS names stop at 255).
pub const MAX_NAME: usize = 255;
/// Longest offending value quoted in a warning.
const MAX_WARNING_VALUE: usize = 120;

/// A network checked by [`sanitize`]: what the renderers may write.
#[derive(Debug)]
pub struct Sanitized<'a> {
    network: Cow<'a, Network>,
    hidden: HashSet<usize>,
}

impl<'a> Sanitized<'a> {
    /// The network, minus the extra options that were left out.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Whether the port at `index` is left out of `host`, `addn_hosts` and `leases`.
    pub fn hides_host_entries(&self, index: usize) -> bool {
        self.hidden.contains(&index)
    }
}

/// Checks a network; returns what may be rendered and a warning per element left
/// out or cut. Borrows the network unless an option has to be removed.
pub fn sanitize<'a>(network: &'a Network, config: &DnsmasqConfig) -> (Sanitized<'a>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut hidden = HashSet::new();
    let mut drop_opts: Vec<(usize, Vec<usize>)> = Vec::new();
    let idx = Index::new(network);
    let net_id = network.id.as_str();

    for (pi, port) in network.ports.iter().enumerate() {
        let warn = |warnings: &mut Vec<Warning>, field: String, value: &str, reason: String| {
            warnings.push(Warning {
                network_id: net_id.to_string(),
                port_id: Some(port.id.to_string()),
                field,
                value: shorten(value),
                reason,
            });
        };

        // Extra DHCP options.
        let client_id_index = port.extra_dhcp_opts.iter().position(|o| o.is_client_id());
        let mut dropped = Vec::new();
        for (oi, opt) in port.extra_dhcp_opts.iter().enumerate() {
            let field = |what: &str| format!("extra_dhcp_opts[{oi}].{what}");
            if opt.is_client_id() {
                if Some(oi) == client_id_index && port.requires_dhcp_configuration() {
                    if let Some(value) = opt.opt_value.as_deref() {
                        if let Some(why) = bad_client_id(value) {
                            warn(
                                &mut warnings,
                                field("opt_value"),
                                value,
                                format!(
                                    "client-id {why}; port left out of host, addn_hosts and leases"
                                ),
                            );
                            hidden.insert(pi);
                        }
                    }
                }
                continue;
            }
            let Some(value) = opt.opt_value.as_deref() else {
                warn(
                    &mut warnings,
                    field("opt_value"),
                    "null",
                    format!("option {:?} has no value; option left out", opt.opt_name),
                );
                dropped.push(oi);
                continue;
            };
            let (name, value_cut) = (cut_at_newline(&opt.opt_name), cut_at_newline(value));
            if let Some(c) = name.chars().find(|c| is_control(*c)) {
                warn(
                    &mut warnings,
                    field("opt_name"),
                    &opt.opt_name,
                    format!("control character {c:?}; option left out"),
                );
                dropped.push(oi);
                continue;
            }
            if let Some(c) = value_cut.chars().find(|c| is_control(*c)) {
                warn(
                    &mut warnings,
                    field("opt_value"),
                    value,
                    format!("control character {c:?}; option left out"),
                );
                dropped.push(oi);
                continue;
            }
            let (extra_tag, bare) = split_option_name(name);
            let line_len = "tag:port-".len()
                + port.id.as_str().len()
                + extra_tag.map_or(0, |t| t.len() + 1)
                + ",option6:".len()
                + bare.len()
                + 1
                + value_cut.len();
            if line_len > MAX_OPTION_LINE {
                warn(
                    &mut warnings,
                    field("opt_value"),
                    value,
                    format!(
                        "option line of {line_len} bytes exceeds {MAX_OPTION_LINE} (dnsmasq would read the rest as a new line); option left out"
                    ),
                );
                dropped.push(oi);
                continue;
            }
            if opt.opt_name.contains('\n') {
                warn(
                    &mut warnings,
                    field("opt_name"),
                    &opt.opt_name,
                    "cut at the first newline, as Neutron does".into(),
                );
            }
            if value.contains('\n') {
                warn(
                    &mut warnings,
                    field("opt_value"),
                    value,
                    "cut at the first newline, as Neutron does".into(),
                );
            }
        }
        if !dropped.is_empty() {
            drop_opts.push((pi, dropped));
        }

        // Names written to host and addn_hosts.
        if !port.requires_dhcp_configuration() || hidden.contains(&pi) {
            continue;
        }
        let mut bad_name: Option<(String, String, String)> = None;
        for_each_host_of_port(&idx, config, port, false, false, |e| {
            if bad_name.is_some() {
                return;
            }
            let mut hostname = String::new();
            let mut fqdn = String::new();
            e.names.write_hostname(&mut hostname);
            e.names.write_fqdn(&mut fqdn);
            for (what, name) in [("hostname", &hostname), ("fqdn", &fqdn)] {
                if let Some(why) = bad_name_text(name) {
                    let field = match e.names {
                        Names::Assigned(d) => format!(
                            "dns_assignment[{}].{what}",
                            assignment_index(port, d).unwrap_or(0)
                        ),
                        Names::Generated { .. } => "dns_domain".to_string(),
                    };
                    bad_name = Some((field, name.clone(), why));
                    return;
                }
            }
        });
        if let Some((field, value, why)) = bad_name {
            warn(
                &mut warnings,
                field,
                &value,
                format!("host name {why}; port left out of host, addn_hosts and leases"),
            );
            hidden.insert(pi);
        }
    }

    let network = if drop_opts.is_empty() {
        Cow::Borrowed(network)
    } else {
        let mut owned = network.clone();
        for (pi, dropped) in drop_opts {
            let opts = &mut owned.ports[pi].extra_dhcp_opts;
            let mut i = 0;
            opts.retain(|_| {
                let keep = !dropped.contains(&i);
                i += 1;
                keep
            });
        }
        Cow::Owned(owned)
    };
    (Sanitized { network, hidden }, warnings)
}

fn assignment_index(port: &Port, d: &leasehold_core::model::DnsAssignment) -> Option<usize> {
    port.dns_assignment.iter().position(|x| std::ptr::eq(x, d))
}

/// Why a client-id may not go into a dhcp-host line, if it may not.
fn bad_client_id(value: &str) -> Option<String> {
    if value.len() > MAX_NAME {
        return Some(format!(
            "is {} bytes long (more than {MAX_NAME})",
            value.len()
        ));
    }
    value
        .chars()
        .find(|c| is_control(*c) || c.is_whitespace() || matches!(c, ',' | '#' | '"'))
        .map(|c| format!("contains {c:?}"))
}

/// Why a host name or fqdn may not be written, if it may not.
fn bad_name_text(name: &str) -> Option<String> {
    if name.len() > MAX_NAME {
        return Some(format!(
            "is {} bytes long (more than {MAX_NAME})",
            name.len()
        ));
    }
    name.chars()
        .find(|c| is_control(*c) || c.is_whitespace() || matches!(c, ',' | '#' | '"' | '\\' | ':'))
        .map(|c| format!("contains {c:?}"))
}

/// A value short enough to log, marked when cut.
fn shorten(value: &str) -> String {
    if value.len() <= MAX_WARNING_VALUE {
        return value.to_string();
    }
    let mut end = MAX_WARNING_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(bad_name_text("host-1-2-3-4.openstacklocal.").is_none());
        assert!(bad_name_text("").is_none());
        for bad in ["a,b", "a b", "a\nb", "a#b", "a\0b", "set:x", "a\u{2028}b"] {
            assert!(bad_name_text(bad).is_some(), "{bad:?}");
        }
        assert!(bad_name_text(&"a".repeat(256)).is_some());
        assert!(bad_client_id("01:fa:16:3e:00:00:01").is_none());
        assert!(bad_client_id("x\nfa:16:3e:00:00:09,10.0.0.9").is_some());
    }

    #[test]
    fn shorten_marks_long_values() {
        let s = shorten(&"é".repeat(200));
        assert!(s.ends_with("(400 bytes)"), "{s}");
    }
}
