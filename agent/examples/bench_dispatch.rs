//! Figures, not assertions on time: how fast the queue and the decision core
//! go with fake actions that take 5 ms. Run with
//! `cargo run --release -p leasehold-agent --example bench_dispatch`.

#[path = "../tests/dispatch_fakes.rs"]
mod fakes;

use std::time::{Duration, Instant};

use fakes::*;
use leasehold_agent::notification::Notification as N;

fn port_event(net: &str, i: usize) -> leasehold_agent::notification::Event {
    let ip = format!("198.51.{}.{}", 100 + i / 250, 1 + i % 250);
    ev(
        N::PortCreateEnd {
            port: Box::new(port(
                &format!("{net}-q{i}"),
                "fa:16:3e:00:00:02",
                &[(&format!("{net}-s1"), &ip)],
            )),
            network_id: id(net),
        },
        6,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    for (nets, per_net) in [(1usize, 2000usize), (100, 20), (1000, 2)] {
        let names: Vec<String> = (0..nets).map(|i| format!("n{i}")).collect();
        let (d, _server, rec) = setup(names.iter().map(|n| simple_network(n)).collect());
        for n in &names {
            enabled(&d, &rec, n).await;
        }
        rec.delay("reload_allocations", Duration::from_millis(5));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn({
            let d = d.clone();
            async move { d.run(rx).await }
        });
        let base = d.stats().events_processed;
        let total = nets * per_net;
        let t0 = Instant::now();
        for i in 0..per_net {
            for n in &names {
                d.handle(port_event(n, i));
            }
        }
        let queued = t0.elapsed();
        eventually("applied", || {
            d.stats().events_processed - base == total as u64
        })
        .await;
        let elapsed = t0.elapsed();
        let stats = d.stats();
        let mut lat = stats.latency_samples.clone();
        lat.sort();
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
        println!(
            "{nets} networks x {per_net} port events ({total}), reload 5 ms: queued in {queued:?}, applied in {elapsed:?}, \
             {} reloads, latency p50 {:?} p99 {:?}",
            rec.count("reload_allocations"),
            p(0.5),
            p(0.99)
        );
        tx.send(true).unwrap();
        run.await.unwrap();
    }
}
