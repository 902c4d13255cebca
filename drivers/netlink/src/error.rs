//! The one error type of this crate; every variant names what it was about.

use std::fmt;

/// A namespace as errors print it: its name, or `root` for the agent's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsLabel(pub Option<String>);

impl NsLabel {
    /// The label of `namespace` (`None` = the root namespace).
    pub fn of(namespace: Option<&str>) -> Self {
        NsLabel(namespace.map(str::to_string))
    }
}

impl fmt::Display for NsLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(ns) => write!(f, "namespace {ns}"),
            None => f.write_str("the root namespace"),
        }
    }
}

/// Why a namespace, link, address, route or sysctl operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating, entering, mounting or removing a namespace failed.
    #[error("{op} namespace {namespace}: {source}")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// What was being done (`create`, `enter`, `delete`, …).
        op: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The namespace does not exist.
    #[error("namespace {0} does not exist")]
    NoSuchNamespace(String),
    /// The device does not exist where it was looked for.
    #[error("device {device} does not exist in {namespace}")]
    NoSuchDevice {
        /// The device name.
        device: String,
        /// Where it was looked for.
        namespace: NsLabel,
    },
    /// A netlink request failed.
    #[error("{op} in {namespace}: {source}")]
    Netlink {
        /// What was asked, naming the device, address or route.
        op: String,
        /// Where.
        namespace: NsLabel,
        /// The netlink error (the kernel's errno is in it).
        #[source]
        source: rtnetlink::Error,
    },
    /// Opening a netlink socket failed.
    #[error("open a netlink socket in {namespace}: {source}")]
    Socket {
        /// Where.
        namespace: NsLabel,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// Writing or reading a sysctl failed.
    #[error("sysctl {key} in {namespace}: {source}")]
    Sysctl {
        /// The key, dotted (`net.ipv4.ip_nonlocal_bind`).
        key: String,
        /// Where.
        namespace: NsLabel,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// An ethtool ioctl failed.
    #[error("ethtool {op} on {device} in {namespace}: {source}")]
    Ethtool {
        /// What was asked.
        op: &'static str,
        /// The device.
        device: String,
        /// Where.
        namespace: NsLabel,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// An argument cannot be used (a bad device name, a gateway of the wrong family).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The kernel's errno behind a netlink or system error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => netlink_errno(source),
            Error::Namespace { source, .. }
            | Error::Socket { source, .. }
            | Error::Sysctl { source, .. }
            | Error::Ethtool { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the error says that something does not exist (ENODEV, ENOENT,
    /// ESRCH, EADDRNOTAVAIL): what a delete of an absent thing gets.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NoSuchDevice { .. } | Error::NoSuchNamespace(_))
            || matches!(
                self.errno(),
                Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
            )
    }

    /// Whether the error says that the thing already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }
}

/// The positive errno of a netlink error reply.
pub(crate) fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// As a driver error named by what was being done: an I/O error carrying
    /// the kernel's errno when there is one.
    pub fn into_driver_error(self, context: &str) -> leasehold_core::driver::DriverError {
        use leasehold_core::driver::DriverError;
        match self.errno() {
            Some(errno) => DriverError::io(
                format!("{context}: {self}"),
                std::io::Error::from_raw_os_error(errno),
            ),
            None => DriverError::Failed(format!("{context}: {self}")),
        }
    }
}
