//! Watching the networks file: re-read on change, refuse bad versions, emit the difference.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::diff::events;
use super::networks_file::{load, FileError, NetworksFile};
use super::server::EmbeddedServer;
use crate::notification::Event;

/// How often the file's metadata is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What identifies a version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    modified_ns: i128,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &PathBuf) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    Some(Fingerprint {
        modified_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        len: m.len(),
        inode: m.ino(),
    })
}

/// Keeps the embedded server in step with the file.
#[derive(Debug)]
pub struct FileWatcher {
    path: PathBuf,
    server: Arc<EmbeddedServer>,
    current: NetworksFile,
    seen: Option<Fingerprint>,
}

impl FileWatcher {
    /// A watcher that has served nothing yet.
    pub fn new(path: PathBuf, server: Arc<EmbeddedServer>) -> Self {
        FileWatcher {
            path,
            server,
            current: NetworksFile::default(),
            seen: None,
        }
    }

    /// Reads the file; if it is good, serves it and returns the events that
    /// lead from the previous version to it. A bad file changes nothing.
    pub fn reload(&mut self) -> Result<Vec<Event>, FileError> {
        self.seen = fingerprint(&self.path);
        let new = load(&self.path)?;
        for w in &new.warnings {
            tracing::warn!(network = %w.network_id, "{w}");
        }
        self.server.replace(&new);
        let out = events(&self.current, &new);
        self.current = new;
        Ok(out)
    }

    /// Whether the file changed since it was last read.
    fn changed(&self) -> bool {
        fingerprint(&self.path) != self.seen
    }

    /// Polls the file and reloads on change or when `reread` fires, sending
    /// events to `tx`, until `shutdown` turns true.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Event>,
        mut reread: mpsc::Receiver<()>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = reread.recv() => true,
                _ = shutdown.changed() => return,
            };
            if !forced && !self.changed() {
                continue;
            }
            match self.reload() {
                Ok(events) => {
                    if !events.is_empty() {
                        tracing::info!(file = %self.path.display(), events = events.len(), "networks file changed");
                    }
                    for e in events {
                        if tx.send(e).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => tracing::error!("{e}; still serving the last good version"),
            }
        }
    }
}
