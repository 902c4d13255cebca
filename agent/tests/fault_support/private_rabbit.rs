//! A private RabbitMQ node for tests that stop the broker: its own node
//! name, ports, data and log directories, so the machine's shared broker is
//! never touched. Run as the `rabbitmq` user (for the Erlang cookie), with
//! the scripts under /usr/lib/rabbitmq/bin directly (the /usr/sbin wrappers
//! would write the shared node's startup log).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use leasehold_testkit::wait_for;

/// A RabbitMQ node of our own, stopped and removed on drop.
pub struct PrivateRabbit {
    dir: tempfile::TempDir,
    /// `lh-<pid>-<n>@localhost`.
    pub node: String,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    dist_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl PrivateRabbit {
    /// Sets the node up and starts it; waits until it accepts connections.
    pub fn start() -> PrivateRabbit {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let port = free_port();
        let mut dist_port = free_port();
        while dist_port == port {
            dist_port = free_port();
        }
        let node = format!(
            "lh-{}-{}@localhost",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("rabbitmq.conf");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        let node = PrivateRabbit {
            dir,
            node,
            port,
            dist_port,
        };
        node.start_again();
        node
    }

    fn script(&self, name: &str) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "rabbitmq", "--", "env", "HOME=/var/lib/rabbitmq"])
            .arg(format!("RABBITMQ_NODENAME={}", self.node))
            .arg(format!("RABBITMQ_NODE_PORT={}", self.port))
            .arg(format!("RABBITMQ_DIST_PORT={}", self.dist_port))
            .arg(format!(
                "RABBITMQ_MNESIA_BASE={}",
                d.join("mnesia").display()
            ))
            .arg(format!("RABBITMQ_LOG_BASE={}", d.join("log").display()))
            .arg(format!(
                "RABBITMQ_CONFIG_FILE={}",
                d.join("rabbitmq").display()
            ))
            .arg(format!(
                "RABBITMQ_ENABLED_PLUGINS_FILE={}",
                d.join("enabled_plugins").display()
            ))
            .arg(format!("RABBITMQ_PID_FILE={}", d.join("pid").display()))
            .arg(format!("/usr/lib/rabbitmq/bin/{name}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn ctl(&self, args: &[&str]) -> bool {
        self.script("rabbitmqctl")
            .args(["-n", &self.node])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts the (stopped) node with its data kept; waits until it serves.
    pub fn start_again(&self) {
        let ok = self
            .script("rabbitmq-server")
            .arg("-detached")
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "rabbitmq-server -detached failed for {}", self.node);
        let up = wait_for(Duration::from_secs(60), || {
            (self.ctl(&["await_startup", "--timeout", "5"])
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok())
            .then_some(())
        });
        assert!(
            up.is_some(),
            "private RabbitMQ {} did not start; logs in {}",
            self.node,
            self.dir.path().join("log").display()
        );
    }

    /// Stops the node (the broker is gone until [`Self::start_again`]).
    pub fn stop(&self) {
        assert!(
            self.ctl(&["stop"]),
            "rabbitmqctl -n {} stop failed",
            self.node
        );
        wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .is_err()
                .then_some(())
        });
    }

    /// `rabbit://guest:guest@127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.ctl(&["stop"]);
    }
}
