//! RabbitMQ and oslo.messaging for tests: a private vhost, and a peer built on the real library.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::repo_root;

/// A vhost of our own on the shared broker, deleted on drop.
pub struct Vhost {
    /// Its name.
    pub name: String,
}

fn rabbitmqctl(args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Vhost {
    /// Creates `leasehold-test-<pid>-<n>` with full rights for guest.
    pub fn create() -> Vhost {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "leasehold-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            rabbitmqctl(&["add_vhost", &name]),
            "rabbitmqctl add_vhost {name} failed (is RabbitMQ running?)"
        );
        assert!(rabbitmqctl(&[
            "set_permissions",
            "-p",
            &name,
            "guest",
            ".*",
            ".*",
            ".*"
        ]));
        Vhost { name }
    }

    /// `rabbit://guest:guest@127.0.0.1:5672/<vhost>`.
    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:5672/{}", self.name)
    }

    /// Closes every client connection to this vhost (and no other).
    pub fn close_connections(&self) -> usize {
        let out = Command::new("rabbitmqctl")
            .args(["-q", "list_connections", "pid", "vhost"])
            .output()
            .expect("rabbitmqctl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut closed = 0;
        for line in text.lines() {
            let mut cols = line.split('\t');
            if let (Some(pid), Some(vhost)) = (cols.next(), cols.next()) {
                if vhost == self.name && rabbitmqctl(&["close_connection", pid, "test closes it"]) {
                    closed += 1;
                }
            }
        }
        closed
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.name]);
    }
}

/// Whether privileged tests must run (CI) or may be skipped (a developer without root).
pub fn privileged_or_skip(what: &str) -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}: CI must run this test as root");
    }
    if !root {
        eprintln!("skipping {what}: needs root");
    }
    root
}

/// The Python of a venv with the pinned oslo.messaging, made once if absent.
pub fn oslo_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = std::env::var_os("LEASEHOLD_OSLO_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target").join("oslo-venv"));
            let python = venv.join("bin").join("python");
            let ready = venv.join(".leasehold-ready");
            if !ready.exists() {
                let ok = Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(&venv)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "python3 -m venv {} failed", venv.display());
                let reqs = repo_root().join("agent/tests/support/requirements-oslo.txt");
                let ok = Command::new(&python)
                    .args(["-m", "pip", "install", "-q", "-r"])
                    .arg(&reqs)
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "pip install -r {} failed", reqs.display());
                std::fs::write(&ready, b"").expect("marker written");
            }
            python
        })
        .clone()
}

/// Where the peer's own log goes: `target/oslo-peer.log`, for a failing test's reader.
fn peer_log() -> Stdio {
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(repo_root().join("target").join("oslo-peer.log"))
    {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

/// A neutron-server stand-in on the real oslo.messaging.
pub struct OsloPeer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl OsloPeer {
    /// Starts it on `url` and waits until its servers listen.
    pub fn start(url: &str) -> OsloPeer {
        OsloPeer::start_with_config(url, &[])
    }

    /// Starts it with oslo.config files (`[oslo_messaging_rabbit]` options, say).
    pub fn start_with_config(url: &str, config_files: &[&std::path::Path]) -> OsloPeer {
        let script = repo_root().join("agent/tests/support/oslo_peer.py");
        let mut command = Command::new(oslo_python());
        command.arg(&script).arg(url);
        for file in config_files {
            command.arg("--config-file").arg(file);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(peer_log())
            .spawn()
            .expect("the oslo peer starts");
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut peer = OsloPeer {
            child,
            stdin,
            lines,
        };
        peer.expect_line(|l| l == "READY", Duration::from_secs(60))
            .expect("the oslo peer became ready");
        peer
    }

    fn expect_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Sends one command and waits for it to be done.
    pub fn command(&mut self, cmd: serde_json::Value) {
        writeln!(self.stdin, "{cmd}").expect("peer stdin");
        self.stdin.flush().expect("peer stdin");
        self.expect_line(|l| l == "DONE", Duration::from_secs(30))
            .expect("peer finished the command");
    }

    /// Waits for a call of `method`, returning its args.
    pub fn wait_call(&mut self, method: &str, timeout: Duration) -> Option<serde_json::Value> {
        let line = self.expect_line(
            |l| {
                l.strip_prefix("CALL ")
                    .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                    .is_some_and(|v| v["method"] == method)
            },
            timeout,
        )?;
        let v: serde_json::Value = serde_json::from_str(line.strip_prefix("CALL ")?).ok()?;
        Some(v["args"].clone())
    }
}

impl Drop for OsloPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
