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

use leasehold_core::model::{Network, Port, Warning};

use crate::config::{is_control, DnsmasqConfig};
use crate::render::opts::{cut_at_newline, split_option_name};
use crate::render::{for_each_host_of_port, needs_host_entries, HostEntry, Index, Names};

/// Longest extra-option line we write (dnsmasq splits lines at 1024 bytes).
pub const MAX_OPTION_LINE: usize = 1000;
/// Longest client-id, host name or fqdn we write (DNS names stop at 255).
pub const MAX_NAME: usize = 255;
/// Longest offending value quoted in a warning.
const MAX_WARNING_VALUE: usize = 120;

/// What sanitizing decided for one port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortVerdict {
    /// The port gets no `host`, `addn_hosts` or `leases` entries.
    pub hidden: bool,
    /// Indices (ascending) of `extra_dhcp_opts` left out.
    pub dropped_opts: Vec<usize>,
}

/// The verdict of a port nothing was found wrong with.
static CLEAN: PortVerdict = PortVerdict {
    hidden: false,
    dropped_opts: Vec::new(),
};

impl PortVerdict {
    /// Whether nothing is left out.
    pub fn is_clean(&self) -> bool {
        !self.hidden && self.dropped_opts.is_empty()
    }

    /// Whether the option at `index` is left out.
    pub fn drops(&self, index: usize) -> bool {
        self.dropped_opts.binary_search(&index).is_ok()
    }

    /// How many of the port's extra options remain.
    pub fn remaining_opts(&self, port: &Port) -> usize {
        port.extra_dhcp_opts.len() - self.dropped_opts.len()
    }
}

/// A network checked by [`sanitize`]: what the renderers may write.
#[derive(Debug)]
pub struct Sanitized<'a> {
    network: &'a Network,
    /// (port index, verdict) for the ports that are not clean, by index.
    verdicts: Vec<(usize, PortVerdict)>,
}

impl<'a> Sanitized<'a> {
    /// Assembles one from verdicts of [`Checker::check_port`], sorted by index.
    pub(crate) fn from_parts(network: &'a Network, verdicts: Vec<(usize, PortVerdict)>) -> Self {
        Sanitized { network, verdicts }
    }

    /// The network as received; what is left out is in the verdicts.
    pub fn network(&self) -> &'a Network {
        self.network
    }

    /// The verdict for the port at `index`.
    pub fn verdict(&self, index: usize) -> &PortVerdict {
        match self.verdicts.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(pos) => &self.verdicts[pos].1,
            Err(_) => &CLEAN,
        }
    }
}

/// Checks a network; returns what may be rendered and a warning per element
/// left out or cut.
pub fn sanitize<'a>(network: &'a Network, config: &DnsmasqConfig) -> (Sanitized<'a>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let checker = Checker::new(network, config);
    let idx = Index::new(network);
    let mut verdicts = Vec::new();
    for (pi, port) in network.ports.iter().enumerate() {
        let v = checker.check_port(&idx, port, &mut warnings);
        if !v.is_clean() {
            verdicts.push((pi, v));
        }
    }
    (Sanitized { network, verdicts }, warnings)
}

/// A host name or fqdn that may not be written.
#[derive(Debug)]
pub(crate) struct NameProblem<'e> {
    field: String,
    value: &'e str,
    why: String,
}

/// Checks ports one at a time (`render_all` interleaves this with rendering
/// each port, so a port's data is read while it is in cache).
pub(crate) struct Checker<'c> {
    network_id: &'c str,
    config: &'c DnsmasqConfig,
    domain_problem: Option<String>,
}

impl<'c> Checker<'c> {
    pub(crate) fn new(network: &'c Network, config: &'c DnsmasqConfig) -> Self {
        Checker {
            network_id: network.id.as_str(),
            config,
            domain_problem: bad_name_text(&config.dns_domain),
        }
    }

    /// The verdict for one port; warnings for what is left out or cut.
    pub(crate) fn check_port<'a>(
        &self,
        idx: &Index<'a>,
        port: &'a Port,
        warnings: &mut Vec<Warning>,
    ) -> PortVerdict {
        let mut verdict = self.check_options(port, warnings);
        if !needs_host_entries(port) || verdict.hidden {
            return verdict;
        }
        let mut bad = None;
        for_each_host_of_port(idx, self.config, port, false, false, |e| {
            if bad.is_none() {
                bad = self.name_problem(port, &e);
            }
        });
        if let Some(problem) = bad {
            self.hide_for_name(port, problem, &mut verdict, warnings);
        }
        verdict
    }

    /// Records a bad name: the port loses its host entries.
    pub(crate) fn hide_for_name(
        &self,
        port: &Port,
        problem: NameProblem<'_>,
        verdict: &mut PortVerdict,
        warnings: &mut Vec<Warning>,
    ) {
        warnings.push(self.warning(
            port,
            problem.field,
            problem.value,
            format!(
                "host name {}; port left out of host, addn_hosts and leases",
                problem.why
            ),
        ));
        verdict.hidden = true;
    }

    fn warning(&self, port: &Port, field: String, value: &str, reason: String) -> Warning {
        Warning {
            network_id: self.network_id.to_string(),
            port_id: Some(port.id.to_string()),
            field,
            value: shorten(value),
            reason,
        }
    }

    /// What is wrong with the names of one host entry, if anything.
    pub(crate) fn name_problem<'e>(
        &self,
        port: &Port,
        e: &HostEntry<'e>,
    ) -> Option<NameProblem<'e>> {
        match e.names {
            Names::Assigned(d) => {
                for (what, name) in [("hostname", d.hostname.as_str()), ("fqdn", d.fqdn.as_str())] {
                    if let Some(why) = bad_name_text(name) {
                        let k = assignment_index(port, d).unwrap_or(0);
                        return Some(NameProblem {
                            field: format!("dns_assignment[{k}].{what}"),
                            value: name,
                            why,
                        });
                    }
                }
                None
            }
            // `host-<address>` is safe; only the domain part can be bad.
            Names::Generated { ip, domain } => {
                let why = match &self.domain_problem {
                    Some(why) => why.clone(),
                    None if "host-".len() + ip.len() + 1 + domain.len() > MAX_NAME => {
                        format!("makes a name longer than {MAX_NAME} bytes")
                    }
                    None => return None,
                };
                Some(NameProblem {
                    field: "dns_domain".into(),
                    value: domain,
                    why,
                })
            }
        }
    }

    /// Checks the port's extra DHCP options.
    pub(crate) fn check_options(&self, port: &Port, warnings: &mut Vec<Warning>) -> PortVerdict {
        let mut verdict = PortVerdict::default();
        let warn = |warnings: &mut Vec<Warning>, field: String, value: &str, reason: String| {
            warnings.push(self.warning(port, field, value, reason));
        };

        // Extra DHCP options.
        let client_id_index = port.extra_dhcp_opts.iter().position(|o| o.is_client_id());
        for (oi, opt) in port.extra_dhcp_opts.iter().enumerate() {
            let field = |what: &str| format!("extra_dhcp_opts[{oi}].{what}");
            if opt.is_client_id() {
                if Some(oi) == client_id_index && needs_host_entries(port) {
                    if let Some(value) = opt.opt_value.as_deref() {
                        if let Some(why) = bad_client_id(value) {
                            warn(
                                warnings,
                                field("opt_value"),
                                value,
                                format!(
                                    "client-id {why}; port left out of host, addn_hosts and leases"
                                ),
                            );
                            verdict.hidden = true;
                        }
                    }
                }
                continue;
            }
            let Some(value) = opt.opt_value.as_deref() else {
                warn(
                    warnings,
                    field("opt_value"),
                    "null",
                    format!("option {:?} has no value; option left out", opt.opt_name),
                );
                verdict.dropped_opts.push(oi);
                continue;
            };
            let (name, value_cut) = (cut_at_newline(&opt.opt_name), cut_at_newline(value));
            if let Some(c) = name.chars().find(|c| is_control(*c)) {
                warn(
                    warnings,
                    field("opt_name"),
                    &opt.opt_name,
                    format!("control character {c:?}; option left out"),
                );
                verdict.dropped_opts.push(oi);
                continue;
            }
            if let Some(c) = value_cut.chars().find(|c| is_control(*c)) {
                warn(
                    warnings,
                    field("opt_value"),
                    value,
                    format!("control character {c:?}; option left out"),
                );
                verdict.dropped_opts.push(oi);
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
                let (what, text) = if name.len() >= value_cut.len() {
                    ("opt_name", opt.opt_name.as_str())
                } else {
                    ("opt_value", value)
                };
                warn(
                    warnings,
                    field(what),
                    text,
                    format!(
                        "option line of {line_len} bytes exceeds {MAX_OPTION_LINE} (dnsmasq would read the rest as a new line); option left out"
                    ),
                );
                verdict.dropped_opts.push(oi);
                continue;
            }
            if opt.opt_name.contains('\n') {
                warn(
                    warnings,
                    field("opt_name"),
                    &opt.opt_name,
                    "cut at the first newline, as Neutron does".into(),
                );
            }
            if value.contains('\n') {
                warn(
                    warnings,
                    field("opt_value"),
                    value,
                    "cut at the first newline, as Neutron does".into(),
                );
            }
        }

        verdict
    }
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
    // Fast path: the usual DNS-label characters.
    if name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return None;
    }
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
