//! Releasing the leases of ports that are gone (Neutron's `_release_unused_leases`),
//! so their addresses can be handed to a new port at once.
//!
//! Which leases: the reference's rule (§1.9): entries of the old `host` file
//! and IPv4 entries of the lease file, less what the network's ports hold now.
//!
//! How: Neutron forks `ip netns exec … dhcp_release` once per lease. Here the
//! DHCPv4 releases are built in Rust and sent through one UDP socket made by a
//! thread that has entered the namespace: bound to the DHCP device with
//! SO_BINDTODEVICE, so dnsmasq sees them arrive on that interface exactly as
//! contrib/lease-tools/dhcp_release's packets do. DHCPv6 releases still fork
//! `dhcp_release6` (one per lease, inside the namespace), as Neutron does:
//! they need a DUID-based DHCPv6 message and are rare.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use leasehold_core::model::Network;

use crate::process::{self, ProcessError};

/// One lease to release.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Release {
    /// A DHCPv4 lease.
    V4 {
        /// The leased address.
        ip: Ipv4Addr,
        /// The client's hardware address (`xx:xx:…`, optionally `<type>-` first).
        mac: String,
        /// The client-id, as in the lease file (hex bytes with `:`), if any.
        client_id: Option<String>,
    },
    /// A DHCPv6 lease.
    V6 {
        /// The leased address.
        ip: std::net::Ipv6Addr,
        /// The client's DUID (from the lease file).
        client_id: String,
        /// dnsmasq's own DUID (the lease file's `duid` line).
        server_id: String,
        /// The IAID.
        iaid: String,
    },
}

impl Release {
    /// The address the lease is for.
    pub fn ip(&self) -> IpAddr {
        match self {
            Release::V4 { ip, .. } => IpAddr::V4(*ip),
            Release::V6 { ip, .. } => IpAddr::V6(*ip),
        }
    }
}

/// One line of a dnsmasq lease file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseLine {
    /// Field 2: the MAC for v4, the IAID for v6.
    pub iaid: String,
    /// Field 5: the client-id / DUID, `*` for none.
    pub client_id: String,
}

/// A parsed lease file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leases {
    /// dnsmasq's DUID (first `duid` line), for DHCPv6 releases.
    pub server_duid: Option<String>,
    /// Leases by address.
    pub by_ip: BTreeMap<IpAddr, LeaseLine>,
}

/// Parses a dnsmasq lease file; malformed lines are skipped.
pub fn parse_leases(text: &str) -> Leases {
    let mut leases = Leases::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"duid") {
            if leases.server_duid.is_none() {
                leases.server_duid = fields.get(1).map(|s| s.to_string());
            }
            continue;
        }
        if fields.len() != 5 {
            continue;
        }
        let Ok(ip) = fields[2].trim_matches(['[', ']']).parse::<IpAddr>() else {
            continue;
        };
        leases.by_ip.insert(
            ip,
            LeaseLine {
                iaid: fields[1].to_string(),
                client_id: fields[4].to_string(),
            },
        );
    }
    leases
}

/// Reads dnsmasq's lease file as a whole: dnsmasq rewrites it in place
/// (truncate, then write), so a read may catch it empty or half written.
/// Reads until two consecutive reads agree (at most 50 tries).
pub fn read_leases_file(path: &Path) -> String {
    let mut last = std::fs::read_to_string(path).unwrap_or_default();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_micros(500));
        let now = std::fs::read_to_string(path).unwrap_or_default();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// An (address, MAC, client-id) triple as the reference compares them.
type Holder = (IpAddr, String, Option<String>);

/// The (ip, mac, client-id) entries of a `host` file (Neutron's rule: skip
/// `set:` lines; `id:` gives the client-id; addresses are the fields that
/// parse as IPs after the name).
pub fn parse_hosts(text: &str) -> BTreeSet<Holder> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() < 2 || fields[1].starts_with("set:") {
            continue;
        }
        let mac = fields[0].to_ascii_lowercase();
        let (client_id, first) = if let Some(id) = fields[1].strip_prefix("id:") {
            (Some(id.to_string()), 3)
        } else if fields[1].starts_with("tag:") {
            (None, 3)
        } else {
            (None, 2)
        };
        for f in fields.iter().skip(first) {
            if let Ok(ip) = f.trim_matches(['[', ']']).parse::<IpAddr>() {
                out.insert((ip, mac.clone(), client_id.clone()));
            }
        }
    }
    out
}

/// The leases to release: those of the old host file and the lease file's
/// IPv4 leases, less what the network's ports hold now (§1.9). Only leases
/// still in the lease file are returned.
pub fn unused_leases(network: &Network, old_hosts: &str, leases: &Leases) -> Vec<Release> {
    if leases.by_ip.is_empty() {
        return Vec::new();
    }
    let old = parse_hosts(old_hosts);
    let v4: BTreeSet<Holder> = leases
        .by_ip
        .iter()
        .filter(|(ip, _)| ip.is_ipv4())
        .map(|(ip, l)| {
            let cid = (l.client_id != "*").then(|| l.client_id.clone());
            (*ip, l.iaid.to_ascii_lowercase(), cid)
        })
        .collect();
    let new: BTreeSet<Holder> = network
        .ports
        .iter()
        .flat_map(|p| {
            let mac = p.mac_address.text().to_ascii_lowercase();
            let cid = p.client_id().map(str::to_string);
            p.fixed_ips
                .iter()
                .map(move |f| (*f.ip_address.value(), mac.clone(), cid.clone()))
        })
        .collect();
    let mut out = BTreeSet::new();
    for (ip, mac, cid) in v4.union(&old) {
        if new.contains(&(*ip, mac.clone(), cid.clone())) {
            continue;
        }
        // A VM that sends a client-id its port does not define is not stale.
        let plain = (*ip, mac.clone(), None);
        if cid.is_some() && old.contains(&plain) && new.contains(&plain) {
            continue;
        }
        let Some(lease) = leases.by_ip.get(ip) else {
            continue;
        };
        match ip {
            IpAddr::V4(v4ip) => {
                out.insert(Release::V4 {
                    ip: *v4ip,
                    mac: mac.clone(),
                    client_id: cid.clone(),
                });
            }
            IpAddr::V6(v6ip) => {
                if let Some(server_id) = &leases.server_duid {
                    out.insert(Release::V6 {
                        ip: *v6ip,
                        client_id: lease.client_id.clone(),
                        server_id: server_id.clone(),
                        iaid: lease.iaid.clone(),
                    });
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Parses `aa:bb-cc` style hex as dhcp_release does: each `:`/`-` separated
/// token is a hex byte. With `hw_type`, a `<type>-` prefix is the hardware type.
fn parse_hex(text: &str, max: usize, hw_type: bool) -> (Vec<u8>, Option<u8>) {
    let mut kind = None;
    let mut rest = text;
    if hw_type {
        if let Some((first, tail)) = text.split_once(['-', ':']) {
            if text.as_bytes().get(first.len()) == Some(&b'-') {
                kind = Some(hex_prefix(first));
                rest = tail;
            }
        }
    }
    let bytes = rest
        .split([':', '-'])
        .filter(|t| !t.is_empty())
        .take(max)
        .map(hex_prefix)
        .collect();
    (bytes, kind)
}

/// The value of a token's leading hex digits (as strtol base 16), truncated to a byte.
fn hex_prefix(token: &str) -> u8 {
    let mut v: u32 = 0;
    for c in token.chars() {
        match c.to_digit(16) {
            Some(d) => v = v.wrapping_mul(16).wrapping_add(d),
            None => break,
        }
    }
    v as u8
}

const DHCP_COOKIE: u32 = 0x6382_5363;
const BOOTREQUEST: u8 = 1;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_CLIENT_ID: u8 = 61;
const OPT_END: u8 = 255;
const DHCPRELEASE: u8 = 7;
/// Size of dhcp_release's packet: 236-byte BOOTP header, cookie, 308 bytes of options.
const PACKET_LEN: usize = 548;

/// A DHCPRELEASE for `ip` held by `mac` (and `client_id`), addressed to `server`.
pub fn release_packet(
    ip: Ipv4Addr,
    mac: &str,
    client_id: Option<&str>,
    server: Ipv4Addr,
) -> Vec<u8> {
    let mut p = vec![0u8; PACKET_LEN];
    let (hw, kind) = parse_hex(mac, 16, true);
    p[0] = BOOTREQUEST;
    p[1] = kind.unwrap_or(1); // ARPHRD_ETHER
    p[2] = hw.len() as u8;
    p[12..16].copy_from_slice(&ip.octets()); // ciaddr
    p[28..28 + hw.len()].copy_from_slice(&hw); // chaddr
    p[236..240].copy_from_slice(&DHCP_COOKIE.to_be_bytes());
    let mut o = 240;
    let mut put = |bytes: &[u8]| {
        p[o..o + bytes.len()].copy_from_slice(bytes);
        o += bytes.len();
    };
    put(&[OPT_MESSAGE_TYPE, 1, DHCPRELEASE]);
    put(&[OPT_SERVER_ID, 4]);
    put(&server.octets());
    if let Some(cid) = client_id.filter(|c| *c != "*") {
        // Room left: 308 - 9 used - 2 header - 1 end.
        let (bytes, _) = parse_hex(cid, 255.min(PACKET_LEN - 240 - 12), false);
        put(&[OPT_CLIENT_ID, bytes.len() as u8]);
        put(&bytes);
    }
    put(&[OPT_END]);
    p
}

/// Runs `f` on a fresh thread that has entered `namespace` (or stays in ours).
/// Only that thread changes namespace; the agent's threads never do.
pub fn in_namespace<T: Send + 'static>(
    namespace: Option<&str>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, ProcessError> {
    let ns = match namespace {
        Some(n) => Some(process::open_namespace(n)?),
        None => None,
    };
    let name = namespace.unwrap_or("").to_string();
    let handle = std::thread::spawn(move || {
        if let Some(file) = ns {
            // SAFETY: setns on a descriptor we own; affects this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        f()
    });
    let joined = handle
        .join()
        .map_err(|_| io::Error::other("namespace thread panicked"));
    joined.and_then(|r| r).map_err(|source| ProcessError::Io {
        context: format!("in namespace {name}"),
        source,
    })
}

/// The IPv4 addresses (with prefix length) of `iface`, read in the current namespace.
pub(crate) fn interface_v4(iface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(io::Error::from)?;
    Ok(addrs
        .filter(|a| a.interface_name == iface)
        .filter_map(|a| {
            let addr = a.address?.as_sockaddr_in()?.ip();
            let mask = a.netmask?.as_sockaddr_in()?.ip();
            Some((addr, u32::from(mask).count_ones() as u8))
        })
        .collect())
}

/// The server identifier for a lease: the device's address on the lease's
/// subnet, else its first IPv4 address (as newer dhcp_release does).
pub(crate) fn server_for(ip: Ipv4Addr, addrs: &[(Ipv4Addr, u8)]) -> Option<Ipv4Addr> {
    addrs
        .iter()
        .find(|(a, len)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
            u32::from(*a) & mask == u32::from(ip) & mask
        })
        .or(addrs.first())
        .map(|(a, _)| *a)
}

/// Packets sent between two looks at dnsmasq's receive queue.
const BURST: usize = 32;

/// Receive-queue fill (bytes of kernel memory) above which sending waits:
/// dnsmasq's DHCP socket holds about 200 KB (~150 packets) and drops beyond.
const QUEUE_HIGH: u64 = 96 * 1024;

/// Bytes queued on the namespace's UDP sockets bound to port 67, read from
/// `/proc/thread-self/net/udp` (this thread's namespace).
fn dhcp_queue_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/udp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(1)?;
            if !local.ends_with(":0043") {
                return None;
            }
            let rx = f.get(4)?.split(':').nth(1)?;
            u64::from_str_radix(rx, 16).ok()
        })
        .sum()
}

/// Waits (up to 1 s) until dnsmasq has worked its queue down, so a large
/// batch is not dropped by its socket buffer.
fn wait_for_queue() {
    let deadline = Instant::now() + Duration::from_secs(1);
    while dhcp_queue_bytes() > QUEUE_HIGH && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Sends DHCPv4 releases through one socket bound to `iface` inside
/// `namespace`; returns how many were sent. Blocking.
pub fn send_v4(
    namespace: Option<&str>,
    iface: &str,
    releases: &[Release],
) -> Result<usize, ProcessError> {
    let items: Vec<(Ipv4Addr, String, Option<String>)> = releases
        .iter()
        .filter_map(|r| match r {
            Release::V4 { ip, mac, client_id } => Some((*ip, mac.clone(), client_id.clone())),
            Release::V6 { .. } => None,
        })
        .collect();
    if items.is_empty() {
        return Ok(0);
    }
    let iface = iface.to_string();
    in_namespace(namespace, move || {
        let addrs = interface_v4(&iface)?;
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        bind_to_device(&sock, &iface)?;
        let mut sent = 0;
        for (i, (ip, mac, cid)) in items.iter().enumerate() {
            let Some(server) = server_for(*ip, &addrs) else {
                tracing::warn!(%iface, %ip, "no IPv4 address on the device; lease not released");
                continue;
            };
            if i > 0 && i % BURST == 0 {
                wait_for_queue();
            }
            let pkt = release_packet(*ip, mac, cid.as_deref(), server);
            match sock.send_to(&pkt, SocketAddrV4::new(server, 67)) {
                Ok(_) => sent += 1,
                Err(e) => tracing::warn!(%iface, %ip, "DHCPRELEASE not sent: {e}"),
            }
        }
        Ok(sent)
    })
}

pub(crate) fn bind_to_device(sock: &UdpSocket, iface: &str) -> io::Result<()> {
    let name = iface.as_bytes();
    // SAFETY: setsockopt with a valid buffer and its length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Releases one DHCPv4 lease by forking contrib's `dhcp_release` in the
/// namespace (Neutron's way; kept for comparison in the benchmark).
pub fn fork_dhcp_release(
    namespace: Option<&str>,
    iface: &str,
    release: &Release,
) -> Result<bool, ProcessError> {
    let Release::V4 { ip, mac, client_id } = release else {
        return Ok(false);
    };
    let mut cmd = process::command_in_namespace(namespace, None, "dhcp_release")?;
    cmd.arg(iface).arg(ip.to_string()).arg(mac);
    if let Some(c) = client_id {
        cmd.arg(c);
    }
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|source| ProcessError::Io {
            context: "running dhcp_release".into(),
            source,
        })?;
    Ok(status.success())
}

/// Releases one DHCPv6 lease by forking `dhcp_release6` in the namespace.
pub fn send_v6(
    namespace: Option<&str>,
    iface: &str,
    release: &Release,
) -> Result<bool, ProcessError> {
    let Release::V6 {
        ip,
        client_id,
        server_id,
        iaid,
    } = release
    else {
        return Ok(false);
    };
    let status = process::command_in_namespace(namespace, None, "dhcp_release6")?
        .args(["--iface", iface, "--ip", &ip.to_string()])
        .args([
            "--client-id",
            client_id,
            "--server-id",
            server_id,
            "--iaid",
            iaid,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|source| ProcessError::Io {
            context: "running dhcp_release6".into(),
            source,
        })?;
    Ok(status.success())
}

/// What a release pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    /// DHCPv4 packets sent (all rounds).
    pub sent_v4: usize,
    /// DHCPv6 releases run (all rounds).
    pub sent_v6: usize,
    /// Addresses still in the lease file after the last round.
    pub remaining: Vec<IpAddr>,
    /// Time spent building and sending the DHCPv4 packets (all rounds).
    pub send_time: Duration,
}

/// Rounds of sending before giving up (Neutron: 3).
const ROUNDS: usize = 3;
/// Longest wait per round for dnsmasq to drop the leases (Neutron sleeps 0.3 s).
const ROUND_WAIT: Duration = Duration::from_millis(300);

/// Sends `releases` and waits until dnsmasq has dropped them from `leases_file`,
/// resending what is left, up to three rounds. Blocking.
pub fn release_and_confirm(
    namespace: Option<&str>,
    iface: &str,
    leases_file: &Path,
    releases: Vec<Release>,
) -> ReleaseReport {
    let mut report = ReleaseReport::default();
    let mut pending = releases;
    for round in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        let t = Instant::now();
        match send_v4(namespace, iface, &pending) {
            Ok(n) => report.sent_v4 += n,
            Err(e) => tracing::warn!(%iface, "DHCPv4 releases failed: {e}"),
        }
        report.send_time += t.elapsed();
        for r in pending.iter().filter(|r| matches!(r, Release::V6 { .. })) {
            match send_v6(namespace, iface, r) {
                Ok(_) => report.sent_v6 += 1,
                Err(e) => tracing::warn!(%iface, ip = %r.ip(), "dhcp_release6 failed: {e}"),
            }
        }
        let deadline = Instant::now() + ROUND_WAIT;
        loop {
            let now = parse_leases(&read_leases_file(leases_file));
            pending.retain(|r| now.by_ip.contains_key(&r.ip()));
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !pending.is_empty() {
            tracing::debug!(
                round,
                left = pending.len(),
                "leases still present, sending again"
            );
        }
    }
    report.remaining = pending.iter().map(Release::ip).collect();
    if !report.remaining.is_empty() {
        tracing::warn!(%iface, remaining = ?report.remaining, "leases not released after {ROUNDS} rounds");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_layout_matches_dhcp_release() {
        let p = release_packet(
            "198.51.100.7".parse().unwrap(),
            "fa:16:3e:00:00:01",
            Some("01:fa:16:3e:00:00:01"),
            "198.51.100.2".parse().unwrap(),
        );
        assert_eq!(p.len(), 548);
        assert_eq!(&p[0..3], &[1, 1, 6]);
        assert_eq!(&p[12..16], &[198, 51, 100, 7]);
        assert_eq!(&p[28..34], &[0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(&p[236..240], &[0x63, 0x82, 0x53, 0x63]);
        assert_eq!(&p[240..249], &[53, 1, 7, 54, 4, 198, 51, 100, 2]);
        assert_eq!(&p[249..258], &[61, 7, 1, 0xfa, 0x16, 0x3e, 0, 0, 1]);
        assert_eq!(p[258], 255);
        let q = release_packet(
            "198.51.100.7".parse().unwrap(),
            "06-aa:bb:cc:dd:ee:ff",
            Some("*"),
            "198.51.100.2".parse().unwrap(),
        );
        assert_eq!(q[1], 6);
        assert_eq!(q[249], 255);
    }

    #[test]
    fn server_id_prefers_the_same_subnet() {
        let addrs = [
            ("203.0.113.2".parse().unwrap(), 24),
            ("198.51.100.2".parse().unwrap(), 24),
        ];
        assert_eq!(
            server_for("198.51.100.9".parse().unwrap(), &addrs),
            Some("198.51.100.2".parse().unwrap())
        );
        assert_eq!(
            server_for("10.0.0.1".parse().unwrap(), &addrs),
            Some("203.0.113.2".parse().unwrap())
        );
        assert_eq!(server_for("10.0.0.1".parse().unwrap(), &[]), None);
    }

    fn network(ports: serde_json::Value) -> Network {
        serde_json::from_value(serde_json::json!({
            "id": "net-1",
            "subnets": [{"id": "s4", "cidr": "198.51.100.0/24", "ip_version": 4}],
            "ports": ports,
        }))
        .unwrap()
    }

    #[test]
    fn releases_only_gone_ports() {
        let net = network(serde_json::json!([
            {"id": "p1", "mac_address": "fa:16:3e:00:00:01",
             "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.51.100.10"}]},
            {"id": "p3", "mac_address": "fa:16:3e:00:00:03",
             "fixed_ips": [{"subnet_id": "s4", "ip_address": "198.51.100.30"}]}
        ]));
        let hosts = "fa:16:3e:00:00:01,host-198-51-100-10.openstacklocal,198.51.100.10\n\
                     fa:16:3e:00:00:02,id:cid2,host-198-51-100-20.openstacklocal,198.51.100.20,set:port-p2\n\
                     fa:16:3e:00:00:03,host-198-51-100-30.openstacklocal,198.51.100.30\n\
                     fa:16:3e:00:00:09,set:port-p9\n";
        let leases = parse_leases(
            "duid 00:01:00:01:aa\n\
             1700000000 fa:16:3e:00:00:01 198.51.100.10 vm1 *\n\
             1700000000 fa:16:3e:00:00:02 198.51.100.20 vm2 01:fa:16:3e:00:00:02\n\
             1700000000 fa:16:3e:00:00:03 198.51.100.30 vm3 01:fa:16:3e:00:00:03\n\
             1700000000 fa:16:3e:00:00:04 198.51.100.40 * *\n",
        );
        let r = unused_leases(&net, hosts, &leases);
        let ips: Vec<String> = r.iter().map(|r| r.ip().to_string()).collect();
        // .20: port gone (both the hosts entry and the lease); .40: stale lease;
        // .30: the VM sent a client-id its port lacks, still in use; .10 in use.
        assert_eq!(ips, ["198.51.100.20", "198.51.100.20", "198.51.100.40"]);
        assert!(r.contains(&Release::V4 {
            ip: "198.51.100.20".parse().unwrap(),
            mac: "fa:16:3e:00:00:02".into(),
            client_id: Some("cid2".into())
        }));
        assert!(unused_leases(&net, hosts, &Leases::default()).is_empty());
    }

    #[test]
    fn v6_leases_carry_duids() {
        let net = network(serde_json::json!([]));
        let hosts = "fa:16:3e:00:00:05,tag:dhcpv6,host-2001-db8--5.openstacklocal,[2001:db8::5]\n";
        let leases = parse_leases(
            "duid 00:01:00:01:2c:aa\n1700000000 1234 2001:db8::5 vm5 00:03:00:01:fa:16:3e:00:00:05\n",
        );
        assert_eq!(
            unused_leases(&net, hosts, &leases),
            [Release::V6 {
                ip: "2001:db8::5".parse().unwrap(),
                client_id: "00:03:00:01:fa:16:3e:00:00:05".into(),
                server_id: "00:01:00:01:2c:aa".into(),
                iaid: "1234".into()
            }]
        );
    }
}
