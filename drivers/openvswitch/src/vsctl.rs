//! OVSDB through `ovs-vsctl`, for the standalone mode's VLAN tags (the plug
//! path speaks OVSDB itself: `ovsdb.rs`).

use std::process::Stdio;
use std::time::Duration;

use leasehold_core::driver::DriverError;
use tokio::process::Command;

/// Runs `ovs-vsctl` against one OVSDB, with a timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vsctl {
    /// `--db=` value; `None` lets ovs-vsctl use its default (under `$OVS_RUNDIR`).
    pub db: Option<String>,
    /// `--timeout=` seconds.
    pub timeout: u32,
}

impl Vsctl {
    /// Runs one ovs-vsctl command line; returns stdout, or the exit code and stderr.
    pub async fn run(&self, args: &[&str]) -> Result<String, DriverError> {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.arg(format!("--timeout={}", self.timeout));
        if let Some(db) = &self.db {
            cmd.arg(format!("--db={db}"));
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let wait = Duration::from_secs(u64::from(self.timeout) + 5);
        let out = match tokio::time::timeout(wait, cmd.output()).await {
            Err(_) => {
                return Err(DriverError::Failed(format!(
                    "ovs-vsctl {} did not finish in {}s",
                    args.join(" "),
                    wait.as_secs()
                )))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DriverError::Missing {
                    what: "ovs-vsctl".into(),
                    hint: "install Open vSwitch (openvswitch-switch)".into(),
                })
            }
            Ok(Err(e)) => return Err(DriverError::io("run ovs-vsctl", e)),
            Ok(Ok(out)) => out,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(VsctlFailure {
            code: out.status.code(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
        .into())
    }

    /// Gives `port` an access VLAN `tag` (clearing the dead-VLAN trunk).
    pub async fn set_port_tag(&self, port: &str, tag: u16) -> Result<(), DriverError> {
        if tag > 4095 {
            return Err(DriverError::Failed(format!(
                "VLAN tag {tag} of port {port} is above 4095"
            )));
        }
        let tag = format!("tag={tag}");
        self.run(&[
            "--",
            "set",
            "Port",
            port,
            &tag,
            "--",
            "clear",
            "Port",
            port,
            "trunks",
            "--",
            "clear",
            "Port",
            port,
            "vlan_mode",
        ])
        .await
        .map(drop)
    }
}

/// A failed ovs-vsctl run.
struct VsctlFailure {
    code: Option<i32>,
    args: String,
    stderr: String,
}

impl From<VsctlFailure> for DriverError {
    fn from(f: VsctlFailure) -> Self {
        let code = f.code.map_or("by signal".to_string(), |c| c.to_string());
        DriverError::Failed(format!(
            "ovs-vsctl exit {code}: ovs-vsctl {}: {}",
            f.args, f.stderr
        ))
    }
}
