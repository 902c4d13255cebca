//! Stateful DHCPv6 from the driver's dnsmasq to ISC dhclient in a client namespace.
//!
//! SLAAC/RA is not testable against this driver: Neutron's command line has
//! no `--enable-ra` (router advertisements come from the L3 agent's radvd),
//! so the dnsmasq started here never sends an RA; a SLAAC subnet gets no
//! `--dhcp-range` at all. What is tested is the driver's part: the stateful
//! range and the `tag:dhcpv6` host line giving the exact address.

mod privileged_fixture;

use leasehold_core::driver::DhcpDriver;
use leasehold_dnsmasq::driver::ReloadByRestart;
use privileged_fixture::{monitor, privileged, Fixture};
use serde_json::json;

const MAC: &str = "fa:16:3e:66:00:01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhcpv6_stateful_client_gets_the_ports_address() {
    if !privileged("dhcpv6_stateful_client_gets_the_ports_address") {
        return;
    }
    let fx = Fixture::new(true);
    fx.set_client_mac(MAC);
    let mon = monitor();
    let driver = fx.driver(ReloadByRestart::Auto, &mon);
    let vm = json!({
        "id": "00000006-0000-4000-8000-0000000000aa", "mac_address": MAC,
        "device_owner": "compute:nova", "device_id": "vm6",
        "fixed_ips": [
            {"subnet_id": "5b000000-0000-4000-8000-000000000004", "ip_address": "198.51.100.90"},
            {"subnet_id": "5b000000-0000-4000-8000-000000000006", "ip_address": "2001:db8::90"}
        ]
    });
    let net = fx.network(vec![vm], true);
    driver.enable(&net, &fx.device()).await.unwrap();
    let hosts = std::fs::read_to_string(fx.conf_file("host")).unwrap();
    assert!(hosts.contains("[2001:db8::90]"), "{hosts}");

    let lease = leasehold_testkit::dhclient6_once(&fx.client_ns, &fx.client_dev, fx.dir.path(), 20)
        .expect("dhclient -6 got no lease");
    assert!(
        lease.contains("iaaddr 2001:db8::90"),
        "wrong or no address:\n{lease}"
    );
    assert!(
        lease.contains("dhcp6.name-servers 2001:db8::53"),
        "no DNS server:\n{lease}"
    );
    // dnsmasq recorded the v6 lease (IAID and DUID) for later release.
    let leases = fx.leases_text();
    assert!(leases.contains("2001:db8::90"), "{leases}");
    assert!(leases.lines().any(|l| l.starts_with("duid ")), "{leases}");
    driver.disable(&fx.id(), false).await.unwrap();
}
