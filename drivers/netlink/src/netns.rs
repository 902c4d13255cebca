//! Named network namespaces, made and removed the way iproute2 does, so that
//! `ip netns` sees ours and we see its.
//!
//! A named namespace is a bind mount of a namespace file on
//! `/run/netns/<name>`; `/run/netns` itself is made a shared mount point so
//! that the mounts propagate to other mount namespaces. Namespaces are made by
//! `unshare(CLONE_NEWNET)` on a dedicated OS thread (never a fork inside the
//! tokio runtime), and entered with `setns` on a dedicated thread that exits
//! afterwards, so no runtime thread ever changes namespace.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::error::{Error, Result};
use crate::ioctl;

/// Where named namespaces are mounted (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Serialises create and delete within this process: a half-made entry
/// (file created, not yet mounted) must not be taken for a stale one.
static LOCK: Mutex<()> = Mutex::new(());

/// Named network namespaces (`ip netns add|delete|list`).
#[derive(Debug, Clone, Copy)]
pub struct Netns;

impl Netns {
    /// The mount point of a named namespace: `/run/netns/<name>`.
    pub fn path(name: &str) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(name)
    }

    /// Whether the namespace exists: its entry is a live namespace mount, not
    /// a stale file left behind.
    pub fn exists(name: &str) -> bool {
        check_name(name).is_ok() && is_live(&Self::path(name))
    }

    /// The names of the live namespaces under `/run/netns`, sorted.
    pub fn list() -> Result<Vec<String>> {
        let entries = match fs::read_dir(NETNS_RUN_DIR) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Namespace {
                    namespace: NETNS_RUN_DIR.into(),
                    op: "list",
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| is_live(&e.path()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Makes the namespace if it is missing (replacing a stale entry whose
    /// namespace is gone), with `lo` up and `promote_secondaries` on, as
    /// Neutron's `ensure_namespace`. Returns whether it was created.
    pub async fn ensure(name: &str) -> Result<bool> {
        check_name(name)?;
        let name = name.to_string();
        on_thread(move || ensure_blocking(&name)).await
    }

    /// Removes the namespace; an absent one is fine. Returns whether one was there.
    pub async fn delete(name: &str) -> Result<bool> {
        check_name(name)?;
        let name = name.to_string();
        on_thread(move || delete_blocking(&name)).await
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::Invalid(format!("bad namespace name {name:?}")));
    }
    Ok(())
}

/// Whether `path` is a mount of a namespace file (nsfs), i.e. a live namespace.
fn is_live(path: &Path) -> bool {
    matches!(statfs(path), Ok(s) if s.filesystem_type() == NSFS_MAGIC)
}

fn ns_err(name: &str, op: &'static str) -> impl FnOnce(nix::Error) -> Error {
    let name = name.to_string();
    move |e| Error::Namespace {
        namespace: name,
        op,
        source: io::Error::from(e),
    }
}

fn io_err(name: &str, op: &'static str) -> impl FnOnce(io::Error) -> Error {
    let name = name.to_string();
    move |source| Error::Namespace {
        namespace: name,
        op,
        source,
    }
}

/// Makes `/run/netns` exist and be a shared mount point, as iproute2 does:
/// try to make it shared; if it is not a mount point yet (EINVAL), bind-mount
/// it onto itself first, then try again.
fn prepare_run_dir() -> Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    fs::create_dir_all(dir).map_err(io_err(NETNS_RUN_DIR, "create"))?;
    let mut bound = false;
    loop {
        match mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(nix::Error::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(ns_err(NETNS_RUN_DIR, "bind-mount"))?;
                bound = true;
            }
            Err(e) => return Err(ns_err(NETNS_RUN_DIR, "make shared")(e)),
        }
    }
}

/// Removes an entry whose namespace is gone: unmount whatever is there
/// (lazily; errors mean nothing was mounted) and unlink it.
fn remove_entry(name: &str, path: &Path) -> Result<()> {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(name, "remove stale entry of")(e)),
    }
}

fn create_file(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: open(2) with a valid C string; the fd is owned and closed at once.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and owned here.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

fn ensure_blocking(name: &str) -> Result<bool> {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = Netns::path(name);
    if is_live(&path) {
        return Ok(false);
    }
    prepare_run_dir()?;
    if path.symlink_metadata().is_ok() {
        tracing::info!(namespace = name, "replacing a stale namespace entry");
        remove_entry(name, &path)?;
    }
    create_file(&path).map_err(io_err(name, "create entry of"))?;
    // This function already runs on a thread of its own that ends after it,
    // so it can move itself into the new namespace.
    let made = unshare(CloneFlags::CLONE_NEWNET)
        .map_err(ns_err(name, "unshare for"))
        .and_then(|()| {
            mount(
                Some("/proc/thread-self/ns/net"),
                &path,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(ns_err(name, "bind-mount"))
        });
    if let Err(e) = made {
        let _ = remove_entry(name, &path);
        return Err(e);
    }
    // Neutron's ensure_namespace: loopback up, secondaries promoted when a
    // primary address goes (so init_l3 removing one keeps the others).
    ioctl::link_up("lo").map_err(io_err(name, "bring lo up in"))?;
    crate::sysctl::write_here("net.ipv4.conf.all.promote_secondaries", "1").map_err(|source| {
        Error::Sysctl {
            key: "net.ipv4.conf.all.promote_secondaries".into(),
            namespace: crate::NsLabel::of(Some(name)),
            source,
        }
    })?;
    Ok(true)
}

fn delete_blocking(name: &str) -> Result<bool> {
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let path = Netns::path(name);
    if path.symlink_metadata().is_err() {
        return Ok(false);
    }
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(ns_err(name, "unmount")(e)),
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(name, "remove")(e)),
    }
}

/// Opens the namespace file of `namespace` (`None` = this process's own,
/// the one the agent was started in).
pub(crate) fn open_ns(namespace: Option<&str>) -> Result<fs::File> {
    match namespace {
        None => fs::File::open("/proc/self/ns/net").map_err(io_err("root", "open")),
        Some(name) => {
            check_name(name)?;
            let path = Netns::path(name);
            if !is_live(&path) {
                return Err(Error::NoSuchNamespace(name.to_string()));
            }
            fs::File::open(&path).map_err(io_err(name, "open"))
        }
    }
}

/// Runs `f` on a fresh OS thread (so the caller's thread never changes
/// namespace) and waits for it without blocking the async runtime.
pub(crate) async fn on_thread<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("leasehold-netns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|source| Error::Namespace {
            namespace: "-".into(),
            op: "spawn a thread for",
            source,
        })?;
    rx.await
        .map_err(|_| Error::Invalid("a namespace worker thread panicked".into()))?
}

/// Runs `f` on a fresh OS thread that first entered `namespace` (`None`: no
/// namespace change); awaits the result.
pub async fn run_in<T, F>(namespace: Option<&str>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let ns = namespace.map(str::to_string);
    on_thread(move || {
        if let Some(name) = ns.as_deref() {
            let file = open_ns(Some(name))?;
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(ns_err(name, "enter"))?;
        }
        f()
    })
    .await
}
