//! Sysctls inside a namespace: `/proc/sys` written from a thread that
//! entered it (the `net.*` tree shows the namespace of the thread that opens
//! the file).

use std::fs;
use std::io;
use std::path::PathBuf;

use crate::error::{Error, NsLabel, Result};
use crate::netns::run_in;

/// `/proc/sys/...` for a key: dotted (`net.ipv4.ip_nonlocal_bind`) or
/// already in path form (`net/ipv4/conf/eth0.100/arp_ignore`, needed when a
/// device name has a dot).
fn key_path(key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.trim_start_matches('/').to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("/proc/sys").join(rel)
}

/// The path-form key of a per-device setting: `net/<family>/conf/<dev>/<leaf>`.
pub fn device_key(family: &str, device: &str, leaf: &str) -> String {
    format!("net/{family}/conf/{device}/{leaf}")
}

/// Writes a sysctl in the calling thread's namespace.
pub(crate) fn write_here(key: &str, value: &str) -> io::Result<()> {
    fs::write(key_path(key), value)
}

fn read_here(key: &str) -> io::Result<String> {
    Ok(fs::read_to_string(key_path(key))?.trim_end().to_string())
}

/// Sets `key` to `value` in `namespace` (`None`: the agent's own).
pub async fn sysctl_set(namespace: Option<&str>, key: &str, value: &str) -> Result<()> {
    let (k, v) = (key.to_string(), value.to_string());
    let label = NsLabel::of(namespace);
    run_in(namespace, move || {
        write_here(&k, &v).map_err(|source| Error::Sysctl {
            key: k.clone(),
            namespace: label,
            source,
        })
    })
    .await
}

/// Reads `key` in `namespace` (trailing newline removed).
pub async fn sysctl_get(namespace: Option<&str>, key: &str) -> Result<String> {
    let k = key.to_string();
    let label = NsLabel::of(namespace);
    run_in(namespace, move || {
        read_here(&k).map_err(|source| Error::Sysctl {
            key: k.clone(),
            namespace: label,
            source,
        })
    })
    .await
}

/// Keeps a device layer-2 only: no IPv6 on it (`disable_ipv6=1`) and no ARP
/// replies for the host's addresses (`arp_ignore=8`). For root-namespace
/// devices (veth root ends, bridges), so nothing answers on the host's behalf.
pub async fn isolate_l2(namespace: Option<&str>, device: &str) -> Result<()> {
    let dev = device.to_string();
    let label = NsLabel::of(namespace);
    run_in(namespace, move || {
        for (family, leaf, value) in [("ipv6", "disable_ipv6", "1"), ("ipv4", "arp_ignore", "8")] {
            let key = device_key(family, &dev, leaf);
            write_here(&key, value).map_err(|source| Error::Sysctl {
                key,
                namespace: label.clone(),
                source,
            })?;
        }
        Ok(())
    })
    .await
}
