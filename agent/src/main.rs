//! The `leasehold-agent` binary: parses the command line and runs a command.

use std::process::ExitCode;

use clap::Parser;
use leasehold_agent::cli::{Cli, Command};
use leasehold_agent::commands::{check_config, list_drivers};
use leasehold_agent::logging::{self, LogSettings};
use leasehold_agent::{config, setup};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match setup::load(&cli.config_file) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("leasehold-agent: {e:#}");
            return ExitCode::from(1);
        }
    };
    let settings = log_settings(&loaded.options).unwrap_or_default();
    if let Err(e) = logging::init(cli.log_format, &settings) {
        eprintln!("leasehold-agent: {e:#}");
        return ExitCode::from(1);
    }
    for notice in &loaded.notices {
        tracing::warn!("{notice}");
    }
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Drivers => {
            print!("{}", list_drivers::listing(&loaded.registry));
            Ok(())
        }
        Command::CheckConfig => check_config::report(&loaded).map(|text| print!("{text}")),
        Command::Render { .. } => Err(anyhow::anyhow!("render: not built yet")),
        Command::Run => leasehold_agent_run(&loaded),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leasehold-agent: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn leasehold_agent_run(loaded: &setup::Loaded) -> anyhow::Result<()> {
    let _dhcp = loaded.dhcp_driver()?;
    let _interface = loaded.interface_driver()?;
    anyhow::bail!("running the agent is not implemented yet (see issue 5); use `check-config`, `drivers` or `render`")
}

fn log_settings(options: &leasehold_core::options::Options) -> anyhow::Result<LogSettings> {
    let dir = config::path_option(options, "DEFAULT", "log_dir")?;
    let file = config::path_option(options, "DEFAULT", "log_file")?.map(|f| match &dir {
        Some(d) if f.is_relative() => d.join(f),
        _ => f,
    });
    Ok(LogSettings {
        debug: options.flag("DEFAULT", "debug")?,
        also_stderr: options.flag("DEFAULT", "use_stderr")?,
        file,
    })
}
