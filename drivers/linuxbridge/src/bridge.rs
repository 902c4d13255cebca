//! The Linux bridge interface driver: a veth pair per DHCP port.
//!
//! `tap<port[:11]>` stays in the root namespace, layer 2 only (no IPv6,
//! `arp_ignore=8`), enslaved to `brq<network[:11]>`; `ns-<port[:11]>` is made
//! directly in the DHCP namespace and carries the port's MAC. Neutron left
//! enslaving the tap to its L2 agent; without one (standalone mode) nothing
//! else would, so this driver makes the bridge if it is missing (kept layer
//! 2 only and up) and enslaves the tap itself — harmless when an L2 agent
//! does the same.

use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use leasehold_core::driver::{tap_name, DriverContext, DriverError, InterfaceDriver, PlugSpec};
use leasehold_core::model::Id;
use leasehold_netlink::{isolate_l2, Handle, LinkChange, Netns};

/// Prefix of the namespace end, Neutron's `DEV_NAME_PREFIX` for this driver.
pub const NS_PREFIX: &str = "ns-";
/// Prefix of the root end.
pub const TAP_PREFIX: &str = "tap";
/// Prefix of the network's bridge.
pub const BRIDGE_PREFIX: &str = "brq";

/// The Linux bridge driver (`linuxbridge`).
#[derive(Debug, Default, Clone, Copy)]
pub struct BridgeDriver;

pub(crate) fn create(_: &DriverContext<'_>) -> Result<Arc<dyn InterfaceDriver>, DriverError> {
    Ok(Arc::new(BridgeDriver))
}

/// The network's bridge: `brq` and the first 11 characters of its id.
pub fn bridge_name(network_id: &Id) -> String {
    tap_name(BRIDGE_PREFIX, network_id)
}

/// The root end of a namespace device: its `ns-` prefix replaced by `tap`.
pub fn root_device_name(device: &str) -> String {
    match device.strip_prefix(NS_PREFIX) {
        Some(rest) => format!("{TAP_PREFIX}{rest}"),
        None => device.to_string(),
    }
}

/// What a plug has made so far, to undo it on failure.
#[derive(Default)]
struct Made {
    bridge: Option<String>,
    tap: Option<String>,
}

impl BridgeDriver {
    async fn plug_new(
        &self,
        spec: &PlugSpec,
        root: &Handle,
        made: &mut Made,
    ) -> Result<(), DriverError> {
        let ns = spec.namespace.as_deref();
        let dev = spec.device_name.as_str();
        let tap = root_device_name(dev);
        if tap == dev {
            return Err(DriverError::Failed(format!(
                "linuxbridge device name {dev:?} must start with {NS_PREFIX:?}"
            )));
        }
        let bridge = spec
            .bridge
            .clone()
            .unwrap_or_else(|| bridge_name(&spec.network_id));
        let err = |what: &str| {
            let context = format!("plug {dev} (port {}): {what}", spec.port_id);
            move |e: leasehold_netlink::Error| e.into_driver_error(&context)
        };

        // Leftovers in the root namespace under our names (a device of the
        // same name left behind by a crash, or a root end whose peer is
        // gone) are replaced.
        if ns.is_some() && root.delete_link(dev).await.map_err(err("remove stale"))? {
            tracing::info!(
                device = dev,
                "removed a stale device of the same name in the root namespace"
            );
        }
        if root.delete_link(&tap).await.map_err(err("remove stale"))? {
            tracing::info!(device = %tap, "removed a stale root end");
        }

        if !root
            .link_exists(&bridge)
            .await
            .map_err(err("look up bridge"))?
        {
            root.add_bridge(&bridge).await.map_err(err("add bridge"))?;
            made.bridge = Some(bridge.clone());
            isolate_l2(None, &bridge)
                .await
                .map_err(err("isolate bridge"))?;
        }
        root.set_up(&bridge).await.map_err(err("bridge up"))?;

        root.add_veth(&tap, dev, ns)
            .await
            .map_err(err("add veth"))?;
        made.tap = Some(tap.clone());
        isolate_l2(None, &tap)
            .await
            .map_err(err("isolate root end"))?;
        root.set_master(&tap, &bridge)
            .await
            .map_err(err("enslave"))?;

        // Each end in one request (see `LinkChange`).
        let end = LinkChange::default().mtu(spec.mtu).up();
        root.change_link(&tap, &end)
            .await
            .map_err(err("root end MTU, up"))?;
        let inner = Handle::open(ns).await.map_err(err("open namespace"))?;
        inner
            .change_link(dev, &end.mac(spec.mac.value().0))
            .await
            .map_err(err("MAC, MTU, up"))?;
        Ok(())
    }

    /// The steps of a plug after the pair exists, each idempotent: the
    /// bridge (made if missing), the root end layer 2 only, on the bridge,
    /// up, and the namespace end up with the port's MAC.
    async fn finish_root_end(
        &self,
        spec: &PlugSpec,
        root: &Handle,
        tap: &str,
    ) -> Result<(), DriverError> {
        let dev = spec.device_name.as_str();
        let bridge = spec
            .bridge
            .clone()
            .unwrap_or_else(|| bridge_name(&spec.network_id));
        let err = |what: &str| {
            let context = format!("replug {dev} (port {}): {what}", spec.port_id);
            move |e: leasehold_netlink::Error| e.into_driver_error(&context)
        };
        if !root
            .link_exists(&bridge)
            .await
            .map_err(err("look up bridge"))?
        {
            root.add_bridge(&bridge).await.map_err(err("add bridge"))?;
            isolate_l2(None, &bridge)
                .await
                .map_err(err("isolate bridge"))?;
        }
        root.set_up(&bridge).await.map_err(err("bridge up"))?;
        isolate_l2(None, tap)
            .await
            .map_err(err("isolate root end"))?;
        root.set_master(tap, &bridge)
            .await
            .map_err(err("enslave"))?;
        root.set_up(tap).await.map_err(err("root end up"))?;
        let inner = Handle::open(spec.namespace.as_deref())
            .await
            .map_err(err("open namespace"))?;
        inner
            .change_link(dev, &LinkChange::default().mac(spec.mac.value().0).up())
            .await
            .map_err(err("MAC, up"))?;
        Ok(())
    }

    /// Undoes a half-made plug: the veth (its peer goes with it) and a bridge
    /// this plug created. Errors are logged: the plug's own error is the one
    /// to report.
    async fn undo(root: &Handle, made: Made) {
        if let Some(tap) = made.tap {
            if let Err(e) = root.delete_link(&tap).await {
                tracing::warn!(device = %tap, error = %e, "could not remove half-made device");
            }
        }
        if let Some(bridge) = made.bridge {
            if let Err(e) = root.delete_link(&bridge).await {
                tracing::warn!(bridge = %bridge, error = %e, "could not remove half-made bridge");
            }
        }
    }
}

#[async_trait]
impl InterfaceDriver for BridgeDriver {
    fn device_name(&self, port_id: &Id) -> String {
        tap_name(NS_PREFIX, port_id)
    }

    async fn plug(&self, spec: &PlugSpec) -> Result<(), DriverError> {
        let ns = spec.namespace.as_deref();
        let dev = spec.device_name.as_str();
        let context = format!("plug {dev} (port {})", spec.port_id);
        let (inner, exists) = Handle::open_for_plug(ns, dev)
            .await
            .map_err(|e| e.into_driver_error(&context))?;
        if exists {
            let root = Handle::open(None)
                .await
                .map_err(|e| e.into_driver_error(&context))?;
            let tap = root_device_name(dev);
            if tap != dev && root.link_exists(&tap).await.unwrap_or(false) {
                // An agent killed between making the pair and finishing the
                // plug leaves the root end off the bridge or down: finish it.
                self.finish_root_end(spec, &root, &tap).await?;
            }
            // Neutron's plug of an existing device: only the MTU is fixed.
            if let Some(mtu) = spec.mtu {
                inner
                    .set_mtu(dev, mtu)
                    .await
                    .map_err(|e| e.into_driver_error(&context))?;
                if root.link_exists(&tap).await.unwrap_or(false) {
                    root.set_mtu(&tap, mtu)
                        .await
                        .map_err(|e| e.into_driver_error(&context))?;
                }
            }
            return Ok(());
        }
        let root = Handle::open(None)
            .await
            .map_err(|e| e.into_driver_error(&context))?;
        let mut made = Made::default();
        let result = self.plug_new(spec, &root, &mut made).await;
        if result.is_err() {
            Self::undo(&root, made).await;
        }
        result
    }

    async fn unplug(&self, device: &str, namespace: Option<&str>) -> Result<(), DriverError> {
        let context = format!("unplug {device}");
        let root = Handle::open(None)
            .await
            .map_err(|e| e.into_driver_error(&context))?;
        // The bridge this driver made for the network, found before the tap goes.
        let tap = root_device_name(device);
        let bridge = match root.link(&tap).await {
            Ok(Some(link)) => match link.master {
                Some(index) => root
                    .list_links()
                    .await
                    .ok()
                    .and_then(|links| links.into_iter().find(|l| l.index == index))
                    .map(|l| l.name)
                    .filter(|name| name.starts_with(BRIDGE_PREFIX)),
                None => None,
            },
            _ => None,
        };
        if namespace.is_none_or(Netns::exists) {
            let inner = Handle::open(namespace)
                .await
                .map_err(|e| e.into_driver_error(&context))?;
            inner
                .delete_link(device)
                .await
                .map_err(|e| e.into_driver_error(&context))?;
        }
        // The root end normally goes with its peer; remove it if the peer
        // was already gone.
        if tap != device {
            root.delete_link(&tap)
                .await
                .map_err(|e| e.into_driver_error(&context))?;
        }
        // Unlike Neutron (whose L2 agent owned the bridges), this driver
        // creates brq<net>; it removes it with its last port, so a network's
        // teardown leaves no device behind. A bridge with VM taps stays.
        if let Some(bridge) = bridge {
            if let Ok(links) = root.list_links().await {
                let index = links.iter().find(|l| l.name == bridge).map(|l| l.index);
                if index.is_some() && !links.iter().any(|l| l.master == index) {
                    root.delete_link(&bridge)
                        .await
                        .map_err(|e| e.into_driver_error(&context))?;
                }
            }
        }
        Ok(())
    }

    async fn init_l3(
        &self,
        device: &str,
        cidrs: &[IpNet],
        namespace: Option<&str>,
    ) -> Result<(), DriverError> {
        leasehold_netlink::init_l3(device, cidrs, namespace)
            .await
            .map_err(|e| e.into_driver_error(&format!("init_l3 on {device}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let port = Id::new("abcdef01-1234-5678-9abc-def012345678").unwrap();
        let net = Id::new("12345678-aaaa-bbbb-cccc-dddddddddddd").unwrap();
        assert_eq!(BridgeDriver.device_name(&port), "ns-abcdef01-12");
        assert_eq!(root_device_name("ns-abcdef01-12"), "tapabcdef01-12");
        assert_eq!(bridge_name(&net), "brq12345678-aa");
        assert!(BridgeDriver.bridged());
    }
}
