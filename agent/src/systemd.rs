//! systemd integration (`Type=notify`): readiness after the first full sync, a
//! watchdog kept alive by the main loop, and STOPPING on shutdown. Without
//! `NOTIFY_SOCKET` every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// The first full sync is done: the agent serves.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// The watchdog ping, sent from the main loop so a wedged loop is noticed.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to ping: half of `WatchdogSec`, or `None` when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|t| t / 2)
}
