//! Log setup: human lines or JSON lines; `debug`, `log_file`, `use_stderr` as Neutron operators expect.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Where and how to log.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// Log at debug level.
    pub debug: bool,
    /// Append to this file instead of standard error.
    pub file: Option<PathBuf>,
    /// With a file, also log to standard error.
    pub also_stderr: bool,
}

/// Changes the log level of the running agent (SIGHUP re-reads `debug`).
pub struct LogControl {
    set: Box<dyn Fn(EnvFilter) -> anyhow::Result<()> + Send + Sync>,
    from_env: bool,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl")
            .field("from_env", &self.from_env)
            .finish()
    }
}

impl LogControl {
    /// Switches between debug and info, unless `RUST_LOG` chose the level.
    pub fn set_debug(&self, debug: bool) -> anyhow::Result<()> {
        if self.from_env {
            return Ok(());
        }
        (self.set)(EnvFilter::new(level(debug)))
    }
}

// netlink-packet-route warns on every dump when the kernel is newer than
// the crate (IFLA_INET6_CONF grew): noise an operator cannot act on.
fn level(debug: bool) -> &'static str {
    if debug {
        "debug,netlink_packet_route=error"
    } else {
        "info,netlink_packet_route=error"
    }
}

/// The filter for `RUST_LOG` (`None`: unset): the variable as given, with
/// netlink-packet-route's noise kept out unless the variable names that
/// crate itself; unset, the level `debug` chooses.
fn filter_text(rust_log: Option<&str>, debug: bool) -> String {
    match rust_log.map(str::trim) {
        Some(text) if text.contains("netlink_packet_route") => text.to_string(),
        Some(text) if !text.is_empty() => format!("{text},netlink_packet_route=error"),
        _ => level(debug).to_string(),
    }
}

/// Installs the global subscriber; `RUST_LOG` overrides the level.
pub fn init(format: LogFormat, settings: &LogSettings) -> anyhow::Result<LogControl> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let from_env = rust_log.is_some();
    let filter = EnvFilter::try_new(filter_text(rust_log.as_deref(), settings.debug))
        .unwrap_or_else(|_| EnvFilter::new(level(settings.debug)));
    let writer = match &settings.file {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("log_file {}: {e}", path.display()))?;
            if settings.also_stderr {
                let file = Mutex::new(file);
                BoxMakeWriter::new(move || Tee(file.lock().ok().and_then(|f| f.try_clone().ok())))
            } else {
                BoxMakeWriter::new(Mutex::new(file))
            }
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let set: Box<dyn Fn(EnvFilter) -> anyhow::Result<()> + Send + Sync> = match format {
        LogFormat::Human => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder
                .try_init()
                .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
            Box::new(move |f| {
                handle
                    .reload(f)
                    .map_err(|e| anyhow::anyhow!("logging: {e}"))
            })
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            builder
                .try_init()
                .map_err(|e| anyhow::anyhow!("logging: {e}"))?;
            Box::new(move |f| {
                handle
                    .reload(f)
                    .map_err(|e| anyhow::anyhow!("logging: {e}"))
            })
        }
    };
    Ok(LogControl { set, from_env })
}

/// Writes to a file and to standard error.
struct Tee(Option<std::fs::File>);

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = &mut self.0 {
            f.write_all(buf)?;
        }
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_is_kept_with_the_netlink_noise_filtered_unless_it_asks_for_it() {
        assert_eq!(filter_text(None, false), "info,netlink_packet_route=error");
        assert_eq!(
            filter_text(Some(" "), true),
            "debug,netlink_packet_route=error"
        );
        assert_eq!(
            filter_text(Some("debug"), false),
            "debug,netlink_packet_route=error"
        );
        assert_eq!(
            filter_text(Some("info,netlink_packet_route=warn"), false),
            "info,netlink_packet_route=warn"
        );
    }
}
