//! OVSDB through `ovs-vsctl`: the handful of transactions the driver needs.

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

/// What Neutron sets on the DHCP port's Interface row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortIds<'a> {
    /// `iface-id`: the Neutron port id.
    pub iface_id: &'a str,
    /// `attached-mac`: the port's MAC.
    pub mac: &'a str,
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

    /// Whether `bridge` exists (`br-exists` exits 2 when it does not).
    pub async fn bridge_exists(&self, bridge: &str) -> Result<bool, DriverError> {
        match self.run(&["br-exists", bridge]).await {
            Ok(_) => Ok(true),
            Err(DriverError::Failed(text)) if text.starts_with(NOT_FOUND_MARK) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes port `port` from whatever bridge has it; absent is fine.
    pub async fn del_port(&self, port: &str) -> Result<(), DriverError> {
        self.run(&["--if-exists", "del-port", port]).await.map(drop)
    }

    /// Adds `port` to `bridge` as Neutron's `replace_port` second transaction:
    /// dead VLAN 4095 in trunk mode (nothing leaks until a real tag is set),
    /// the Interface `external_ids`, and `type=internal` unless it is a veth.
    pub async fn add_dhcp_port(
        &self,
        bridge: &str,
        port: &str,
        ids: &PortIds<'_>,
        internal: bool,
    ) -> Result<(), DriverError> {
        let iface_id = format!("external_ids:iface-id={}", ids.iface_id);
        let mac = format!("external_ids:attached-mac=\"{}\"", ids.mac);
        let mut args = vec![
            "--",
            "add-port",
            bridge,
            port,
            "tag=4095",
            "vlan_mode=trunk",
            "trunks=4095",
            "--",
            "set",
            "Interface",
            port,
        ];
        if internal {
            args.push("type=internal");
        }
        args.extend([
            iface_id.as_str(),
            "external_ids:iface-status=active",
            mac.as_str(),
        ]);
        self.run(&args).await.map(drop)
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

/// Prefix of the error text of ovs-vsctl's exit code 2 ("not found").
const NOT_FOUND_MARK: &str = "ovs-vsctl exit 2";

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
