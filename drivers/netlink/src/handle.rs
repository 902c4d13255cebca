//! One rtnetlink connection bound to one namespace.
//!
//! A netlink socket talks to the namespace it was created in, whatever
//! thread uses it later. So a [`Handle`] for a named namespace creates its
//! socket on a short-lived thread that entered the namespace, then drives it
//! from the async runtime like any other. Open one per namespace and pass it
//! down; it is cheap to clone.

use std::sync::Arc;

use crate::error::{netlink_errno, Error, NsLabel, Result};
use crate::netns::run_in;

/// An rtnetlink connection to one network namespace.
#[derive(Clone, Debug)]
pub struct Handle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nl: rtnetlink::Handle,
    namespace: Option<String>,
    connection: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Handle {
    /// Opens a connection to `namespace` (`None`: the agent's own). Must be
    /// called inside a tokio runtime, which then drives the connection.
    pub async fn open(namespace: Option<&str>) -> Result<Self> {
        let label = NsLabel::of(namespace);
        let (connection, nl, _) = match namespace {
            None => rtnetlink::new_connection().map_err(|source| Error::Socket {
                namespace: label,
                source,
            })?,
            Some(ns) => {
                let runtime = tokio::runtime::Handle::current();
                run_in(Some(ns), move || {
                    // The socket registers with the runtime's reactor from
                    // this foreign thread; it stays bound to the namespace.
                    let _entered = runtime.enter();
                    rtnetlink::new_connection().map_err(|source| Error::Socket {
                        namespace: label,
                        source,
                    })
                })
                .await?
            }
        };
        let connection = tokio::spawn(connection).abort_handle();
        Ok(Handle {
            inner: Arc::new(Inner {
                nl,
                namespace: namespace.map(str::to_string),
                connection,
            }),
        })
    }

    /// The namespace this handle talks to (`None`: the agent's own).
    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// The underlying rtnetlink handle, for what this crate does not wrap.
    pub fn rtnetlink(&self) -> rtnetlink::Handle {
        self.inner.nl.clone()
    }

    pub(crate) fn label(&self) -> NsLabel {
        NsLabel::of(self.namespace())
    }

    /// Maps a netlink error of operation `op` to ours, naming where.
    pub(crate) fn nl_err(&self, op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
        let op = op.into();
        let namespace = self.label();
        move |source| Error::Netlink {
            op,
            namespace,
            source,
        }
    }
}

/// Whether a netlink error means "no such device/address/route".
pub(crate) fn nl_not_found(e: &rtnetlink::Error) -> bool {
    matches!(
        netlink_errno(e),
        Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL)
    )
}

impl Handle {
    /// The first step of every plug: the namespace made if missing, a handle
    /// inside it, and whether `device` is already there (a plug of an
    /// existing device only fixes it up).
    pub async fn open_for_plug(namespace: Option<&str>, device: &str) -> Result<(Handle, bool)> {
        if let Some(ns) = namespace {
            crate::Netns::ensure(ns).await?;
        }
        let handle = Handle::open(namespace).await?;
        let exists = handle.link_exists(device).await?;
        Ok((handle, exists))
    }
}
