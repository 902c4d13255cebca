//! The DeviceManager with the `openvswitch` interface driver on a private
//! userspace Open vSwitch, dnsmasq and a real DHCP client on an internal
//! port. Root only; with CI=true a non-root run fails instead of skipping.

mod device_manager_common;

use device_manager_common::{
    lifecycle, missing_integration_bridge, plug_fails_half_way, same_name_in_root,
    stale_netns_entry, Kind,
};
use leasehold_testkit::privileged;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_dual_stack_setup_lease_resetup_shrink_destroy() {
    if privileged("ovs_dual_stack_setup_lease_resetup_shrink_destroy") {
        lifecycle(Kind::Ovs).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_stale_netns_entry_is_replaced() {
    if privileged("ovs_stale_netns_entry_is_replaced") {
        stale_netns_entry(Kind::Ovs).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_missing_integration_bridge_is_a_clear_error() {
    if privileged("ovs_missing_integration_bridge_is_a_clear_error") {
        missing_integration_bridge().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_same_name_device_in_root_is_replaced() {
    if privileged("ovs_same_name_device_in_root_is_replaced") {
        same_name_in_root(Kind::Ovs).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovs_plug_failing_half_way_leaves_nothing() {
    if privileged("ovs_plug_failing_half_way_leaves_nothing") {
        plug_fails_half_way(Kind::Ovs).await;
    }
}
