//! The DeviceManager with the `linuxbridge` interface driver, dnsmasq and a
//! real DHCP client on the network's bridge. Root only; with CI=true a
//! non-root run fails instead of skipping.

mod device_manager_common;

use device_manager_common::{
    lifecycle, plug_fails_half_way, same_name_in_root, stale_netns_entry, Kind,
};
use leasehold_testkit::privileged;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_dual_stack_setup_lease_resetup_shrink_destroy() {
    if privileged("linuxbridge_dual_stack_setup_lease_resetup_shrink_destroy") {
        lifecycle(Kind::LinuxBridge).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_stale_netns_entry_is_replaced() {
    if privileged("linuxbridge_stale_netns_entry_is_replaced") {
        stale_netns_entry(Kind::LinuxBridge).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_same_name_devices_in_root_are_replaced() {
    if privileged("linuxbridge_same_name_devices_in_root_are_replaced") {
        same_name_in_root(Kind::LinuxBridge).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linuxbridge_plug_failing_half_way_leaves_nothing() {
    if privileged("linuxbridge_plug_failing_half_way_leaves_nothing") {
        plug_fails_half_way(Kind::LinuxBridge).await;
    }
}
