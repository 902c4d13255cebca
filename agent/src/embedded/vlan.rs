//! Local VLAN tags of DHCP ports on Open vSwitch, in the embedded mode.
//!
//! The openvswitch driver plugs a DHCP port on the dead VLAN (4095), as
//! Neutron's does; with a Neutron server, the OVS L2 agent then moves it to
//! the network's local VLAN. The embedded mode has no L2 agent, so the agent
//! tags the port itself after plugging:
//!
//! - the network's `provider:segmentation_id` when it is a VLAN id
//!   (1..=4094), so an operator can put VM ports on the same, known tag;
//! - otherwise a tag of its own, found from a start point that is a hash of
//!   the network id (the same network gets the same tag after a restart)
//!   and stepping past tags that are taken: by another network's DHCP port,
//!   or by any port of the integration bridge. [`ASSIGNED`] is tried first,
//!   then the rest of 1..=4094. A port that already carries a usable tag (an
//!   agent restart, the device adopted) keeps it.
//!
//! A network that names a segmentation id always gets it: a network that
//! holds that tag by assignment is moved to another tag. Two networks with
//! the same segmentation id would share a VLAN; the second gets an assigned
//! tag and a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use leasehold_core::driver::{tap_name, DriverError};
use leasehold_core::model::{Id, Network};
use leasehold_core::options::Options;
use leasehold_openvswitch::{OvsDriver, Settings};
use tokio::sync::Mutex;

/// Tags the agent assigns come from here first (above the VLAN ranges
/// providers usually use), then from the rest of 1..=4094.
pub const ASSIGNED: RangeInclusive<u16> = 3000..=4094;

/// Every usable access VLAN (0 is untagged, 4095 the dead VLAN).
const USABLE: RangeInclusive<u16> = 1..=4094;

/// Where a port's tag came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagSource {
    /// The network's segmentation id.
    SegmentationId,
    /// The port already had it (kept across an agent restart).
    Kept,
    /// Assigned by the agent.
    Assigned,
}

impl std::fmt::Display for TagSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TagSource::SegmentationId => "the network's segmentation id",
            TagSource::Kept => "kept from the port",
            TagSource::Assigned => "assigned by the agent",
        })
    }
}

/// The VLAN a network asks for: its segmentation id, when that is a VLAN id.
pub fn segmentation_tag(network: &Network) -> Option<u16> {
    let single_segment = match network.segments.as_slice() {
        [only] => only.segmentation_id,
        _ => None,
    };
    let id = network.segmentation_id.or(single_segment)?;
    u16::try_from(id).ok().filter(|t| USABLE.contains(t))
}

/// The start of a network's search for a free tag: stable across restarts
/// and builds (FNV-1a of the id).
fn start_of(network: &Id) -> u16 {
    let hash = network.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let len = u32::from(ASSIGNED.end() - ASSIGNED.start()) + 1;
    ASSIGNED.start() + (hash % len) as u16
}

/// A port that had to move to make room for a segmentation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Its network.
    pub network: Id,
    /// The OVS port.
    pub port: String,
    /// Its new tag.
    pub tag: u16,
}

/// The tag chosen for a port, and the ports that must move for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The tag.
    pub tag: u16,
    /// Why this tag.
    pub source: TagSource,
    /// Other networks' ports to re-tag first.
    pub moved: Vec<Moved>,
    /// Another network with the same segmentation id already holds it.
    pub conflict: Option<Id>,
}

#[derive(Clone, Debug)]
struct Held {
    tag: u16,
    port: String,
    source: TagSource,
}

/// Which network's DHCP port holds which tag: the pure part of tagging.
#[derive(Debug, Default)]
pub struct TagTable {
    held: BTreeMap<Id, Held>,
}

impl TagTable {
    /// Decides (and records) the tag of `network`'s DHCP `port`, which now
    /// carries `current`; `on_bridge` are the tags of the bridge's other ports.
    pub fn decide(
        &mut self,
        network: &Id,
        port: &str,
        wanted: Option<u16>,
        current: Option<u16>,
        on_bridge: &BTreeSet<u16>,
    ) -> Decision {
        self.held.remove(network);
        let holder = |table: &Self, tag: u16| {
            table
                .held
                .iter()
                .find(|(_, h)| h.tag == tag)
                .map(|(id, h)| (id.clone(), h.clone()))
        };
        let mut moved = Vec::new();
        let mut conflict = None;
        let (tag, source) = match wanted.map(|t| (t, holder(self, t))) {
            Some((t, None)) => (t, TagSource::SegmentationId),
            Some((t, Some((other, h)))) if h.source != TagSource::SegmentationId => {
                // The segmentation id wins; the other network moves.
                let mut avoid = on_bridge.clone();
                avoid.insert(t);
                let new = self.free(&other, &avoid);
                self.held.insert(
                    other.clone(),
                    Held {
                        tag: new,
                        port: h.port.clone(),
                        source: TagSource::Assigned,
                    },
                );
                moved.push(Moved {
                    network: other,
                    port: h.port,
                    tag: new,
                });
                (t, TagSource::SegmentationId)
            }
            Some((t, Some((other, _)))) => {
                conflict = Some(other);
                let mut avoid = on_bridge.clone();
                avoid.insert(t);
                (self.free(network, &avoid), TagSource::Assigned)
            }
            None => match current.filter(|c| USABLE.contains(c) && holder(self, *c).is_none()) {
                Some(c) => (c, TagSource::Kept),
                None => (self.free(network, on_bridge), TagSource::Assigned),
            },
        };
        self.held.insert(
            network.clone(),
            Held {
                tag,
                port: port.to_string(),
                source,
            },
        );
        Decision {
            tag,
            source,
            moved,
            conflict,
        }
    }

    /// Forgets a network (its port is gone).
    pub fn release(&mut self, network: &Id) {
        self.held.remove(network);
    }

    /// The tag `network` holds, if any.
    pub fn tag_of(&self, network: &Id) -> Option<u16> {
        self.held.get(network).map(|h| h.tag)
    }

    /// The first tag from the network's start point that no network holds
    /// and `avoid` does not name; when every tag is taken, the start point.
    fn free(&self, network: &Id, avoid: &BTreeSet<u16>) -> u16 {
        let held: BTreeSet<u16> = self.held.values().map(|h| h.tag).collect();
        let start = start_of(network);
        let assigned = (start..=*ASSIGNED.end()).chain(*ASSIGNED.start()..start);
        let rest = (*USABLE.start()..*ASSIGNED.start()).chain(ASSIGNED.end() + 1..=*USABLE.end());
        assigned
            .chain(rest)
            .find(|t| !held.contains(t) && !avoid.contains(t))
            .unwrap_or(start)
    }
}

/// Tags DHCP ports through OVSDB.
#[derive(Debug)]
pub struct VlanTagger {
    ovs: OvsDriver,
    table: Mutex<TagTable>,
}

fn parse_tag(text: &str) -> Option<u16> {
    text.trim()
        .trim_matches('"')
        .parse::<u16>()
        .ok()
        .filter(|t| USABLE.contains(t))
}

impl VlanTagger {
    /// A tagger working on `ovs`'s integration bridge and OVSDB.
    pub fn new(ovs: OvsDriver) -> Self {
        VlanTagger {
            ovs,
            table: Mutex::new(TagTable::default()),
        }
    }

    /// The tagger the embedded mode needs with the interface driver
    /// registered as `driver`: one for `openvswitch` (same OVSDB and bridge
    /// as the driver's), none for any other.
    pub fn for_driver(driver: &str, options: &Options) -> Result<Option<Arc<Self>>, DriverError> {
        if driver != "openvswitch" {
            return Ok(None);
        }
        let ovs = OvsDriver::new(Settings::from_options(options)?)?;
        Ok(Some(Arc::new(VlanTagger::new(ovs))))
    }

    /// Gives the network's DHCP port (OVS port `tap<port[:11]>`) its local
    /// VLAN; returns the tag.
    pub async fn tag(&self, network: &Network, port_id: &Id) -> Result<u16, DriverError> {
        let port = tap_name("tap", port_id);
        // One network at a time: decisions depend on every other's tag.
        let mut table = self.table.lock().await;
        let current = parse_tag(&self.ovs.vsctl().run(&["get", "Port", &port, "tag"]).await?);
        let on_bridge = self.bridge_tags(&port).await?;
        let decision = table.decide(
            &network.id,
            &port,
            segmentation_tag(network),
            current,
            &on_bridge,
        );
        if let Some(other) = &decision.conflict {
            tracing::warn!(network = %network.id, other = %other, "network {} has the segmentation id of network {other}, whose DHCP port already has that VLAN; it gets VLAN {} instead", network.id, decision.tag);
        }
        for m in &decision.moved {
            tracing::warn!(network = %m.network, tag = m.tag, "moving the DHCP port {} of network {} to VLAN {}: network {} has that segmentation id", m.port, m.network, m.tag, network.id);
            self.ovs.set_port_tag(&m.port, m.tag).await?;
        }
        if let Err(e) = self.ovs.set_port_tag(&port, decision.tag).await {
            table.release(&network.id);
            return Err(e);
        }
        tracing::info!(network = %network.id, tag = decision.tag, port = %port, "DHCP port {port} of network {} is on local VLAN {} ({})", network.id, decision.tag, decision.source);
        Ok(decision.tag)
    }

    /// Forgets the network's tag (its DHCP port was removed).
    pub async fn release(&self, network: &Id) {
        self.table.lock().await.release(network);
    }

    /// The tags of the integration bridge's ports other than `except`.
    async fn bridge_tags(&self, except: &str) -> Result<BTreeSet<u16>, DriverError> {
        let vsctl = self.ovs.vsctl();
        let bridge = &self.ovs.settings().integration_bridge;
        let ports: BTreeSet<String> = vsctl
            .run(&["list-ports", bridge])
            .await?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|p| p != except)
            .collect();
        let rows = vsctl
            .run(&[
                "--format=csv",
                "--no-headings",
                "--data=bare",
                "--columns=name,tag",
                "list",
                "Port",
            ])
            .await?;
        Ok(rows
            .lines()
            .filter_map(|row| row.rsplit_once(','))
            .filter(|(name, _)| ports.contains(name.trim_matches('"')))
            .filter_map(|(_, tag)| parse_tag(tag))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap()
    }

    fn none() -> BTreeSet<u16> {
        BTreeSet::new()
    }

    #[test]
    fn segmentation_ids_that_are_vlans() {
        let net = |v: serde_json::Value| Network::from_json_value(v).unwrap().0;
        assert_eq!(
            segmentation_tag(&net(json!({"id": "a", "provider:segmentation_id": 42}))),
            Some(42)
        );
        assert_eq!(
            segmentation_tag(&net(json!({"id": "a", "provider:segmentation_id": 70000}))),
            None
        );
        assert_eq!(
            segmentation_tag(&net(json!({"id": "a", "provider:segmentation_id": 4095}))),
            None
        );
        assert_eq!(segmentation_tag(&net(json!({"id": "a"}))), None);
        assert_eq!(
            segmentation_tag(&net(
                json!({"id": "a", "segments": [{"id": "s", "segmentation_id": 7}]})
            )),
            Some(7)
        );
    }

    #[test]
    fn assigned_tags_are_stable_and_in_range() {
        let a = id("6ac4e2ac-6b58-4ac6-bd45-4ec4d3bd5f86");
        let first = TagTable::default().decide(&a, "tapa", None, None, &none());
        let again = TagTable::default().decide(&a, "tapa", None, None, &none());
        assert_eq!(first, again);
        assert_eq!(first.source, TagSource::Assigned);
        assert!(ASSIGNED.contains(&first.tag));
        assert_eq!(first.tag, start_of(&a));
    }

    #[test]
    fn collisions_are_avoided() {
        let mut table = TagTable::default();
        let a = id("a");
        let start = start_of(&a);
        // Another network holds the start, a foreign port the next one.
        let b = id("b");
        table.decide(&b, "tapb", Some(start), None, &none());
        let next = if start == *ASSIGNED.end() {
            *ASSIGNED.start()
        } else {
            start + 1
        };
        let d = table.decide(&a, "tapa", None, None, &[next].into());
        assert_ne!(d.tag, start);
        assert_ne!(d.tag, next);
        assert!(ASSIGNED.contains(&d.tag));
    }

    #[test]
    fn a_current_tag_is_kept_unless_another_network_holds_it() {
        let mut table = TagTable::default();
        let d = table.decide(&id("a"), "tapa", None, Some(17), &[17].into());
        assert_eq!((d.tag, d.source), (17, TagSource::Kept));
        let d = table.decide(&id("b"), "tapb", None, Some(17), &none());
        assert_eq!(d.source, TagSource::Assigned);
        assert_ne!(d.tag, 17);
        // Deciding again for the same network keeps its own tag.
        let d = table.decide(&id("a"), "tapa", None, Some(17), &none());
        assert_eq!(d.tag, 17);
    }

    #[test]
    fn segmentation_id_wins_and_the_holder_moves() {
        let mut table = TagTable::default();
        let a = id("a");
        let assigned = table.decide(&a, "tapa", None, None, &none()).tag;
        let d = table.decide(&id("v"), "tapv", Some(assigned), None, &none());
        assert_eq!((d.tag, d.source), (assigned, TagSource::SegmentationId));
        assert_eq!(d.moved.len(), 1);
        assert_eq!(d.moved[0].network, a);
        assert_eq!(d.moved[0].port, "tapa");
        assert_ne!(d.moved[0].tag, assigned);
        assert_eq!(table.tag_of(&a), Some(d.moved[0].tag));
    }

    #[test]
    fn a_duplicate_segmentation_id_gets_its_own_tag() {
        let mut table = TagTable::default();
        table.decide(&id("v1"), "tap1", Some(100), None, &none());
        let d = table.decide(&id("v2"), "tap2", Some(100), Some(100), &none());
        assert_eq!(d.conflict, Some(id("v1")));
        assert_ne!(d.tag, 100);
        assert_eq!(d.source, TagSource::Assigned);
        table.release(&id("v1"));
        let d = table.decide(&id("v2"), "tap2", Some(100), None, &none());
        assert_eq!(d.tag, 100);
    }

    #[test]
    fn tags_parse_from_ovsdb_text() {
        assert_eq!(parse_tag("[]\n"), None);
        assert_eq!(parse_tag("4095\n"), None);
        assert_eq!(parse_tag("0"), None);
        assert_eq!(parse_tag("17\n"), Some(17));
        assert_eq!(parse_tag(""), None);
    }
}
