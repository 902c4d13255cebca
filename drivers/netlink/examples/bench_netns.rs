//! Creates N namespaces (default 50), each with a veth plugged (root end
//! layer-2 only and up, namespace end addressed and up), first through this
//! library, then with `ip` commands in a shell loop; prints both times and
//! the ratio, and cleans up. Run as root:
//!
//! `cargo run --release -p leasehold-netlink --example bench_netns -- [N]`

use std::process::Command;
use std::time::{Duration, Instant};

use leasehold_netlink::{isolate_l2, Handle, Netns};

const ADDRESS: &str = "198.51.100.10/24";

fn names(run: &str, i: usize) -> (String, String, String) {
    let pid = std::process::id() % 1000;
    (
        format!("lhbench-{run}{pid}-{i}"),
        format!("lb{run}{pid}t{i}"),
        format!("lb{run}{pid}n{i}"),
    )
}

async fn library(n: usize) -> Result<(Duration, Duration), leasehold_netlink::Error> {
    let root = Handle::open(None).await?;
    let addr = [ADDRESS.parse().expect("a valid CIDR")];
    let start = Instant::now();
    for i in 0..n {
        let (ns, tap, inner) = names("l", i);
        Netns::ensure(&ns).await?;
        root.add_veth(&tap, &inner, Some(&ns)).await?;
        isolate_l2(None, &tap).await?;
        root.set_up(&tap).await?;
        let h = Handle::open(Some(&ns)).await?;
        h.set_up(&inner).await?;
        h.init_l3(&inner, &addr).await?;
    }
    let made = start.elapsed();
    let start = Instant::now();
    for i in 0..n {
        let (ns, _, _) = names("l", i);
        Netns::delete(&ns).await?;
    }
    Ok((made, start.elapsed()))
}

fn shell(n: usize) -> (Duration, Duration) {
    let pid = std::process::id() % 1000;
    let make = format!(
        r#"set -e
for i in $(seq 0 $(({n} - 1))); do
  ns=lhbench-s{pid}-$i; tap=lbs{pid}t$i; inner=lbs{pid}n$i
  ip netns add $ns
  ip netns exec $ns sysctl -qw net.ipv4.conf.all.promote_secondaries=1
  ip -n $ns link set lo up
  ip link add $tap type veth peer name $inner netns $ns
  echo 1 > /proc/sys/net/ipv6/conf/$tap/disable_ipv6
  echo 8 > /proc/sys/net/ipv4/conf/$tap/arp_ignore
  ip link set $tap up
  ip -n $ns link set $inner up
  ip -n $ns addr add {ADDRESS} dev $inner
done"#
    );
    let delete =
        format!("for i in $(seq 0 $(({n} - 1))); do ip netns delete lhbench-s{pid}-$i; done");
    let time = |script: &str| {
        let start = Instant::now();
        let status = Command::new("sh").arg("-c").arg(script).status();
        assert!(matches!(status, Ok(s) if s.success()), "shell loop failed");
        start.elapsed()
    };
    (time(&make), time(&delete))
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let (lib_make, lib_del) = match library(n).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("library run failed: {e}");
            for i in 0..n {
                let _ = Netns::delete(&names("l", i).0).await;
            }
            std::process::exit(1);
        }
    };
    let (sh_make, sh_del) = shell(n);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{n} namespaces, each: netns + veth (root end L2-only, up) + address + up");
    println!(
        "library : create {:8.1} ms ({:5.2} ms each), delete {:7.1} ms",
        ms(lib_make),
        ms(lib_make) / n as f64,
        ms(lib_del)
    );
    println!(
        "ip shell: create {:8.1} ms ({:5.2} ms each), delete {:7.1} ms",
        ms(sh_make),
        ms(sh_make) / n as f64,
        ms(sh_del)
    );
    println!(
        "ratio (shell / library): create {:.2}x, delete {:.2}x",
        ms(sh_make) / ms(lib_make),
        ms(sh_del) / ms(lib_del)
    );
}
