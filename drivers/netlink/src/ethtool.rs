//! Checksum offload switches (ethtool's `-K <dev> tx off rx off`) through the
//! `SIOCETHTOOL` ioctl, on a thread inside the device's namespace.
//!
//! A veth port on an Open vSwitch userspace datapath passes packets with
//! unfilled checksums, which DHCP clients drop ("bad udp cksum"); turning
//! offload off on the namespace end makes the kernel fill them.

use crate::error::{Error, NsLabel, Result};
use crate::ioctl::{
    ethtool_value, ETHTOOL_GRXCSUM, ETHTOOL_GTXCSUM, ETHTOOL_SRXCSUM, ETHTOOL_STXCSUM,
};
use crate::netns::run_in;

/// Turns transmit and receive checksum offload off on `device`.
pub async fn disable_checksum_offload(namespace: Option<&str>, device: &str) -> Result<()> {
    let dev = device.to_string();
    let label = NsLabel::of(namespace);
    run_in(namespace, move || {
        for (op, cmd) in [("tx off", ETHTOOL_STXCSUM), ("rx off", ETHTOOL_SRXCSUM)] {
            ethtool_value(&dev, cmd, 0).map_err(|source| Error::Ethtool {
                op,
                device: dev.clone(),
                namespace: label.clone(),
                source,
            })?;
        }
        Ok(())
    })
    .await
}

/// Whether transmit and receive checksum offload are on: `(tx, rx)`.
pub async fn checksum_offload(namespace: Option<&str>, device: &str) -> Result<(bool, bool)> {
    let dev = device.to_string();
    let label = NsLabel::of(namespace);
    run_in(namespace, move || {
        let get = |op, cmd| {
            ethtool_value(&dev, cmd, 0)
                .map(|v| v != 0)
                .map_err(|source| Error::Ethtool {
                    op,
                    device: dev.clone(),
                    namespace: label.clone(),
                    source,
                })
        };
        Ok((
            get("get tx", ETHTOOL_GTXCSUM)?,
            get("get rx", ETHTOOL_GRXCSUM)?,
        ))
    })
    .await
}
