//! Linux network plumbing for Leasehold — the place of Neutron's `ip_lib` —
//! over `rtnetlink` and `nix`, with no `ip` subprocesses.
//!
//! * [`Netns`]: named namespaces as iproute2 makes them (`/run/netns/<name>`
//!   bind mounts; `/run/netns` a shared mount point), so `ip netns` sees
//!   ours. [`Netns::ensure`] replaces a stale entry whose namespace is gone.
//! * [`Handle`]: one rtnetlink connection per namespace, its socket created
//!   on a thread that entered the namespace, then used from async code:
//!   links ([`Handle::add_veth`], [`Handle::add_bridge`], [`Handle::set_netns`],
//!   [`Handle::change_link`] with a [`LinkChange`] (move, MAC, MTU and up in
//!   one request), [`Handle::set_mac`], [`Handle::set_mtu`], [`Handle::set_up`],
//!   [`Handle::delete_link`], [`Handle::list_links`]…), addresses
//!   ([`Handle::addresses`], [`Handle::add_address`], [`Handle::del_address`],
//!   [`Handle::init_l3`]) and routes ([`Handle::default_gateway`],
//!   [`Handle::set_default_gateway`], [`Handle::del_default_gateway`],
//!   [`Handle::add_onlink_route`], [`Handle::del_onlink_route`]).
//! * [`sysctl_set`] / [`sysctl_get`] / [`isolate_l2`]: `/proc/sys` inside a
//!   namespace, written from a thread that entered it.
//! * [`disable_checksum_offload`]: ethtool's `tx off rx off` by ioctl.
//!
//! Benchmark against `ip` in a shell loop (as root):
//! `cargo run --release -p leasehold-netlink --example bench_netns -- 50`.
//!
//! Nothing here forks, and no runtime thread ever changes namespace: every
//! namespace switch happens on a short-lived OS thread of its own.
//!
//! ```no_run
//! # async fn demo() -> Result<(), leasehold_netlink::Error> {
//! use leasehold_netlink::{Handle, LinkChange, Netns};
//! Netns::ensure("qdhcp-demo").await?;
//! let root = Handle::open(None).await?;
//! root.add_veth("tapdemo", "ns-demo", Some("qdhcp-demo")).await?;
//! let ns = Handle::open(Some("qdhcp-demo")).await?;
//! let ready = LinkChange::default().mac([0xfa, 0x16, 0x3e, 0, 0, 1]).up();
//! ns.change_link("ns-demo", &ready).await?;
//! ns.init_l3("ns-demo", &["198.51.100.2/24".parse().unwrap()]).await?;
//! # Ok(()) }
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod addr;
mod error;
mod ethtool;
mod handle;
mod ioctl;
mod link;
mod netns;
mod route;
mod sysctl;

pub use addr::{eui64_link_local, init_l3, Address, Scope};
pub use error::{Error, NsLabel, Result};
pub use ethtool::{checksum_offload, disable_checksum_offload};
pub use handle::Handle;
pub use link::{format_mac, Link, LinkChange};
pub use netns::{run_in, Netns, NETNS_RUN_DIR};
pub use route::{IpVersion, Route};
pub use sysctl::{device_key, isolate_l2, sysctl_get, sysctl_set};
