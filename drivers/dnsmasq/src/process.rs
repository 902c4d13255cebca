//! One dnsmasq process: spawn inside the network's namespace, find it by its
//! pid file, tell whether it lives, signal it and stop it.
//!
//! Identity follows Neutron's ProcessManager: the pid file names the process
//! and `/proc/<pid>/cmdline` must contain the network id, so a stale pid file
//! naming an unrelated process never leads to signalling it. Signals go
//! through a pidfd opened *before* that check, so a pid reused between the
//! check and the signal cannot be hit either.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::files;

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// How long a SIGTERM gets before SIGKILL (Neutron's `disable(block=True)`).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a spawned dnsmasq gets to write its pid file (Neutron: 60 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a process operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The namespace to run in does not exist.
    #[error("namespace {namespace}: {source}")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// Why it could not be entered.
        #[source]
        source: io::Error,
    },
    /// dnsmasq could not be started or reported an error at start.
    #[error("starting {service} for {uuid}: {message}")]
    Spawn {
        /// The service (`dnsmasq`).
        service: String,
        /// The network (process uuid).
        uuid: String,
        /// What went wrong, with dnsmasq's own message when it gave one.
        message: String,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ProcessError {
    let context = context.into();
    move |source| ProcessError::Io { context, source }
}

/// Everything needed to start, find and stop one network's dnsmasq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Process identity: the network id (Neutron's `uuid`); must occur in the argv.
    pub uuid: String,
    /// Service name, for `PROCESS_TAG=<service>-<uuid>` and kill scripts.
    pub service: String,
    /// Namespace to run in (`qdhcp-<net>`); `None` = the agent's own.
    pub namespace: Option<String>,
    /// The pid file dnsmasq writes (`--pid-file=` in `argv`).
    pub pid_file: PathBuf,
    /// The exact argv, `dnsmasq` first, as Neutron would run it.
    pub argv: Vec<String>,
    /// `<kill_scripts_path>/<service>-kill`, used for signals when it exists.
    pub kill_script: Option<PathBuf>,
}

impl ProcessSpec {
    /// The `PROCESS_TAG` environment value (`dnsmasq-<network_id>`).
    pub fn process_tag(&self) -> String {
        format!("{}-{}", self.service, self.uuid)
    }

    /// The pid in the pid file, if it holds one.
    pub fn pid(&self) -> Option<i32> {
        read_pid(&self.pid_file)
    }

    /// The pid of the running process this spec names, if it is active.
    pub fn active_pid(&self) -> Option<i32> {
        self.pid().filter(|&pid| self.is_ours(pid))
    }

    /// Whether `pid` is a live process of this spec: Neutron's test (the argv
    /// mentions the network id) and, stricter, an argument naming our pid
    /// file, so that no other process that merely mentions the id is taken
    /// for ours (and stopped).
    pub fn is_ours(&self, pid: i32) -> bool {
        if !is_active(pid, &self.uuid) {
            return false;
        }
        let want = format!("={}", self.pid_file.display());
        cmdline(pid).is_some_and(|argv| {
            argv.iter()
                .any(|a| a.starts_with("--") && a.ends_with(&want))
        })
    }
}

/// Makes this process a child subreaper, so a daemonised dnsmasq (whose
/// parent exits) is reparented to us and its exit can be reaped at once
/// instead of lingering as a zombie until PID 1 gets to it.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The pid written in a pid file; `None` when missing or not a positive number.
pub fn read_pid(path: &Path) -> Option<i32> {
    parse_pid(&std::fs::read_to_string(path).ok()?)
}

/// The pid a pid file's text names (surrounding whitespace allowed).
fn parse_pid(text: &str) -> Option<i32> {
    text.trim().parse().ok().filter(|&pid: &i32| pid > 0)
}

/// The state letter of a process from `/proc/<pid>/stat` (`R`, `S`, `Z`, …).
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may itself hold spaces or ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// The argv of a process from `/proc/<pid>/cmdline`.
pub fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let raw = raw.strip_suffix(b"\0").unwrap_or(&raw);
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|&b| b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// Whether `pid` is a live (not zombie) process whose argv mentions `uuid`.
pub fn is_active(pid: i32, uuid: &str) -> bool {
    match proc_state(pid) {
        None | Some('Z') | Some('X') | Some('x') => false,
        Some(_) => cmdline(pid).is_some_and(|argv| argv.join(" ").contains(uuid)),
    }
}

/// A pidfd: a handle on one process that cannot be confused by pid reuse.
#[derive(Debug)]
pub struct Pidfd {
    pid: i32,
    fd: OwnedFd,
}

impl Pidfd {
    /// Opens a pidfd for `pid` (works for processes that are not our children).
    pub fn open(pid: i32) -> io::Result<Self> {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this descriptor; we own it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Pidfd { pid, fd })
    }

    /// The pid it refers to.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal` to exactly this process; `Ok(false)` if it has already exited.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<bool> {
        // SAFETY: plain syscall; a null siginfo means "as kill(2)".
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(false)
        } else {
            Err(e)
        }
    }

    /// Whether the process has exited (the pidfd polls readable).
    pub fn has_exited(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        rc > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// Reaps the process if it is our (reparented) child and has exited, so
    /// no zombie is left behind. Not a child, or still running: nothing.
    pub fn reap(&self) {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pidfd and siginfo pointer.
        unsafe {
            libc::waitid(
                libc::P_PIDFD,
                self.fd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            );
        }
    }

    /// Waits until the process exits, for at most `timeout`; returns whether it did.
    pub async fn wait_exit(&self, timeout: Duration) -> io::Result<bool> {
        if self.has_exited() {
            self.reap();
            return Ok(true);
        }
        let dup = self.fd.try_clone()?;
        // SAFETY: `dup` is an owned, valid descriptor that AsyncFd owns and
        // closes; nothing else closes or replaces it.
        let afd = unsafe { AsyncFd::register_with_interest(dup, Interest::READABLE)? };
        match tokio::time::timeout(timeout, afd.readable()).await {
            Ok(guard) => {
                guard?.retain_ready();
                self.reap();
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Waits (blocking the thread) until the process exits or `timeout` passes.
    pub fn wait_exit_blocking(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        let exited = rc > 0 && pfd.revents & libc::POLLIN != 0;
        if exited {
            self.reap();
        }
        exited
    }

    /// The descriptor, for polling with tokio's `AsyncFd`.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Opens `/run/netns/<namespace>` for `setns(2)`.
pub fn open_namespace(namespace: &str) -> Result<File, ProcessError> {
    if namespace.contains('/') || namespace.is_empty() || namespace == "." || namespace == ".." {
        return Err(ProcessError::Namespace {
            namespace: namespace.into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a namespace name"),
        });
    }
    File::open(Path::new(NETNS_DIR).join(namespace)).map_err(|source| ProcessError::Namespace {
        namespace: namespace.into(),
        source,
    })
}

/// A `Command` that runs in `namespace` (by `setns(2)` between fork and exec,
/// so the agent itself never changes namespace) with `PROCESS_TAG` set.
pub fn command_in_namespace<S: AsRef<OsStr>>(
    namespace: Option<&str>,
    process_tag: Option<&str>,
    program: S,
) -> Result<Command, ProcessError> {
    let mut cmd = Command::new(program);
    if let Some(tag) = process_tag {
        cmd.env("PROCESS_TAG", tag);
    }
    if let Some(ns) = namespace {
        let file = open_namespace(ns)?;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the async-signal-safe setns(2) call on a descriptor we own;
        // `file` is moved in so it stays open until then.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    Ok(cmd)
}

/// Starts dnsmasq as `spec` says and waits until it has daemonised and its
/// pid file names a live process; returns that pid. Blocking.
///
/// The pid file is removed first (as Neutron does), so a pid read afterwards
/// is the new process's.
pub fn spawn(spec: &ProcessSpec) -> Result<i32, ProcessError> {
    let fail = |message: String| ProcessError::Spawn {
        service: spec.service.clone(),
        uuid: spec.uuid.clone(),
        message,
    };
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| fail("empty command line".into()))?;
    files::remove_if_exists(&spec.pid_file)
        .map_err(io_err(format!("removing {}", spec.pid_file.display())))?;
    let tag = spec.process_tag();
    let mut cmd = command_in_namespace(spec.namespace.as_deref(), Some(&tag), program)?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(format!("{program}: {e}")))?;
    // dnsmasq's foreground parent exits once the daemon is set up (or failed);
    // its exit status and stderr tell which. Read stderr only after it exits:
    // the daemon keeps no copy of it, but reading to EOF first could hang on
    // a daemon that did.
    let status = match child.wait() {
        Ok(status) => Some(status),
        // Another network's spawn, sweeping zombies named dnsmasq at the
        // same moment, may have reaped this one's foreground parent: its
        // status is lost, and the pid file below tells whether it started.
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => return Err(io_err(format!("waiting for {program}"))(e)),
    };
    let mut message = String::new();
    if let Some(mut err) = child.stderr.take() {
        set_nonblocking(err.as_raw_fd());
        let _ = err.read_to_string(&mut message);
    }
    // dnsmasq forks twice; the middle process exits at once and, its parent
    // gone too, is reparented to us (the subreaper) as a zombie.
    reap_zombie_children(SERVICE_COMM);
    if let Some(status) = status.filter(|s| !s.success()) {
        return Err(fail(format!("{status}: {}", message.trim())));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&spec.pid_file).unwrap_or_default();
        if let Some(pid) = parse_pid(&text) {
            if spec.is_ours(pid) {
                return Ok(pid);
            }
            // The pid file was removed above, so a whole line in it is the
            // new daemon's pid. Gone or a zombie already (killed or crashed
            // right after it started): it did start, and the caller's
            // monitor reports the death at once instead of this waiting out
            // START_TIMEOUT.
            if text.ends_with('\n') && matches!(proc_state(pid), None | Some('Z')) {
                return Ok(pid);
            }
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "no live process in {} after {:?}",
                spec.pid_file.display(),
                START_TIMEOUT
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The kernel's `comm` of the processes [`reap_zombie_children`] collects after a spawn.
const SERVICE_COMM: &str = "dnsmasq";

/// The `comm` (executable name, cut to 15 bytes) of a process.
pub fn proc_comm(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    Some(stat.get(open + 1..close)?.to_string())
}

/// Reaps our zombie children named `comm` (the daemon's intermediate
/// processes that were reparented to us). Nobody else waits for them: the
/// processes we start ourselves are waited for by pid, and only dnsmasq is
/// matched. Returns how many were reaped.
pub fn reap_zombie_children(comm: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut reaped = 0;
    for task in tasks.filter_map(Result::ok) {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        for pid in list
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if proc_state(pid) == Some('Z') && proc_comm(pid).as_deref() == Some(comm) {
                // SAFETY: waitpid on one specific zombie child.
                if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == pid {
                    reaped += 1;
                }
            }
        }
    }
    reaped
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// Holds the DHCPv4 requests that arrive while dnsmasq is restarted and hands
/// them to the new process, so a controlled restart loses no client packet.
///
/// Between the old dnsmasq's exit and the new one's bind of port 67 (10–20
/// ms) the kernel would drop client packets, and a client that lost one
/// waits a whole retransmission timeout (1–4 s). While the hold is open, a
/// socket of ours shares port 67 in the namespace (SO_REUSEADDR, as dnsmasq's
/// own DHCP socket) and queues copies of every request; after the new
/// dnsmasq is up they are re-sent to it through the DHCP device, the way
/// dhcp_release's packets arrive. dnsmasq answers a client by its hardware
/// address, not by the packet's source, so the replies reach the client. A
/// request the old process already answered may be answered twice: harmless
/// for DHCP (the client matches by xid and takes the first).
#[derive(Debug)]
pub struct PacketHold {
    sock: std::net::UdpSocket,
    namespace: Option<String>,
    iface: String,
}

impl PacketHold {
    /// Starts holding requests for `iface` in `namespace`.
    pub fn open(namespace: Option<&str>, iface: &str) -> Result<Self, ProcessError> {
        use nix::sys::socket::{
            bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
        };
        let sock = crate::release::in_namespace(namespace, || {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )?;
            setsockopt(&fd, sockopt::ReuseAddr, &true)?;
            setsockopt(&fd, sockopt::ReusePort, &true)?;
            bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, 67))?;
            Ok(std::net::UdpSocket::from(fd))
        })?;
        Ok(PacketHold {
            sock,
            namespace: namespace.map(str::to_string),
            iface: iface.to_string(),
        })
    }

    /// Stops holding and re-sends what was held to the (new) dnsmasq; returns
    /// how many requests were handed over.
    pub fn release(self) -> Result<usize, ProcessError> {
        let mut held = Vec::new();
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            // BOOTREQUESTs only (op 1, with the magic cookie).
            if n >= 240 && buf[0] == 1 && buf[236..240] == [0x63, 0x82, 0x53, 0x63] {
                held.push(buf[..n].to_vec());
            }
        }
        // Close it first: from now on requests go to dnsmasq alone.
        drop(self.sock);
        if held.is_empty() {
            return Ok(0);
        }
        let iface = self.iface.clone();
        crate::release::in_namespace(self.namespace.as_deref(), move || {
            let addrs = crate::release::interface_v4(&iface)?;
            let Some(server) = crate::release::server_for(std::net::Ipv4Addr::UNSPECIFIED, &addrs)
            else {
                return Ok(0);
            };
            let out = std::net::UdpSocket::bind("0.0.0.0:0")?;
            crate::release::bind_to_device(&out, &iface)?;
            let mut sent = 0;
            for p in &held {
                if out.send_to(p, (server, 67)).is_ok() {
                    sent += 1;
                }
            }
            Ok(sent)
        })
    }
}

/// A running process of `spec`, checked and held by pidfd.
#[derive(Debug)]
pub struct Running {
    /// The handle.
    pub pidfd: Pidfd,
}

/// Finds the running process of `spec`: pid file → pidfd → still active.
/// `None` if there is none (or the pid file names an unrelated process).
pub fn find_running(spec: &ProcessSpec) -> Option<Running> {
    let pid = spec.pid()?;
    let pidfd = Pidfd::open(pid).ok()?;
    // Checked after opening the pidfd: if the pid is reused after this check,
    // the pidfd still names the old (exited) process and signals go nowhere.
    if !spec.is_ours(pid) {
        return None;
    }
    Some(Running { pidfd })
}

/// A live process of `spec` that its pid file does not name (the file was
/// removed with the state directory, or names another process): found by
/// its argv, which names our pid file ([`ProcessSpec::is_ours`]). Scans
/// `/proc`, so it is for the rare paths: after a start failed, and on
/// disable.
pub fn find_orphan(spec: &ProcessSpec) -> Option<i32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| Some(pid) != spec.pid())
        .find(|&pid| spec.is_ours(pid))
}

/// Sends `signal` to a running process of `spec`, through the kill script
/// (`<kill_scripts_path>/<service>-kill <sig> <pid>`) when one exists, as
/// Neutron does. `Ok(false)` when it had already exited.
pub fn send_signal(
    spec: &ProcessSpec,
    running: &Running,
    signal: libc::c_int,
) -> Result<bool, ProcessError> {
    if let Some(script) = spec.kill_script.as_ref().filter(|p| p.is_file()) {
        let status =
            command_in_namespace(spec.namespace.as_deref(), Some(&spec.process_tag()), script)?
                .arg(signal.to_string())
                .arg(running.pidfd.pid().to_string())
                .stdin(Stdio::null())
                .status()
                .map_err(io_err(format!("running {}", script.display())))?;
        return Ok(status.success());
    }
    running
        .pidfd
        .signal(signal)
        .map_err(io_err(format!("signalling {}", running.pidfd.pid())))
}

/// Stops a running process: SIGTERM, up to `timeout` for it to exit, then
/// SIGKILL and as long again. Returns whether it is gone.
pub async fn stop(
    spec: &ProcessSpec,
    running: &Running,
    timeout: Duration,
) -> Result<bool, ProcessError> {
    let wait = |t| {
        let pidfd = &running.pidfd;
        async move { pidfd.wait_exit(t).await.map_err(io_err("polling a pidfd")) }
    };
    if !send_signal(spec, running, libc::SIGTERM)? {
        running.pidfd.reap();
        return Ok(true);
    }
    if wait(timeout).await? {
        return Ok(true);
    }
    tracing::warn!(uuid = %spec.uuid, pid = running.pidfd.pid(), "no exit after SIGTERM, sending SIGKILL");
    send_signal(spec, running, libc::SIGKILL)?;
    wait(timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_state_and_cmdline() {
        let me = std::process::id() as i32;
        assert!(matches!(proc_state(me), Some('R') | Some('S')));
        let argv = cmdline(me).unwrap();
        assert!(!argv.is_empty());
        assert!(is_active(me, &argv[0]));
        assert!(!is_active(me, "no-such-network-id-in-my-argv"));
        assert!(!is_active(i32::MAX, "x"));
    }

    #[test]
    fn pid_file_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pid");
        assert_eq!(read_pid(&p), None);
        std::fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_pid(&p), Some(1234));
        std::fs::write(&p, "-5").unwrap();
        assert_eq!(read_pid(&p), None);
        std::fs::write(&p, "garbage").unwrap();
        assert_eq!(read_pid(&p), None);
    }

    #[tokio::test]
    async fn pidfd_sees_exit_of_a_child() {
        let mut child = Command::new("sleep").arg("0.05").spawn().unwrap();
        let pidfd = Pidfd::open(child.id() as i32).unwrap();
        assert!(!pidfd.has_exited());
        assert!(pidfd.wait_exit(Duration::from_secs(5)).await.unwrap());
        // reap() collected it: the std handle finds no child any more.
        assert!(child.try_wait().is_err());
    }

    #[test]
    fn rejects_namespace_paths() {
        assert!(open_namespace("../etc").is_err());
        assert!(open_namespace("").is_err());
    }
}
