//! What the figures were measured on.

use std::process::Command;

fn first_line(cmd: &[&str]) -> String {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// One markdown paragraph: CPUs, memory, kernel, dnsmasq, CPU model.
pub fn describe() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        "Machine: {} CPU ({model}), {:.1} GiB memory, kernel {}, {}, {}.",
        first_line(&["nproc"]),
        mem_kb as f64 / 1024.0 / 1024.0,
        first_line(&["uname", "-r"]),
        first_line(&["dnsmasq", "--version"]),
        first_line(&["ovs-vsctl", "--version"]),
    )
}
