//! The Open vSwitch interface driver (Neutron's `OVSInterfaceDriver`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use leasehold_core::driver::{tap_name, DriverContext, DriverError, InterfaceDriver, PlugSpec};
use leasehold_core::model::Id;
use leasehold_netlink::{
    disable_checksum_offload, format_mac, isolate_l2, Handle, LinkChange, Netns,
};

use crate::ovsdb::{AddPortError, Ovsdb, PortIds, Target};
use crate::settings::Settings;
use crate::vsctl::Vsctl;

/// How long to wait for an internal port's device to appear (Neutron: 10 × 1 s).
const APPEAR_TIMEOUT: Duration = Duration::from_secs(10);
const APPEAR_POLL: Duration = Duration::from_millis(50);

/// The `openvswitch` interface driver.
#[derive(Clone, Debug)]
pub struct OvsDriver {
    settings: Settings,
    /// The plug path's transactions.
    ovsdb: Arc<Ovsdb>,
    /// The rest (VLAN tags of the standalone mode).
    vsctl: Vsctl,
}

pub(crate) fn create(ctx: &DriverContext<'_>) -> Result<Arc<dyn InterfaceDriver>, DriverError> {
    Ok(Arc::new(OvsDriver::new(Settings::from_options(
        ctx.options,
    )?)?))
}

/// The root end of a veth-mode device: `ns-` replaced by `tap`.
fn root_end(device: &str) -> String {
    match device.strip_prefix("ns-") {
        Some(rest) => format!("tap{rest}"),
        None => device.to_string(),
    }
}

impl OvsDriver {
    /// A driver with these settings.
    pub fn new(settings: Settings) -> Result<Self, DriverError> {
        let target = Target::parse(settings.ovsdb_connection.as_deref())?;
        let ovsdb = Ovsdb::new(target, Duration::from_secs(settings.ovsdb_timeout.into()));
        let vsctl = Vsctl {
            db: settings.ovsdb_connection.clone(),
            timeout: settings.ovsdb_timeout,
        };
        Ok(OvsDriver {
            settings,
            ovsdb: Arc::new(ovsdb),
            vsctl,
        })
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The ovs-vsctl runner it uses.
    pub fn vsctl(&self) -> &Vsctl {
        &self.vsctl
    }

    /// Sets a real access VLAN on the port (the agent's standalone mode does
    /// this after plugging; with an OVS L2 agent, that agent does it).
    /// `port_name` is the OVS port: `tap…` (also in `ovs_use_veth` mode).
    pub async fn set_port_tag(&self, port_name: &str, tag: u16) -> Result<(), DriverError> {
        self.vsctl.set_port_tag(port_name, tag).await
    }

    /// Adds the DHCP port to the bridge; a missing bridge gets its own error.
    async fn add_port(
        &self,
        bridge: &str,
        port: &str,
        spec: &PlugSpec,
        internal: bool,
    ) -> Result<(), DriverError> {
        let mac = format_mac(&spec.mac.value().0);
        let ids = PortIds {
            iface_id: spec.port_id.as_str(),
            mac: &mac,
        };
        match self.ovsdb.add_dhcp_port(bridge, port, &ids, internal).await {
            Ok(()) => Ok(()),
            Err(AddPortError::NoBridge) => Err(DriverError::Missing {
                what: format!("Open vSwitch bridge {bridge}"),
                hint: format!(
                    "create it (ovs-vsctl add-br {bridge}) or set [OVS] integration_bridge to an existing bridge"
                ),
            }),
            Err(AddPortError::Other(e)) => Err(e),
        }
    }

    /// Applies `change` once the device is there: OVS makes internal ports
    /// asynchronously (Neutron waits for the device, then retries its move
    /// on "interface not found"). The change itself is the check, so no
    /// look-up request goes first; only our "no such device" is retried, a
    /// kernel error may come after the move happened (EADDRNOTAVAIL is also
    /// a multicast MAC refused).
    async fn change_when_present(
        root: &Handle,
        device: &str,
        change: &LinkChange<'_>,
    ) -> Result<(), leasehold_netlink::Error> {
        let deadline = tokio::time::Instant::now() + APPEAR_TIMEOUT;
        loop {
            match root.change_link(device, change).await {
                Err(leasehold_netlink::Error::NoSuchDevice { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(APPEAR_POLL).await
                }
                done => return done,
            }
        }
    }

    async fn plug_internal(&self, spec: &PlugSpec, bridge: &str) -> Result<(), DriverError> {
        let dev = spec.device_name.as_str();
        let ns = spec.namespace.as_deref();
        let err = |what: &str| {
            let context = format!("plug {dev} (port {}): {what}", spec.port_id);
            move |e: leasehold_netlink::Error| e.into_driver_error(&context)
        };
        // Where a plug's time goes, for the debug log (milliseconds).
        let started = tokio::time::Instant::now();
        let ms = |since: tokio::time::Instant| since.elapsed().as_secs_f64() * 1e3;
        let root = Handle::open(None).await.map_err(err("open"))?;
        // Neutron's replace_port, first transaction: drop a stale port of
        // that name; then any other device of that name in the root namespace.
        self.ovsdb.del_port(dev).await?;
        let stale_removed = ms(started);
        if root
            .delete_link(dev)
            .await
            .map_err(err("remove stale device"))?
        {
            tracing::info!(
                device = dev,
                "removed a stale device of the same name in the root namespace"
            );
        }
        let t = tokio::time::Instant::now();
        self.add_port(bridge, dev, spec, true).await?;
        let add_port = ms(t);
        // One request: the move, then (inside the namespace, where OVS no
        // longer caps the MTU of a port it sees) MAC, MTU and up. Neutron
        // sends these as four commands, the MAC first, in the root
        // namespace; the device ends the same, and the host's rtnl lock is
        // taken once instead of four times (see `LinkChange`).
        let t = tokio::time::Instant::now();
        let change = LinkChange::default()
            .mac(spec.mac.value().0)
            .mtu(spec.mtu)
            .up();
        let change = match ns {
            Some(ns) => change.into_namespace(ns),
            None => change,
        };
        match Self::change_when_present(&root, dev, &change).await {
            Err(leasehold_netlink::Error::NoSuchDevice { .. }) => {
                return Err(DriverError::Failed(format!(
                    "OVS internal port {dev} did not appear within {}s",
                    APPEAR_TIMEOUT.as_secs()
                )))
            }
            done => done.map_err(err("move into the namespace, MAC, MTU, up"))?,
        }
        let configure = ms(t);
        tracing::debug!(
            device = dev,
            total_ms = ms(started),
            stale_port_ms = stale_removed,
            add_port_and_vswitchd_ms = add_port,
            appear_move_and_configure_ms = configure,
            "plugged"
        );
        Ok(())
    }

    async fn plug_veth(&self, spec: &PlugSpec, bridge: &str) -> Result<(), DriverError> {
        let dev = spec.device_name.as_str();
        let tap = root_end(dev);
        let ns = spec.namespace.as_deref();
        let err = |what: &str| {
            let context = format!("plug {dev} (port {}): {what}", spec.port_id);
            move |e: leasehold_netlink::Error| e.into_driver_error(&context)
        };
        if tap == dev {
            return Err(DriverError::Failed(format!(
                "with ovs_use_veth the device name {dev:?} must start with \"ns-\""
            )));
        }
        let root = Handle::open(None).await.map_err(err("open"))?;
        self.ovsdb.del_port(&tap).await?;
        root.delete_link(&tap)
            .await
            .map_err(err("remove stale device"))?;
        if ns.is_some() {
            root.delete_link(dev)
                .await
                .map_err(err("remove stale device"))?;
        }
        root.add_veth(&tap, dev, ns)
            .await
            .map_err(err("add veth"))?;
        isolate_l2(None, &tap)
            .await
            .map_err(err("isolate root end"))?;
        self.add_port(bridge, &tap, spec, false).await?;
        // Without this, DHCP replies over a userspace datapath carry
        // unfilled checksums; harmless on the kernel datapath.
        disable_checksum_offload(ns, dev)
            .await
            .map_err(err("disable checksum offload"))?;
        // Each end in one request (see `LinkChange`).
        let inner = Handle::open(ns).await.map_err(err("open namespace"))?;
        let end = LinkChange::default().mtu(spec.mtu).up();
        inner
            .change_link(dev, &end.mac(spec.mac.value().0))
            .await
            .map_err(err("MAC, MTU, up"))?;
        root.change_link(&tap, &end)
            .await
            .map_err(err("root end MTU, up"))?;
        Ok(())
    }

    /// Removes the port and whatever device of ours is left; every step is
    /// tried, the first error is reported.
    async fn remove(&self, device: &str, namespace: Option<&str>) -> Result<(), DriverError> {
        let port = if self.settings.ovs_use_veth {
            root_end(device)
        } else {
            device.to_string()
        };
        let mut first: Option<DriverError> = None;
        let mut note = |r: Result<(), DriverError>| {
            if let Err(e) = r {
                tracing::warn!(device, error = %e, "unplug step failed");
                first.get_or_insert(e);
            }
        };
        note(self.ovsdb.del_port(&port).await);
        let context = format!("unplug {device}");
        if namespace.is_none_or(Netns::exists) {
            let r = async {
                Handle::open(namespace).await?.delete_link(device).await?;
                Ok::<_, leasehold_netlink::Error>(())
            }
            .await;
            note(r.map_err(|e| e.into_driver_error(&context)));
        }
        if port != device || namespace.is_some() {
            let r = async {
                Handle::open(None).await?.delete_link(&port).await?;
                Ok::<_, leasehold_netlink::Error>(())
            }
            .await;
            note(r.map_err(|e| e.into_driver_error(&context)));
        }
        first.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl InterfaceDriver for OvsDriver {
    fn device_name(&self, port_id: &Id) -> String {
        let prefix = if self.settings.ovs_use_veth {
            "ns-"
        } else {
            "tap"
        };
        tap_name(prefix, port_id)
    }

    async fn plug(&self, spec: &PlugSpec) -> Result<(), DriverError> {
        let ns = spec.namespace.as_deref();
        let dev = spec.device_name.as_str();
        let context = format!("plug {dev} (port {})", spec.port_id);
        let (inner, exists) = Handle::open_for_plug(ns, dev)
            .await
            .map_err(|e| e.into_driver_error(&context))?;
        if exists {
            // Neutron's plug of an existing device: only the MTU is fixed.
            if let Some(mtu) = spec.mtu {
                inner
                    .set_mtu(dev, mtu)
                    .await
                    .map_err(|e| e.into_driver_error(&context))?;
                if self.settings.ovs_use_veth {
                    let root = Handle::open(None)
                        .await
                        .map_err(|e| e.into_driver_error(&context))?;
                    let tap = root_end(dev);
                    if root.link_exists(&tap).await.unwrap_or(false) {
                        root.set_mtu(&tap, mtu)
                            .await
                            .map_err(|e| e.into_driver_error(&context))?;
                    }
                }
            }
            return Ok(());
        }
        let bridge = spec
            .bridge
            .clone()
            .unwrap_or_else(|| self.settings.integration_bridge.clone());
        let result = if self.settings.ovs_use_veth {
            self.plug_veth(spec, &bridge).await
        } else {
            self.plug_internal(spec, &bridge).await
        };
        let Err(e) = result else { return Ok(()) };
        tracing::warn!(device = dev, error = %e, "plug failed; removing what was made");
        if let Err(undo) = self.remove(dev, ns).await {
            tracing::warn!(device = dev, error = %undo, "could not remove a half-made port");
        }
        Err(e)
    }

    async fn unplug(&self, device: &str, namespace: Option<&str>) -> Result<(), DriverError> {
        self.remove(device, namespace).await
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
    fn device_names() {
        let port = Id::new("abcdef01-1234-5678-9abc-def012345678").unwrap();
        let d = OvsDriver::new(Settings::default()).unwrap();
        assert_eq!(d.device_name(&port), "tapabcdef01-12");
        let v = OvsDriver::new(Settings {
            ovs_use_veth: true,
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(v.device_name(&port), "ns-abcdef01-12");
        assert_eq!(root_end("ns-abcdef01-12"), "tapabcdef01-12");
        assert!(d.bridged());
    }
}
