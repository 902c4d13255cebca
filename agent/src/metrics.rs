//! The Prometheus `/metrics` endpoint (off unless `[DEFAULT] metrics_listen` is set).
//!
//! Values are read from the components' own counters when scraped, so no
//! second copy of any state is kept; the text exposition format is small
//! enough to write here directly.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::dispatch::Dispatcher;
use crate::rabbit::RabbitPluginApi;

/// Where the numbers come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The dispatcher (networks, queue, events, syncs, latency).
    pub dispatcher: Arc<Dispatcher>,
    /// The RPC client, in RabbitMQ mode.
    pub rpc: Option<Arc<RabbitPluginApi>>,
    /// dnsmasq's process monitor, when the dnsmasq driver is in use.
    pub dnsmasq: Option<leasehold_dnsmasq::monitor::ProcessMonitor>,
}

struct Writer(String);

impl Writer {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
        let _ = writeln!(
            self.0,
            "# HELP leasehold_{name} {help}\n# TYPE leasehold_{name} {kind}"
        );
        for (labels, value) in samples {
            let _ = writeln!(self.0, "leasehold_{name}{labels} {value}");
        }
    }
}

fn as_refs(v: &[(String, f64)]) -> Vec<(&str, f64)> {
    v.iter().map(|(l, x)| (l.as_str(), *x)).collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The exposition text.
pub fn render(sources: &Sources) -> String {
    let s = sources.dispatcher.stats();
    let mut w = Writer(String::with_capacity(4096));
    w.metric(
        "networks",
        "gauge",
        "Networks served.",
        &[("", s.cache.networks as f64)],
    );
    w.metric(
        "subnets",
        "gauge",
        "Subnets of the networks served.",
        &[("", s.cache.subnets as f64)],
    );
    w.metric(
        "ports",
        "gauge",
        "Ports of the networks served.",
        &[("", s.cache.ports as f64)],
    );
    w.metric(
        "queue_depth",
        "gauge",
        "Notifications waiting to be applied.",
        &[("", s.queue_depth as f64)],
    );
    w.metric(
        "events_received_total",
        "counter",
        "Notifications received.",
        &[("", s.events_received as f64)],
    );
    w.metric(
        "events_dropped_total",
        "counter",
        "Notifications dropped before queueing (not DHCP-relevant or stale).",
        &[("", s.events_dropped as f64)],
    );
    w.metric(
        "events_processed_total",
        "counter",
        "Notifications applied.",
        &[("", s.events_processed as f64)],
    );
    w.metric(
        "driver_calls_total",
        "counter",
        "DHCP driver actions by kind.",
        &[
            ("{action=\"enable\"}", s.enables as f64),
            ("{action=\"disable\"}", s.disables as f64),
            ("{action=\"restart\"}", s.restarts as f64),
            ("{action=\"reload_allocations\"}", s.reloads as f64),
            ("{action=\"clean_devices\"}", s.clean_devices as f64),
        ],
    );
    w.metric(
        "driver_failures_total",
        "counter",
        "Driver actions that failed.",
        &[("", s.driver_failures as f64)],
    );
    w.metric(
        "resyncs_scheduled_total",
        "counter",
        "Resyncs scheduled.",
        &[("", s.resyncs_scheduled as f64)],
    );
    w.metric(
        "syncs_total",
        "counter",
        "Syncs with the server run.",
        &[("", s.syncs as f64)],
    );
    w.metric(
        "sync_duration_seconds_total",
        "counter",
        "Time spent in syncs.",
        &[("", s.sync_time_total.as_secs_f64())],
    );
    w.metric(
        "last_sync_duration_seconds",
        "gauge",
        "Duration of the last sync.",
        &[("", s.last_sync_time.as_secs_f64())],
    );
    w.metric(
        "ready_ports_sent_total",
        "counter",
        "Port ids reported ready to the server.",
        &[("", s.ready_ports_sent as f64)],
    );
    w.metric(
        "ready_ports_pending",
        "gauge",
        "Port ids waiting to be reported ready.",
        &[("", s.ready_ports_pending as f64)],
    );
    let mut latencies: Vec<f64> = s.latency_samples.iter().map(|d| d.as_secs_f64()).collect();
    latencies.sort_by(f64::total_cmp);
    w.metric(
        "event_latency_seconds",
        "summary",
        "Time from a notification's arrival to its application (recent events).",
        &[
            ("{quantile=\"0.5\"}", quantile(&latencies, 0.5)),
            ("{quantile=\"0.99\"}", quantile(&latencies, 0.99)),
            ("_count", latencies.len() as f64),
        ],
    );
    if let Some(rpc) = &sources.rpc {
        let counts = rpc.rpc_counts();
        let calls: Vec<(String, f64)> = counts
            .iter()
            .map(|(m, c)| (format!("{{method=\"{m}\"}}"), c.calls as f64))
            .collect();
        let errors: Vec<(String, f64)> = counts
            .iter()
            .map(|(m, c)| (format!("{{method=\"{m}\"}}"), c.errors as f64))
            .collect();
        w.metric(
            "rpc_calls_total",
            "counter",
            "RPC calls to the server by method.",
            &as_refs(&calls),
        );
        w.metric(
            "rpc_errors_total",
            "counter",
            "Failed RPC calls to the server by method.",
            &as_refs(&errors),
        );
    }
    if let Some(monitor) = &sources.dnsmasq {
        let c = monitor.counters().snapshot();
        w.metric(
            "dnsmasq_deaths_total",
            "counter",
            "dnsmasq processes that died unasked.",
            &[("", c.deaths as f64)],
        );
        w.metric(
            "dnsmasq_restarts_total",
            "counter",
            "dnsmasq respawns after a death.",
            &[("", c.respawns as f64)],
        );
        w.metric(
            "dnsmasq_reload_restarts_total",
            "counter",
            "Reloads done by a controlled restart (dnsmasq 2.90 workaround).",
            &[("", c.reload_restarts as f64)],
        );
        w.metric(
            "dnsmasq_sighups_total",
            "counter",
            "SIGHUPs sent to dnsmasq.",
            &[("", c.sighups as f64)],
        );
        w.metric(
            "dnsmasq_adoptions_total",
            "counter",
            "Running dnsmasq taken over without a restart.",
            &[("", c.adoptions as f64)],
        );
        w.metric(
            "leases_released_total",
            "counter",
            "Leases released on reload.",
            &[
                ("{family=\"4\"}", c.releases_v4 as f64),
                ("{family=\"6\"}", c.releases_v6 as f64),
            ],
        );
    }
    w.0
}

/// Serves `GET /metrics` on `addr` until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    sources: Sources,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stop.changed() => return Ok(()),
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) =
                if request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
                    ("200 OK", render(&sources))
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}
