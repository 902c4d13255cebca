//! A real neutron-server (the PyPI package, pinned) for end-to-end tests:
//! MariaDB database and RabbitMQ vhost of its own, neutron-api under uWSGI,
//! neutron-rpc-server, neutron-periodic-workers, and a reported Open vSwitch
//! agent for the test host so the server schedules networks to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::rabbit::Vhost;
use crate::repo_root;

/// The Python of a venv with the pinned neutron, made once if absent.
pub fn neutron_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = std::env::var_os("LEASEHOLD_NEUTRON_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target").join("neutron-venv"));
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
            let reqs = repo_root().join("agent/tests/support/requirements-neutron.txt");
            let ok = Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "-q", "-r"])
                .arg(&reqs)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "pip install -r {} failed", reqs.display());
            std::fs::write(&ready, b"").expect("marker written");
        }
        venv
    })
    .clone()
}

/// A MariaDB database of our own, dropped on drop.
pub struct Database {
    /// Its name.
    pub name: String,
}

fn mariadb(sql: &str) -> bool {
    Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-e", sql])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Database {
    /// Creates `lh_test_<pid>_<n>`.
    pub fn create() -> Database {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lh_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            mariadb(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")),
            "cannot create database {name} (is MariaDB running?)"
        );
        Database { name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        mariadb(&format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// A running neutron-server.
pub struct NeutronServer {
    /// Its working directory (configs, logs, state).
    pub dir: tempfile::TempDir,
    /// Its RabbitMQ vhost.
    pub vhost: Vhost,
    _db: Database,
    port: u16,
    children: Vec<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl NeutronServer {
    /// Sets up and starts it, with an Open vSwitch agent reported for `agent_host`.
    pub fn start(agent_host: &str) -> NeutronServer {
        let venv = neutron_venv();
        let dir = tempfile::tempdir().expect("tempdir");
        let vhost = Vhost::create();
        let db = Database::create();
        let port = free_port();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        std::fs::write(
            d.join("neutron.conf"),
            format!(
                "[DEFAULT]\ncore_plugin = ml2\nservice_plugins = router\nauth_strategy = noauth\ntransport_url = {url}\n\
                 dhcp_agents_per_network = 1\nnetwork_auto_schedule = True\nrpc_workers = 1\nrpc_state_report_workers = 1\napi_workers = 1\n\
                 notify_nova_on_port_status_changes = False\nnotify_nova_on_port_data_changes = False\nstate_path = {state}\n\
                 api_paste_config = {paste}\n[database]\nconnection = mysql+pymysql://root@127.0.0.1:3306/{db}?charset=utf8mb4\n\
                 [oslo_concurrency]\nlock_path = {lock}\n\
                 [quotas]\nquota_network = -1\nquota_subnet = -1\nquota_port = -1\n",
                url = vhost.url(),
                state = d.join("state").display(),
                paste = venv.join("etc/neutron/api-paste.ini").display(),
                db = db.name,
                lock = d.join("lock").display(),
            ),
        )
        .expect("neutron.conf");
        std::fs::write(
            d.join("ml2_conf.ini"),
            "[ml2]\ntype_drivers = flat,vlan,vxlan\ntenant_network_types = vxlan\nmechanism_drivers = openvswitch\nextension_drivers = port_security\n[ml2_type_vxlan]\nvni_ranges = 1:4000\n",
        )
        .expect("ml2_conf.ini");
        let bin = |name: &str| venv.join("bin").join(name);
        let conf_args = [
            "--config-file",
            "neutron.conf",
            "--config-file",
            "ml2_conf.ini",
        ];
        let log = |name: &str| Stdio::from(std::fs::File::create(d.join(name)).expect("log file"));
        let ok = Command::new(bin("neutron-db-manage"))
            .current_dir(d)
            .args(conf_args)
            .args(["upgrade", "heads"])
            .stdout(log("db-manage.log"))
            .stderr(log("db-manage.err"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "neutron-db-manage failed; see {}",
            d.join("db-manage.err").display()
        );
        let d = d.to_path_buf();
        let mut server = NeutronServer {
            dir,
            vhost,
            _db: db,
            port,
            children: Vec::new(),
        };
        let api = Command::new(bin("uwsgi"))
            .current_dir(&d)
            .env("OS_NEUTRON_CONFIG_DIR", &d)
            .env("OS_NEUTRON_CONFIG_FILES", "neutron.conf;ml2_conf.ini")
            .args([
                "--http-socket",
                &format!("127.0.0.1:{port}"),
                "--module",
                "neutron.wsgi.api:application",
                "--master",
                "--processes",
                "1",
                "--threads",
                "4",
                "--die-on-term",
            ])
            .stdout(log("api.log"))
            .stderr(log("api.err"))
            .spawn()
            .expect("uwsgi starts");
        server.children.push(api);
        for name in ["neutron-rpc-server", "neutron-periodic-workers"] {
            let child = Command::new(bin(name))
                .current_dir(&d)
                .args(conf_args)
                .stdout(log(&format!("{name}.log")))
                .stderr(log(&format!("{name}.err")))
                .spawn()
                .expect("server process starts");
            server.children.push(child);
        }
        let ovs = Command::new(bin("python"))
            .arg(repo_root().join("agent/tests/support/fake_ovs_agent.py"))
            .arg(server.vhost.url())
            .arg(agent_host)
            .stdout(log("fake-ovs.log"))
            .stderr(log("fake-ovs.err"))
            .spawn()
            .expect("fake OVS agent starts");
        server.children.push(ovs);
        let up = crate::wait_for(Duration::from_secs(120), || {
            server
                .get("/v2.0/agents")
                .filter(|a| a["agents"].as_array().is_some_and(|l| !l.is_empty()))
        });
        assert!(
            up.is_some(),
            "neutron-server did not come up; logs in {}",
            d.display()
        );
        server
    }

    /// The server's logs, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for f in [
            "api.err",
            "neutron-rpc-server.err",
            "neutron-rpc-server.log",
        ] {
            let text = std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("Traceback"))
                .rev()
                .take(20)
                .collect();
            out.push_str(&format!(
                "--- {f}\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }

    fn curl(&self, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-f",
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            &format!("http://127.0.0.1:{}{path}", self.port),
        ]);
        if let Some(b) = body {
            cmd.args(["-d", &b.to_string()]);
        }
        let out = cmd.output().ok()?;
        if !out.status.success() {
            return None;
        }
        if out.stdout.is_empty() {
            return Some(Value::Null);
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// GET; `None` on any failure.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.curl("GET", path, None)
    }

    /// POST, panicking on failure.
    pub fn post(&self, path: &str, body: Value) -> Value {
        self.curl("POST", path, Some(&body))
            .unwrap_or_else(|| panic!("POST {path} {body} failed\n{}", self.logs()))
    }

    /// PUT, panicking on failure.
    pub fn put(&self, path: &str, body: Value) -> Value {
        self.curl("PUT", path, Some(&body))
            .unwrap_or_else(|| panic!("PUT {path} {body} failed\n{}", self.logs()))
    }

    /// DELETE, panicking on failure.
    pub fn delete(&self, path: &str) {
        self.curl("DELETE", path, None)
            .unwrap_or_else(|| panic!("DELETE {path} failed\n{}", self.logs()));
    }

    /// DELETE; whether it worked (for cleanups that must go on).
    pub fn try_delete(&self, path: &str) -> bool {
        self.curl("DELETE", path, None).is_some()
    }

    /// Name of its MariaDB database.
    pub fn database(&self) -> &str {
        &self._db.name
    }

    /// Runs one SQL query on the server's database; the first column of each row.
    pub fn sql(&self, query: &str) -> Vec<String> {
        let out = Command::new("mariadb")
            .args([
                "-uroot",
                "-h127.0.0.1",
                "-N",
                "-B",
                &self._db.name,
                "-e",
                query,
            ])
            .output()
            .expect("mariadb runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    }

    /// Its working directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NeutronServer {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for child in &mut self.children {
            if crate::wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten()).is_none()
            {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
