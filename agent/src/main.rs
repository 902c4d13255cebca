//! The `leasehold-agent` binary: parses the command line and runs a command.

use std::process::ExitCode;

use clap::Parser;
use leasehold_agent::cli::{Cli, Command};
use leasehold_agent::commands::{check_config, list_drivers, render};
use leasehold_agent::device::NetlinkHost;
use leasehold_agent::logging::{self, LogSettings};
use leasehold_agent::{config, setup};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Man)) {
        // Needs no configuration: packaging runs it at build time.
        let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
        return match man.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("leasehold-agent: {e}");
                ExitCode::from(1)
            }
        };
    }
    let loaded = match setup::load(&cli.config_file) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("leasehold-agent: {e:#}");
            return ExitCode::from(1);
        }
    };
    let settings = log_settings(&loaded.options).unwrap_or_default();
    let log_control = match logging::init(cli.log_format, &settings) {
        Ok(control) => control,
        Err(e) => {
            eprintln!("leasehold-agent: {e:#}");
            return ExitCode::from(1);
        }
    };
    for notice in &loaded.notices {
        tracing::warn!("{notice}");
    }
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Drivers => {
            print!("{}", list_drivers::listing(&loaded.registry));
            Ok(())
        }
        Command::CheckConfig => check_config::report(&loaded).map(|text| print!("{text}")),
        Command::Render {
            network,
            facts,
            out,
        } => match render::run(&loaded, &network, facts.as_deref(), &out) {
            Err(e @ render::RenderError::Unusable { .. }) => {
                eprintln!("leasehold-agent: {e}");
                return ExitCode::from(2);
            }
            other => other.map_err(anyhow::Error::from),
        },
        Command::Run => run_agent(loaded, log_control),
        Command::Man => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leasehold-agent: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_agent(loaded: setup::Loaded, log_control: logging::LogControl) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking threads of a sync's burst go soon after it, with their stacks.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()?;
    runtime.block_on(leasehold_agent::run::run(
        loaded,
        std::sync::Arc::new(NetlinkHost),
        Some(log_control),
    ))
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
