//! Links: look-up, veth pairs, bridges, namespace moves, MAC, MTU, up/down.

use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlag, LinkInfo, LinkMessage,
};

use crate::error::{netlink_errno, Error, Result};
use crate::handle::{nl_not_found, Handle};
use crate::netns::open_ns;

/// A link as listed: what the drivers and the agent look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Hardware address, when the link has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Index of the bridge (or other controller) it is enslaved to.
    pub master: Option<u32>,
    /// Link kind (`veth`, `bridge`, `tun`, `openvswitch`…), when the kernel says.
    pub kind: Option<String>,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: None,
            up: msg.header.flags.contains(&LinkFlag::Up),
            master: None,
            kind: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => link.mtu = Some(*m),
                LinkAttribute::Controller(c) if *c != 0 => link.master = Some(*c),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(k) = info {
                            link.kind = Some(k.to_string().to_lowercase());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// Changes to one link, sent as one `RTM_NEWLINK` by [`Handle::change_link`].
///
/// One request is one hold of the kernel's rtnl lock. Moving a device into
/// another namespace holds that lock for a whole RCU grace period (about
/// 20 ms on the machines measured), and every other link, address or route
/// request of the host waits behind it; so a plug sends its move, MAC, MTU
/// and up together instead of queueing four times. The kernel moves the
/// device first and applies the rest inside the new namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkChange<'a> {
    /// Move it into this named namespace.
    pub namespace: Option<&'a str>,
    /// Set this hardware address.
    pub mac: Option<[u8; 6]>,
    /// Set this MTU.
    pub mtu: Option<u32>,
    /// Set it up (`IFF_UP`).
    pub up: bool,
}

impl<'a> LinkChange<'a> {
    /// Also move it into `namespace`.
    pub fn into_namespace(self, namespace: &'a str) -> Self {
        LinkChange {
            namespace: Some(namespace),
            ..self
        }
    }

    /// Also set its hardware address.
    pub fn mac(self, mac: [u8; 6]) -> Self {
        LinkChange {
            mac: Some(mac),
            ..self
        }
    }

    /// Also set its MTU, when there is one.
    pub fn mtu(self, mtu: Option<u32>) -> Self {
        LinkChange { mtu, ..self }
    }

    /// Also set it up.
    pub fn up(self) -> Self {
        LinkChange { up: true, ..self }
    }

    /// What the request does, for its error: "move X to ns, set MAC …".
    fn describe(&self, device: &str) -> String {
        let mut steps = Vec::new();
        if let Some(ns) = self.namespace {
            steps.push(format!("move {device} to {ns}"));
        }
        if let Some(mac) = self.mac {
            steps.push(format!("set MAC of {device} to {}", format_mac(&mac)));
        }
        if let Some(mtu) = self.mtu {
            steps.push(format!("set MTU of {device} to {mtu}"));
        }
        if self.up {
            steps.push(format!("set {device} up"));
        }
        if steps.is_empty() {
            return format!("change {device} (nothing to change)");
        }
        steps.join(", ")
    }
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn check_device_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
        return Err(Error::Invalid(format!("bad device name {name:?}")));
    }
    Ok(())
}

impl Handle {
    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        check_device_name(name)?;
        let nl = self.rtnetlink();
        let mut stream = nl.link().get().match_name(name.to_string()).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(Link::from_message(&msg))),
            Ok(None) => Ok(None),
            Err(e) if nl_not_found(&e) => Ok(None),
            Err(e) => Err(self.nl_err(format!("get link {name}"))(e)),
        }
    }

    /// Whether a link called `name` exists.
    pub async fn link_exists(&self, name: &str) -> Result<bool> {
        Ok(self.link(name).await?.is_some())
    }

    /// The index of link `name`, or [`Error::NoSuchDevice`].
    pub async fn link_index(&self, name: &str) -> Result<u32> {
        match self.link(name).await? {
            Some(l) => Ok(l.index),
            None => Err(Error::NoSuchDevice {
                device: name.to_string(),
                namespace: self.label(),
            }),
        }
    }

    /// Every link in the namespace.
    pub async fn list_links(&self) -> Result<Vec<Link>> {
        let nl = self.rtnetlink();
        let msgs: Vec<LinkMessage> = nl
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(self.nl_err("list links"))?;
        Ok(msgs.iter().map(Link::from_message).collect())
    }

    /// Creates a veth pair: `name` here, `peer` in `peer_namespace` (`None`:
    /// here too). Both ends start down.
    pub async fn add_veth(
        &self,
        name: &str,
        peer: &str,
        peer_namespace: Option<&str>,
    ) -> Result<()> {
        check_device_name(name)?;
        check_device_name(peer)?;
        // Kept open until the request is done: the kernel reads the fd then.
        let ns_file = match peer_namespace {
            Some(ns) => Some(open_ns(Some(ns))?),
            None => None,
        };
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        if let Some(f) = &ns_file {
            peer_msg
                .attributes
                .push(LinkAttribute::NetNsFd(f.as_raw_fd()));
        }
        let mut req = self.rtnetlink().link().add().name(name.to_string());
        req.message_mut()
            .attributes
            .push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
            ]));
        let where_ = peer_namespace.unwrap_or("the same namespace");
        req.execute()
            .await
            .map_err(self.nl_err(format!("add veth {name} with peer {peer} in {where_}")))
    }

    /// Creates a Linux bridge (down, no address).
    pub async fn add_bridge(&self, name: &str) -> Result<()> {
        check_device_name(name)?;
        let mut req = self.rtnetlink().link().add().name(name.to_string());
        req.message_mut()
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        req.execute()
            .await
            .map_err(self.nl_err(format!("add bridge {name}")))
    }

    /// Enslaves `device` to `bridge`.
    pub async fn set_master(&self, device: &str, bridge: &str) -> Result<()> {
        let dev = self.link_index(device).await?;
        let br = self.link_index(bridge).await?;
        self.rtnetlink()
            .link()
            .set(dev)
            .controller(br)
            .execute()
            .await
            .map_err(self.nl_err(format!("set master of {device} to {bridge}")))
    }

    /// Moves `device` into `namespace` (`None`: the agent's own).
    pub async fn set_netns(&self, device: &str, namespace: Option<&str>) -> Result<()> {
        let idx = self.link_index(device).await?;
        let file = open_ns(namespace)?;
        let target = namespace.unwrap_or("the root namespace");
        self.rtnetlink()
            .link()
            .set(idx)
            .setns_by_fd(file.as_raw_fd())
            .execute()
            .await
            .map_err(self.nl_err(format!("move {device} to {target}")))
    }

    /// Sets the hardware address of `device`.
    pub async fn set_mac(&self, device: &str, mac: [u8; 6]) -> Result<()> {
        self.change_link(device, &LinkChange::default().mac(mac))
            .await
    }

    /// Sets the MTU of `device`.
    pub async fn set_mtu(&self, device: &str, mtu: u32) -> Result<()> {
        self.change_link(device, &LinkChange::default().mtu(Some(mtu)))
            .await
    }

    /// Sets `device` up.
    pub async fn set_up(&self, device: &str) -> Result<()> {
        self.change_link(device, &LinkChange::default().up()).await
    }

    /// Applies `change` to `device` in one request. A device that is not
    /// there is [`Error::NoSuchDevice`].
    pub async fn change_link(&self, device: &str, change: &LinkChange<'_>) -> Result<()> {
        check_device_name(device)?;
        // Kept open until the request is done: the kernel reads the fd then.
        let ns_file = match change.namespace {
            Some(ns) => Some(open_ns(Some(ns))?),
            None => None,
        };
        // Named, not indexed (index 0 and IFLA_IFNAME: the kernel looks the
        // device up by name), so no look-up request goes first.
        let mut req = self.rtnetlink().link().set(0);
        req.message_mut()
            .attributes
            .push(LinkAttribute::IfName(device.to_string()));
        if let Some(f) = &ns_file {
            req = req.setns_by_fd(f.as_raw_fd());
        }
        if let Some(mac) = change.mac {
            req = req.address(mac.to_vec());
        }
        if let Some(mtu) = change.mtu {
            req = req.mtu(mtu);
        }
        if change.up {
            req = req.up();
        }
        match req.execute().await {
            Err(e) if netlink_errno(&e) == Some(libc::ENODEV) => Err(Error::NoSuchDevice {
                device: device.to_string(),
                namespace: self.label(),
            }),
            done => done.map_err(self.nl_err(change.describe(device))),
        }
    }

    /// Sets `device` down.
    pub async fn set_down(&self, device: &str) -> Result<()> {
        let idx = self.link_index(device).await?;
        self.rtnetlink()
            .link()
            .set(idx)
            .down()
            .execute()
            .await
            .map_err(self.nl_err(format!("set {device} down")))
    }

    /// Deletes `device` (a veth takes its peer with it). Absent is fine;
    /// returns whether it was there.
    pub async fn delete_link(&self, device: &str) -> Result<bool> {
        let Some(link) = self.link(device).await? else {
            return Ok(false);
        };
        match self.rtnetlink().link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if nl_not_found(&e) => Ok(false),
            Err(e) => Err(self.nl_err(format!("delete {device}"))(e)),
        }
    }

    /// Neutron's `ensure_device_is_ready`: the device exists and has a MAC;
    /// then it is set up. `false` when it is absent or has no MAC.
    pub async fn ensure_device_ready(&self, device: &str) -> Result<bool> {
        match self.link(device).await? {
            Some(l) if l.mac.is_some_and(|m| m != [0; 6]) => {
                if !l.up {
                    self.set_up(device).await?;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_every_step_for_its_error() {
        let all = LinkChange::default()
            .into_namespace("qdhcp-x")
            .mac([0xfa, 0x16, 0x3e, 0, 0, 1])
            .mtu(Some(1450))
            .up();
        assert_eq!(
            all.describe("tap0"),
            "move tap0 to qdhcp-x, set MAC of tap0 to fa:16:3e:00:00:01, set MTU of tap0 to 1450, set tap0 up"
        );
        assert_eq!(
            LinkChange::default().mtu(None).up().describe("tap0"),
            "set tap0 up"
        );
        assert_eq!(
            LinkChange::default().describe("tap0"),
            "change tap0 (nothing to change)"
        );
    }
}
