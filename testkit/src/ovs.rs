//! A private Open vSwitch for tests: ovsdb-server and ovs-vswitchd with the
//! userspace datapath, run from a directory of this test binary's own, started
//! once per binary (or reused when `$OVS_RUNDIR` already points at a running
//! one). No kernel module and no system OVS service is needed.
//!
//! Both daemons are children of a thread that lives as long as the test
//! binary, with `PR_SET_PDEATHSIG`, so they go when the binary exits.
//! `OVS_RUNDIR` (and the other `OVS_*DIR`s) are set in this process's
//! environment, so ovs-vsctl run by the driver or the tests (and programs
//! they start) finds them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running private OVS.
#[derive(Debug)]
pub struct Ovs {
    /// Its run directory (`db.sock` is there).
    pub rundir: PathBuf,
    /// Held while it runs (see [`host_lock`]); `None` when reused.
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

impl Ovs {
    /// The unix socket of its ovsdb-server, as an OVSDB connection string.
    pub fn db(&self) -> String {
        format!("unix:{}", self.rundir.join("db.sock").display())
    }
}

static OVS: OnceLock<Result<Ovs, String>> = OnceLock::new();

/// The private OVS, started on first use; panics with the reason if it cannot start.
pub fn ovs() -> &'static Ovs {
    match OVS.get_or_init(start) {
        Ok(ovs) => ovs,
        Err(e) => panic!("cannot start a private Open vSwitch: {e}"),
    }
}

/// Makes (or finds) a userspace-datapath bridge, its local port kept
/// layer 2 only. Bridge names must be unique on the host: the local port of a
/// `netdev` bridge is a tap device of that name in the root namespace.
pub fn netdev_bridge(name: &str) {
    ovs();
    vsctl(&[
        "--may-exist",
        "add-br",
        name,
        "--",
        "set",
        "Bridge",
        name,
        "datapath_type=netdev",
    ]);
    // ovs-vswitchd makes the local port asynchronously; on a loaded machine
    // that has been seen to take over 10 s.
    crate::wait_for(Duration::from_secs(60), || {
        Path::new("/sys/class/net")
            .join(name)
            .exists()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("bridge {name} has no local device"));
    crate::isolate_l2(name);
}

/// Removes a bridge and its ports; absent is fine.
pub fn del_bridge(name: &str) {
    let _ = Command::new("ovs-vsctl")
        .args(["--timeout=10", "--if-exists", "del-br", name])
        .output();
}

/// The Port columns `tag` of `port` (`[]` when untagged).
pub fn port_tag(port: &str) -> String {
    vsctl(&["get", "Port", port, "tag"])
}

/// Runs ovs-vsctl against the private OVS; panics on failure.
pub fn vsctl(args: &[&str]) -> String {
    let out = Command::new("ovs-vsctl")
        .arg("--timeout=10")
        .args(args)
        .output()
        .expect("ovs-vsctl runs");
    assert!(
        out.status.success(),
        "ovs-vsctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn responds() -> bool {
    Command::new("ovs-vsctl")
        .args(["--timeout=2", "show"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start() -> Result<Ovs, String> {
    if let Ok(dir) = std::env::var("OVS_RUNDIR") {
        if responds() {
            return Ok(Ovs {
                rundir: dir.into(),
                _lock: None,
            });
        }
    }
    let lock = host_lock()?;
    remove_dead_dirs();
    let dir = std::env::temp_dir().join(format!("leasehold-ovs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
        // Set once, before any test of this binary runs ovs-vsctl.
        std::env::set_var(var, &dir);
    }
    let db = dir.join("conf.db");
    let schema = ["/usr/share/openvswitch/vswitch.ovsschema"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("vswitch.ovsschema not found: is openvswitch-switch installed?")?;
    let st = Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(schema)
        .status()
        .map_err(|e| format!("ovsdb-tool: {e}"))?;
    if !st.success() {
        return Err("ovsdb-tool create failed".into());
    }
    let sock = dir.join("db.sock");
    let server: Vec<String> = vec![
        db.display().to_string(),
        format!("--remote=punix:{}", sock.display()),
        format!("--unixctl={}", dir.join("ovsdb-server.ctl").display()),
        format!("--log-file={}", dir.join("ovsdb-server.log").display()),
        format!("--pidfile={}", dir.join("ovsdb-server.pid").display()),
    ];
    let switch: Vec<String> = vec![
        format!("unix:{}", sock.display()),
        "--disable-system".into(),
        format!("--unixctl={}", dir.join("ovs-vswitchd.ctl").display()),
        format!("--log-file={}", dir.join("ovs-vswitchd.log").display()),
        format!("--pidfile={}", dir.join("ovs-vswitchd.pid").display()),
    ];
    // The keeper thread spawns both daemons and then parks for the life of
    // the binary: PR_SET_PDEATHSIG fires when the spawning *thread* ends.
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    let sock2 = sock.clone();
    std::thread::Builder::new()
        .name("ovs-keeper".into())
        .spawn(move || {
            let r = (|| {
                spawn_daemon("ovsdb-server", &server)?;
                wait_until(|| sock2.exists(), "ovsdb-server socket")?;
                let st = Command::new("ovs-vsctl")
                    .args(["--no-wait", "init"])
                    .status()
                    .map_err(|e| format!("ovs-vsctl init: {e}"))?;
                if !st.success() {
                    return Err("ovs-vsctl --no-wait init failed".to_string());
                }
                spawn_daemon("ovs-vswitchd", &switch)?;
                Ok(())
            })();
            let _ = tx.send(r);
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())??;
    wait_until(
        || {
            Command::new("ovs-appctl")
                .arg(format!(
                    "--target={}",
                    dir.join("ovs-vswitchd.ctl").display()
                ))
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
        "ovs-vswitchd",
    )?;
    Ok(Ovs {
        rundir: dir,
        _lock: Some(lock),
    })
}

/// One private userspace OVS per host at a time: its datapath is a tap
/// device named `ovs-netdev` in the root namespace, so a second
/// ovs-vswitchd cannot open its bridges ("Device or resource busy"). Test
/// binaries and benchmarks run side by side wait here for the one before
/// to exit (the lock goes with its process).
fn host_lock() -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use nix::fcntl::{Flock, FlockArg};
    let dir = Path::new("/run/lock");
    let dir = if dir.is_dir() { dir } else { Path::new("/tmp") };
    let path = dir.join("leasehold-private-ovs.lock");
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failed(&e))?;
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => return Ok(lock),
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            eprintln!(
                "waiting for another process's private Open vSwitch to exit ({})",
                path.display()
            );
            file
        }
        Err((_, e)) => return Err(failed(&e)),
    };
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| failed(&e))
}

/// Removes the directories of earlier test binaries that are gone (their
/// daemons went with them; nothing else cleans the directory up).
fn remove_dead_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("leasehold-ovs-") else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn spawn_daemon(program: &str, args: &[String]) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    // Reaped by nobody on purpose: it lives as long as the test binary.
    std::mem::forget(child);
    Ok(())
}

fn wait_until(mut ok: impl FnMut() -> bool, what: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{what} did not come up in 10 s"))
}
