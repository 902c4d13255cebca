//! Watching an agent from outside, the same way for both: when each port
//! event reached the agent's queue (a copy of the server's casts) and when
//! each port appeared in a network's hosts file (inotify on the conf dirs).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::Value;

/// When each port's `port_create_end` reached the agent's queue, by MAC.
pub struct EventClock {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EventClock {
    /// Binds a queue of its own to the routing key the server casts to this
    /// host's DHCP agent on (`dhcp_agent.<host>` on the `neutron` exchange),
    /// so it gets a copy of every message the agent gets, at the same time.
    pub fn start(url: &str, host: &str) -> Result<EventClock> {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        // oslo's rabbit:// is AMQP 0-9-1 on the same URL.
        let url = match url.strip_prefix("rabbit://") {
            Some(rest) => format!("amqp://{rest}"),
            None => url.to_string(),
        };
        let key = format!("dhcp_agent.{host}");
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let consumer = async {
                    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
                    let ch = conn.create_channel().await?;
                    let q = ch
                        .queue_declare(
                            "".into(),
                            QueueDeclareOptions {
                                exclusive: true,
                                auto_delete: true,
                                ..Default::default()
                            },
                            FieldTable::default(),
                        )
                        .await?;
                    ch.queue_bind(
                        q.name().as_str().into(),
                        "neutron".into(),
                        key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                    let consumer = ch
                        .basic_consume(
                            q.name().as_str().into(),
                            "leasehold-bench-clock".into(),
                            BasicConsumeOptions {
                                no_ack: true,
                                ..Default::default()
                            },
                            FieldTable::default(),
                        )
                        .await?;
                    Ok::<_, lapin::Error>((conn, consumer))
                };
                let (_conn, mut consumer) = match consumer.await {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                while !stop2.load(Ordering::Relaxed) {
                    let next = tokio::time::timeout(
                        std::time::Duration::from_millis(200),
                        consumer.next(),
                    )
                    .await;
                    let Ok(Some(Ok(delivery))) = next else {
                        continue;
                    };
                    let at = Instant::now();
                    if let Some(mac) = created_port_mac(&delivery.data) {
                        if let Ok(mut s) = seen2.lock() {
                            s.entry(mac).or_insert(at);
                        }
                    }
                }
            });
        });
        ready_rx
            .recv()
            .context("event clock thread")?
            .map_err(|e| anyhow::anyhow!("event clock: {e}"))?;
        Ok(EventClock {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// MAC → when its create event arrived.
    pub fn seen(&self) -> HashMap<String, Instant> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for EventClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The MAC of the port in a `port_create_end` cast (oslo envelope 2.0).
fn created_port_mac(body: &[u8]) -> Option<String> {
    let outer: Value = serde_json::from_slice(body).ok()?;
    let inner: Value = match outer.get("oslo.message") {
        Some(Value::String(s)) => serde_json::from_str(s).ok()?,
        _ => outer,
    };
    if inner["method"] != "port_create_end" {
        return None;
    }
    Some(
        inner["args"]["payload"]["port"]["mac_address"]
            .as_str()?
            .to_ascii_lowercase(),
    )
}

/// What a hosts-file watcher saw.
#[derive(Default)]
pub struct HostsSeen {
    /// MAC → when it first appeared in any watched hosts file.
    pub appeared: HashMap<String, Instant>,
    /// Network id → how many times its hosts file was rewritten.
    pub rewrites: HashMap<String, usize>,
}

/// Watches `<confs>/<net>/host` of the given networks.
pub struct HostsWatch {
    seen: Arc<Mutex<HostsSeen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostsWatch {
    /// Starts watching (the conf dirs must exist).
    pub fn start(confs: &Path, nets: &[String]) -> Result<HostsWatch> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let mut dirs = HashMap::new();
        for net in nets {
            let dir = confs.join(net);
            let wd = inotify
                .add_watch(
                    &dir,
                    AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
                )
                .with_context(|| format!("watching {}", dir.display()))?;
            dirs.insert(wd, (net.clone(), dir.join("host")));
        }
        let seen = Arc::new(Mutex::new(HostsSeen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
                    continue;
                }
                let Ok(events) = inotify.read_events() else {
                    continue;
                };
                let at = Instant::now();
                let mut changed: Vec<&(String, PathBuf)> = Vec::new();
                for ev in &events {
                    if ev.name.as_deref().and_then(|n| n.to_str()) != Some("host") {
                        continue;
                    }
                    if let Some(d) = dirs.get(&ev.wd) {
                        // One rewrite is one rename onto `host` (both agents
                        // write a temporary file and rename it; a writer that
                        // closes after the rename also shows a close event).
                        if ev.mask.contains(AddWatchFlags::IN_MOVED_TO) {
                            if let Ok(mut s) = seen2.lock() {
                                *s.rewrites.entry(d.0.clone()).or_default() += 1;
                            }
                        }
                        changed.push(d);
                    }
                }
                changed.dedup_by_key(|d| d.0.clone());
                for (_, path) in changed {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    if let Ok(mut s) = seen2.lock() {
                        for mac in hosts_macs(&text) {
                            s.appeared.entry(mac).or_insert(at);
                        }
                    }
                }
            }
        });
        Ok(HostsWatch {
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// How many MACs have appeared so far.
    pub fn appeared(&self) -> usize {
        self.seen.lock().map(|s| s.appeared.len()).unwrap_or(0)
    }

    /// Stops and returns what it saw.
    pub fn finish(mut self) -> HostsSeen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

/// The MACs of a dnsmasq hosts file (first field of each line).
pub fn hosts_macs(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .filter_map(|l| l.split(',').next())
        .filter(|m| m.len() == 17)
        .map(str::to_ascii_lowercase)
}
