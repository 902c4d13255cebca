//! Addresses of a device, and `init_l3`: make them exactly a given set.

use std::net::{IpAddr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlag, AddressHeaderFlag, AddressMessage, AddressScope,
};

use crate::error::{Error, Result};
use crate::handle::{nl_not_found, Handle};

/// Scope of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Global (`scope global`).
    Global,
    /// Site.
    Site,
    /// Link (IPv6 link-locals).
    Link,
    /// Host (loopback).
    Host,
    /// Anything else.
    Other(u8),
}

impl From<AddressScope> for Scope {
    fn from(s: AddressScope) -> Self {
        match s {
            AddressScope::Universe => Scope::Global,
            AddressScope::Site => Scope::Site,
            AddressScope::Link => Scope::Link,
            AddressScope::Host => Scope::Host,
            other => Scope::Other(u8::from(other)),
        }
    }
}

/// An address on a device, as `ip addr` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The address with its prefix length (host bits kept: `198.51.100.5/24`).
    pub cidr: IpNet,
    /// Not permanent: learned (SLAAC, DHCP) or with a lifetime (`dynamic`).
    pub dynamic: bool,
    /// Its scope.
    pub scope: Scope,
    /// Still doing duplicate address detection.
    pub tentative: bool,
    msg: AddressMessage,
}

impl Address {
    fn from_message(msg: AddressMessage) -> Option<Self> {
        let mut local = None;
        let mut address = None;
        let mut flags: Option<Vec<AddressFlag>> = None;
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Address(a) => address = Some(*a),
                AddressAttribute::Flags(f) => flags = Some(f.clone()),
                _ => {}
            }
        }
        // IFA_LOCAL is the device's own address; IFA_ADDRESS is the peer on
        // point-to-point links (and the only one IPv6 sends).
        let ip = local.or(address)?;
        let cidr = IpNet::new(ip, msg.header.prefix_len).ok()?;
        let (permanent, tentative) = match &flags {
            Some(f) => (
                f.contains(&AddressFlag::Permanent),
                f.contains(&AddressFlag::Tentative),
            ),
            None => (
                msg.header.flags.contains(&AddressHeaderFlag::Permanent),
                msg.header.flags.contains(&AddressHeaderFlag::Tentative),
            ),
        };
        Some(Address {
            cidr,
            dynamic: !permanent,
            scope: msg.header.scope.into(),
            tentative,
            msg,
        })
    }
}

/// The EUI-64 IPv6 link-local address the kernel derives from a MAC.
pub fn eui64_link_local(mac: [u8; 6]) -> Ipv6Addr {
    let m = mac;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

impl Handle {
    /// The addresses of `device`, IPv4 and IPv6.
    pub async fn addresses(&self, device: &str) -> Result<Vec<Address>> {
        let idx = self.link_index(device).await?;
        self.addresses_of(idx, device).await
    }

    async fn addresses_of(&self, idx: u32, device: &str) -> Result<Vec<Address>> {
        let msgs: Vec<AddressMessage> = self
            .rtnetlink()
            .address()
            .get()
            .set_link_index_filter(idx)
            .execute()
            .try_collect()
            .await
            .map_err(self.nl_err(format!("list addresses of {device}")))?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.index == idx)
            .filter_map(Address::from_message)
            .collect())
    }

    /// Adds `cidr` to `device` with global scope (and the broadcast address for IPv4).
    pub async fn add_address(&self, device: &str, cidr: IpNet) -> Result<()> {
        let idx = self.link_index(device).await?;
        self.add_address_at(idx, device, cidr).await
    }

    async fn add_address_at(&self, idx: u32, device: &str, cidr: IpNet) -> Result<()> {
        self.rtnetlink()
            .address()
            .add(idx, cidr.addr(), cidr.prefix_len())
            .execute()
            .await
            .map_err(self.nl_err(format!("add address {cidr} to {device}")))
    }

    /// Removes `cidr` from `device`; absent is fine. Returns whether it was there.
    pub async fn del_address(&self, device: &str, cidr: IpNet) -> Result<bool> {
        let idx = self.link_index(device).await?;
        let found = self
            .addresses_of(idx, device)
            .await?
            .into_iter()
            .find(|a| a.cidr == cidr);
        match found {
            Some(a) => self.del_found(device, a).await,
            None => Ok(false),
        }
    }

    async fn del_found(&self, device: &str, a: Address) -> Result<bool> {
        match self.rtnetlink().address().del(a.msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) if nl_not_found(&e) => Ok(false),
            Err(e) => Err(self
                .nl_err(format!("delete address {} from {device}", a.cidr))(
                e
            )),
        }
    }

    /// Makes the addresses of `device` exactly `cidrs`, keeping the kernel's
    /// IPv6 link-local (the EUI-64 one of the device's MAC), as Neutron's
    /// `init_l3`: an address is kept only if it is wanted and permanent, so a
    /// dynamic copy of a wanted address (SLAAC) is replaced by a static one.
    /// Removes first, then adds what is missing.
    pub async fn init_l3(&self, device: &str, cidrs: &[IpNet]) -> Result<()> {
        let link = self
            .link(device)
            .await?
            .ok_or_else(|| Error::NoSuchDevice {
                device: device.to_string(),
                namespace: self.label(),
            })?;
        let lla = link.mac.map(|m| IpAddr::V6(eui64_link_local(m)));
        let is_lla = |a: &Address| Some(a.cidr.addr()) == lla && a.cidr.prefix_len() == 64;
        let mut present = Vec::new();
        let mut removed = false;
        for a in self.addresses_of(link.index, device).await? {
            if is_lla(&a) || (cidrs.contains(&a.cidr) && !a.dynamic) {
                present.push(a);
                continue;
            }
            tracing::debug!(device, address = %a.cidr, dynamic = a.dynamic, "init_l3: removing");
            self.del_found(device, a).await?;
            removed = true;
        }
        // Listed again after a removal: removing a primary IPv4 address can
        // take its secondaries with it when promote_secondaries is off.
        if removed {
            present = self.addresses_of(link.index, device).await?;
        }
        for cidr in cidrs {
            if present.iter().any(|a| a.cidr == *cidr && !a.dynamic) {
                continue;
            }
            tracing::debug!(device, address = %cidr, "init_l3: adding");
            match self.add_address_at(link.index, device, *cidr).await {
                Err(e) if e.is_exists() => {}
                other => other?,
            }
        }
        Ok(())
    }
}

/// [`Handle::init_l3`] on a fresh connection to `namespace`.
pub async fn init_l3(device: &str, cidrs: &[IpNet], namespace: Option<&str>) -> Result<()> {
    Handle::open(namespace).await?.init_l3(device, cidrs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_of_a_mac() {
        assert_eq!(
            eui64_link_local([0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56]),
            "fe80::f816:3eff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }
}
