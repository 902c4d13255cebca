//! The few socket ioctls that have no rtnetlink form here: `lo` up inside a
//! fresh namespace, and ethtool checksum offload.
//!
//! Each works on the network namespace of the calling thread (the socket is
//! made there), so callers run them on a thread that entered the namespace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `struct ethtool_value` of `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Get / set transmit checksum offload (`<linux/ethtool.h>`).
pub(crate) const ETHTOOL_GTXCSUM: u32 = 0x16;
pub(crate) const ETHTOOL_STXCSUM: u32 = 0x17;
/// Get / set receive checksum offload.
pub(crate) const ETHTOOL_GRXCSUM: u32 = 0x14;
pub(crate) const ETHTOOL_SRXCSUM: u32 = 0x15;

fn dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad device name {name:?}"),
        ));
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, b) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = b as libc::c_char;
    }
    Ok(req)
}

fn ioctl(fd: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `req` is a valid ifreq for the duration of the call; the
    // requests used here read and write only the ifreq (and the buffer its
    // ifru_data points to, which the caller keeps alive).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `IFF_UP` on `name` in the calling thread's namespace.
pub(crate) fn link_up(name: &str) -> io::Result<()> {
    let fd = dgram_socket()?;
    let mut req = ifreq(name)?;
    ioctl(&fd, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(&fd, libc::SIOCSIFFLAGS, &mut req)
}

/// Runs one `ETHTOOL_*` value command on `name`; returns the value read back.
pub(crate) fn ethtool_value(name: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let fd = dgram_socket()?;
    let mut req = ifreq(name)?;
    let mut value = EthtoolValue { cmd, data };
    req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
    ioctl(&fd, libc::SIOCETHTOOL, &mut req)?;
    Ok(value.data)
}
