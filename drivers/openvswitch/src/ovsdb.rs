//! OVSDB spoken directly (RFC 7047: JSON-RPC over the unix or TCP socket)
//! for the plug path: remove a stale port, add the DHCP port (the bridge is
//! checked in the same transaction).
//!
//! Each `ovs-vsctl` run is a new process that loads every bridge, port and
//! interface before it acts; in a full sync of 200 networks those runs were
//! the largest CPU cost after ovs-vswitchd itself. Here one connection stays
//! open and a transaction is one round trip. As ovs-vsctl does, a change
//! bumps `next_cfg` in the same transaction and is done when ovs-vswitchd
//! reports it in `cur_cfg`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use leasehold_core::driver::DriverError;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

/// The database every transaction names.
const DATABASE: &str = "Open_vSwitch";

/// What Neutron sets on the DHCP port's Interface row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortIds<'a> {
    /// `iface-id`: the Neutron port id.
    pub iface_id: &'a str,
    /// `attached-mac`: the port's MAC.
    pub mac: &'a str,
}

/// Where the OVSDB server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `tcp:HOST:PORT` (`tcp:[::1]:6640` for IPv6).
    Tcp {
        /// Name or address, without brackets.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl Target {
    /// Parses `[OVS] ovsdb_connection`; `None` is ovs-vsctl's default, the
    /// socket `db.sock` under `$OVS_RUNDIR` (`/var/run/openvswitch`).
    pub fn parse(connection: Option<&str>) -> Result<Target, DriverError> {
        let Some(text) = connection else {
            let dir = std::env::var_os("OVS_RUNDIR")
                .map_or_else(|| PathBuf::from("/var/run/openvswitch"), PathBuf::from);
            return Ok(Target::Unix(dir.join("db.sock")));
        };
        if let Some(path) = text.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let tcp = text.strip_prefix("tcp:").and_then(|addr| {
            let (host, port) = addr.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(Target::Tcp {
                host: host.to_string(),
                port: port.parse().ok().filter(|_| !host.is_empty())?,
            })
        });
        tcp.ok_or_else(|| {
            DriverError::Failed(format!(
                "[OVS] ovsdb_connection {text:?}: only unix:PATH and tcp:HOST:PORT are supported"
            ))
        })
    }
}

/// A byte stream to the server (unix or TCP).
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One open connection: requests go out one at a time.
struct Connection {
    stream: Box<dyn Stream>,
    /// Bytes read but not yet parsed (messages are concatenated JSON).
    pending: Vec<u8>,
    next_id: u64,
}

impl Connection {
    async fn open(target: &Target) -> io::Result<Connection> {
        let stream: Box<dyn Stream> = match target {
            Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            Target::Tcp { host, port } => {
                Box::new(tokio::net::TcpStream::connect((host.as_str(), *port)).await?)
            }
        };
        Ok(Connection {
            stream,
            pending: Vec::new(),
            next_id: 0,
        })
    }

    /// Sends one request and returns its `result`; answers the server's
    /// `echo` keep-alives met meanwhile.
    async fn call(&mut self, method: &str, params: Value) -> io::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"method": method, "params": params, "id": id});
        self.stream
            .write_all(request.to_string().as_bytes())
            .await?;
        loop {
            let mut message = self.read_message().await?;
            if message["method"] == "echo" {
                let reply =
                    json!({"result": message["params"], "error": null, "id": message["id"]});
                self.stream.write_all(reply.to_string().as_bytes()).await?;
                continue;
            }
            if message["id"] != id {
                continue;
            }
            if !message["error"].is_null() {
                return Err(io::Error::other(format!(
                    "OVSDB {method} refused: {}",
                    message["error"]
                )));
            }
            return Ok(message["result"].take());
        }
    }

    async fn read_message(&mut self) -> io::Result<Value> {
        loop {
            let mut messages =
                serde_json::Deserializer::from_slice(&self.pending).into_iter::<Value>();
            match messages.next() {
                Some(Ok(message)) => {
                    let used = messages.byte_offset();
                    self.pending.drain(..used);
                    return Ok(message);
                }
                Some(Err(e)) if !e.is_eof() => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e))
                }
                // Incomplete (or only whitespace so far): read more.
                _ => {}
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A client of one OVSDB server; the connection is opened on first use and
/// again after it breaks.
pub struct Ovsdb {
    target: Target,
    timeout: Duration,
    connection: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Ovsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ovsdb")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How a port is added: the bridge was missing, or another failure.
#[derive(Debug)]
pub enum AddPortError {
    /// No bridge of that name.
    NoBridge,
    /// Anything else.
    Other(DriverError),
}

impl Ovsdb {
    /// A client of `target`; each request (and each wait for ovs-vswitchd)
    /// may take `timeout`.
    pub fn new(target: Target, timeout: Duration) -> Self {
        Ovsdb {
            target,
            timeout,
            connection: Mutex::new(None),
        }
    }

    /// Runs one transaction; the results of its operations, or the first
    /// operation's error.
    pub async fn transact(&self, operations: Vec<Value>) -> Result<Vec<Value>, TransactError> {
        let mut params = vec![json!(DATABASE)];
        params.extend(operations);
        let params = Value::Array(params);
        let mut slot = self.connection.lock().await;
        // A connection kept from before may have been closed by a server
        // restart: one retry on a fresh one.
        let mut retry = slot.is_some();
        loop {
            let outcome = tokio::time::timeout(self.timeout, async {
                if slot.is_none() {
                    *slot = Some(Connection::open(&self.target).await?);
                }
                match slot.as_mut() {
                    Some(c) => c.call("transact", params.clone()).await,
                    None => Err(io::ErrorKind::NotConnected.into()),
                }
            })
            .await;
            let error = match outcome {
                Ok(Ok(result)) => return results(result),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}s", self.timeout.as_secs()),
            };
            *slot = None;
            if !std::mem::take(&mut retry) {
                return Err(TransactError::Connection(format!(
                    "OVSDB at {}: {error}",
                    self.target
                )));
            }
        }
    }

    /// Removes the port of that name from whatever bridge holds it (its
    /// Port and Interface rows go with it); absent is fine. A transaction
    /// of its own, waited for, before a port of the same name is added:
    /// Neutron bug 1519926 (in one transaction ovs-vswitchd sees no change).
    pub async fn del_port(&self, port: &str) -> Result<(), DriverError> {
        let found = self
            .transact(vec![select("Port", "name", port, &["_uuid"])])
            .await?;
        let uuids: Vec<Value> = rows(&found[0])
            .iter()
            .map(|row| row["_uuid"].clone())
            .collect();
        if uuids.is_empty() {
            return Ok(());
        }
        let mut ops = vec![json!({"op": "mutate", "table": "Bridge", "where": [],
            "mutations": [["ports", "delete", ["set", uuids]]]})];
        ops.extend(bump_next_cfg());
        let r = self.transact(ops).await?;
        self.wait_applied(next_cfg(&r)?).await
    }

    /// Adds `port` to `bridge` as Neutron's `replace_port` second
    /// transaction: dead VLAN 4095 in trunk mode (nothing leaks until a real
    /// tag is set), the Interface `external_ids`, `type=internal` unless it
    /// is a veth; waits until ovs-vswitchd has it.
    pub async fn add_dhcp_port(
        &self,
        bridge: &str,
        port: &str,
        ids: &PortIds<'_>,
        internal: bool,
    ) -> Result<(), AddPortError> {
        let mut interface = json!({"name": port, "external_ids": ["map", [
            ["iface-id", ids.iface_id],
            ["iface-status", "active"],
            ["attached-mac", ids.mac],
        ]]});
        if internal {
            interface["type"] = json!("internal");
        }
        let mut ops = vec![
            // Fails the transaction at once when the bridge is missing.
            json!({"op": "wait", "table": "Bridge", "timeout": 0,
                "where": [["name", "==", bridge]], "columns": ["name"],
                "until": "==", "rows": [{"name": bridge}]}),
            json!({"op": "insert", "table": "Interface", "row": interface, "uuid-name": "iface"}),
            json!({"op": "insert", "table": "Port", "uuid-name": "port", "row": {
                "name": port, "interfaces": ["named-uuid", "iface"],
                "tag": 4095, "vlan_mode": "trunk", "trunks": 4095}}),
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                "mutations": [["ports", "insert", ["named-uuid", "port"]]]}),
        ];
        ops.extend(bump_next_cfg());
        let r = match self.transact(ops).await {
            Ok(r) => r,
            // The `wait` (operation 0) timed out: no such bridge.
            Err(TransactError::Operation {
                index: 0, error, ..
            }) if error == "timed out" => return Err(AddPortError::NoBridge),
            Err(e) => return Err(AddPortError::Other(e.into())),
        };
        let cfg = next_cfg(&r).map_err(AddPortError::Other)?;
        self.wait_applied(cfg).await.map_err(AddPortError::Other)
    }

    /// Waits until ovs-vswitchd has applied configuration `cfg`.
    async fn wait_applied(&self, cfg: i64) -> Result<(), DriverError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let r = self
                .transact(vec![
                    json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"]}),
                ])
                .await?;
            let current = rows(&r[0])
                .first()
                .and_then(|row| row["cur_cfg"].as_i64())
                .unwrap_or(0);
            if current >= cfg {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriverError::Failed(format!(
                    "ovs-vswitchd did not apply the change within {}s (cur_cfg {current}, waiting for {cfg}); is it running?",
                    self.timeout.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// A transaction that did not go through.
#[derive(Debug)]
pub enum TransactError {
    /// The server was not reached or did not answer.
    Connection(String),
    /// Operation `index` (0-based; one past the last: the commit) failed.
    Operation {
        /// Which operation.
        index: usize,
        /// The server's error (`timed out`, `constraint violation`, …).
        error: String,
        /// The server's details, if any.
        details: String,
    },
}

impl std::fmt::Display for TransactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransactError::Connection(text) => f.write_str(text),
            TransactError::Operation {
                index,
                error,
                details,
            } => {
                write!(
                    f,
                    "OVSDB transaction failed at operation {}: {error}",
                    index + 1
                )?;
                if !details.is_empty() {
                    write!(f, " ({details})")?;
                }
                Ok(())
            }
        }
    }
}

impl From<TransactError> for DriverError {
    fn from(e: TransactError) -> Self {
        DriverError::Failed(e.to_string())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "unix:{}", path.display()),
            Target::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

/// The operations' results, or the first error among them (the server puts
/// an error object where an operation failed, and one more after the
/// operations when the commit failed).
fn results(result: Value) -> Result<Vec<Value>, TransactError> {
    let Value::Array(items) = result else {
        return Err(TransactError::Connection(format!(
            "OVSDB transact answered {result}, not an array"
        )));
    };
    let failed = items.iter().enumerate().find_map(|(index, item)| {
        let error = item.get("error")?.as_str()?;
        Some(TransactError::Operation {
            index,
            error: error.to_string(),
            details: item["details"].as_str().unwrap_or_default().to_string(),
        })
    });
    failed.map_or(Ok(items), Err)
}

fn select(table: &str, column: &str, value: &str, columns: &[&str]) -> Value {
    json!({"op": "select", "table": table, "where": [[column, "==", value]], "columns": columns})
}

fn rows(result: &Value) -> &[Value] {
    result["rows"].as_array().map_or(&[], Vec::as_slice)
}

/// Two operations that end a changing transaction: bump `next_cfg`, read it.
fn bump_next_cfg() -> [Value; 2] {
    [
        json!({"op": "mutate", "table": "Open_vSwitch", "where": [],
            "mutations": [["next_cfg", "+=", 1]]}),
        json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg"]}),
    ]
}

/// The `next_cfg` read by the last operation of a changing transaction.
fn next_cfg(results: &[Value]) -> Result<i64, DriverError> {
    results
        .last()
        .and_then(|r| rows(r).first())
        .and_then(|row| row["next_cfg"].as_i64())
        .ok_or_else(|| {
            DriverError::Failed("OVSDB: no Open_vSwitch row to read next_cfg from".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse(Some("unix:/run/ovs/db.sock")).unwrap(),
            Target::Unix("/run/ovs/db.sock".into())
        );
        let tcp = |host: &str| Target::Tcp {
            host: host.into(),
            port: 6640,
        };
        assert_eq!(
            Target::parse(Some("tcp:127.0.0.1:6640")).unwrap(),
            tcp("127.0.0.1")
        );
        assert_eq!(Target::parse(Some("tcp:[::1]:6640")).unwrap(), tcp("::1"));
        assert_eq!(tcp("::1").to_string(), "tcp:[::1]:6640");
        // A bad port is refused when the driver is made, not at each connect.
        for bad in ["tcp:127.0.0.1:ovsdb", "tcp:127.0.0.1", "tcp::6640"] {
            let err = Target::parse(Some(bad)).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = Target::parse(Some("ssl:127.0.0.1:6640")).unwrap_err();
        assert!(err.to_string().contains("ssl:127.0.0.1:6640"), "{err}");
        assert!(Target::parse(Some("unix:")).is_err());
        assert!(matches!(Target::parse(None).unwrap(), Target::Unix(p) if p.ends_with("db.sock")));
    }

    #[test]
    fn the_first_failed_operation_is_reported() {
        let ok = results(json!([{"rows": []}, {"count": 1}])).unwrap();
        assert_eq!(ok.len(), 2);
        let err = results(json!([{"count": 1}, {"error": "constraint violation",
            "details": "Transaction causes multiple rows in \"Port\" table to have identical values"},
            null]))
        .unwrap_err();
        match &err {
            TransactError::Operation { index, error, .. } => {
                assert_eq!((index, error.as_str()), (&1, "constraint violation"))
            }
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .contains("operation 2: constraint violation (Transaction causes"));
        assert!(results(json!({"error": "x"})).is_err());
    }

    /// A server that sends `chunks` in order, after reading one request.
    async fn serve(chunks: Vec<&'static str>) -> (Connection, tokio::task::JoinHandle<String>) {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(async move {
            let mut seen = vec![0u8; 4096];
            let n = server.read(&mut seen).await.unwrap();
            for chunk in chunks {
                server.write_all(chunk.as_bytes()).await.unwrap();
                tokio::task::yield_now().await;
            }
            // What the client wrote after its request (the echo reply).
            let mut rest = vec![0u8; 4096];
            let m = tokio::time::timeout(Duration::from_millis(200), server.read(&mut rest))
                .await
                .map_or(0, |r| r.unwrap_or(0));
            format!(
                "{}|{}",
                String::from_utf8_lossy(&seen[..n]),
                String::from_utf8_lossy(&rest[..m])
            )
        });
        let connection = Connection {
            stream: Box::new(client),
            pending: Vec::new(),
            next_id: 0,
        };
        (connection, task)
    }

    #[tokio::test]
    async fn replies_split_and_joined_and_echo_answered() {
        let (mut c, server) = serve(vec![
            r#"{"method":"echo","params":[],"id":"echo"}{"id":99,"result":"#,
            r#"[{"rows":[]}],"error":null}  {"id":1,"re"#,
            r#"sult":[{"count":1}],"error":null}"#,
        ])
        .await;
        let result = c.call("transact", json!(["Open_vSwitch"])).await.unwrap();
        assert_eq!(result, json!([{"count": 1}]));
        let seen = server.await.unwrap();
        let (request, reply) = seen.split_once('|').unwrap();
        let request: Value = serde_json::from_str(request).unwrap();
        assert_eq!(request["method"], "transact");
        assert_eq!(request["id"], 1);
        let reply: Value = serde_json::from_str(reply).unwrap();
        assert_eq!(reply["id"], "echo");
        assert!(reply["error"].is_null());
    }

    #[tokio::test]
    async fn a_closed_connection_is_an_error() {
        let (mut c, _server) = serve(vec![r#"{"id":1,"res"#]).await;
        let err = c
            .call("transact", json!(["Open_vSwitch"]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A unix-socket server that answers one transaction per connection,
    /// then closes it (as a restarted ovsdb-server leaves a kept one).
    #[tokio::test]
    async fn a_closed_kept_connection_is_reopened_once() {
        let dir = std::env::temp_dir().join(format!("lh-ovsdb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            for n in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let len = s.read(&mut buf).await.unwrap();
                let request: Value = serde_json::from_slice(&buf[..len]).unwrap();
                let reply = json!({"id": request["id"], "error": null,
                    "result": [{"rows": [{"n": n}]}]});
                s.write_all(reply.to_string().as_bytes()).await.unwrap();
            }
        });
        let db = Ovsdb::new(Target::Unix(path.clone()), Duration::from_secs(5));
        let first = db.transact(vec![json!({})]).await.unwrap();
        assert_eq!(first[0]["rows"][0]["n"], 0);
        // The server closed the first connection; the retry opens another.
        let second = db.transact(vec![json!({})]).await.unwrap();
        assert_eq!(second[0]["rows"][0]["n"], 1);
        server.await.unwrap();
        // Nobody listens any more: one error naming where, no endless retry.
        let err = db.transact(vec![json!({})]).await.unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
