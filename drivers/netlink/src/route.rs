//! Routes of the main table: the default gateway and on-link host routes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};

use crate::error::Result;
use crate::handle::{nl_not_found, Handle};

/// An IP version, to pick a routing family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// The version of an address.
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    fn rtnetlink(self) -> rtnetlink::IpVersion {
        match self {
            IpVersion::V4 => rtnetlink::IpVersion::V4,
            IpVersion::V6 => rtnetlink::IpVersion::V6,
        }
    }
}

/// A route of the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination (`0.0.0.0/0` for the default route).
    pub destination: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output device index.
    pub device_index: Option<u32>,
    /// Link scope (an on-link route, no next hop).
    pub link_scope: bool,
    /// Made by the kernel for an address's subnet (`proto kernel`).
    pub kernel: bool,
    msg: RouteMessage,
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl Route {
    fn from_message(msg: RouteMessage, version: IpVersion) -> Option<Self> {
        let mut table = u32::from(msg.header.table);
        let mut dst = None;
        let mut gateway = None;
        let mut oif = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(a) => dst = addr(a),
                RouteAttribute::Gateway(a) => gateway = addr(a),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            return None;
        }
        let dst = dst.unwrap_or(match version {
            IpVersion::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpVersion::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let destination = IpNet::new(dst, msg.header.destination_prefix_length).ok()?;
        Some(Route {
            destination,
            gateway,
            device_index: oif,
            link_scope: msg.header.scope == RouteScope::Link,
            kernel: msg.header.protocol == RouteProtocol::Kernel,
            msg,
        })
    }

    fn is_default(&self) -> bool {
        self.destination.prefix_len() == 0
    }
}

fn host_net(ip: IpAddr) -> IpNet {
    match ip {
        IpAddr::V4(_) => IpNet::new(ip, 32),
        IpAddr::V6(_) => IpNet::new(ip, 128),
    }
    .expect("a host prefix length is always valid")
}

impl Handle {
    /// Routes of the main table of one IP version.
    pub async fn routes(&self, version: IpVersion) -> Result<Vec<Route>> {
        let msgs: Vec<RouteMessage> = self
            .rtnetlink()
            .route()
            .get(version.rtnetlink())
            .execute()
            .try_collect()
            .await
            .map_err(self.nl_err(format!("list {version:?} routes")))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| Route::from_message(m, version))
            .collect())
    }

    /// The gateway of the default route of one IP version, if any.
    pub async fn default_gateway(&self, version: IpVersion) -> Result<Option<IpAddr>> {
        Ok(self
            .routes(version)
            .await?
            .into_iter()
            .filter(Route::is_default)
            .find_map(|r| r.gateway))
    }

    /// Sets (replaces) the default route of the gateway's version: via
    /// `gateway` on `device`. A gateway outside the device's subnets needs an
    /// on-link route first ([`Handle::add_onlink_route`]).
    pub async fn set_default_gateway(&self, device: &str, gateway: IpAddr) -> Result<()> {
        let idx = self.link_index(device).await?;
        let op = format!("set default route via {gateway} dev {device}");
        let add = self
            .rtnetlink()
            .route()
            .add()
            .output_interface(idx)
            .protocol(RouteProtocol::Boot);
        let result = match gateway {
            IpAddr::V4(gw) => {
                add.v4()
                    .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
                    .gateway(gw)
                    .replace()
                    .execute()
                    .await
            }
            IpAddr::V6(gw) => {
                add.v6()
                    .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
                    .gateway(gw)
                    .replace()
                    .execute()
                    .await
            }
        };
        result.map_err(self.nl_err(op))
    }

    /// Removes the default route(s) of one IP version; returns whether there was one.
    pub async fn del_default_gateway(&self, version: IpVersion) -> Result<bool> {
        let mut removed = false;
        for r in self
            .routes(version)
            .await?
            .into_iter()
            .filter(Route::is_default)
        {
            removed |= self.del_route(r).await?;
        }
        Ok(removed)
    }

    /// Adds (or replaces) an on-link host route to `ip` on `device`
    /// (`ip route replace <ip> dev <device> scope link`): how a gateway
    /// outside the subnet is made reachable.
    pub async fn add_onlink_route(&self, device: &str, ip: IpAddr) -> Result<()> {
        let idx = self.link_index(device).await?;
        let op = format!("add on-link route to {ip} dev {device}");
        let add = self
            .rtnetlink()
            .route()
            .add()
            .output_interface(idx)
            .protocol(RouteProtocol::Boot)
            .scope(RouteScope::Link);
        let result = match ip {
            IpAddr::V4(a) => add.v4().destination_prefix(a, 32).replace().execute().await,
            IpAddr::V6(a) => {
                add.v6()
                    .destination_prefix(a, 128)
                    .replace()
                    .execute()
                    .await
            }
        };
        result.map_err(self.nl_err(op))
    }

    /// Removes the on-link host route to `ip` on `device`; absent is fine.
    pub async fn del_onlink_route(&self, device: &str, ip: IpAddr) -> Result<bool> {
        let idx = self.link_index(device).await?;
        let target = host_net(ip);
        let mut removed = false;
        for r in self.routes(IpVersion::of(&ip)).await? {
            if r.destination == target && r.link_scope && r.device_index == Some(idx) {
                removed |= self.del_route(r).await?;
            }
        }
        Ok(removed)
    }

    /// On-link routes on `device` that are not the kernel's subnet routes.
    pub async fn onlink_routes(&self, device: &str) -> Result<Vec<IpNet>> {
        let idx = self.link_index(device).await?;
        let mut out = Vec::new();
        for v in [IpVersion::V4, IpVersion::V6] {
            out.extend(
                self.routes(v)
                    .await?
                    .into_iter()
                    .filter(|r| r.link_scope && !r.kernel && r.device_index == Some(idx))
                    .map(|r| r.destination),
            );
        }
        Ok(out)
    }

    async fn del_route(&self, r: Route) -> Result<bool> {
        let dst = r.destination;
        match self.rtnetlink().route().del(r.msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) if nl_not_found(&e) => Ok(false),
            Err(e) => Err(self.nl_err(format!("delete route to {dst}"))(e)),
        }
    }
}
