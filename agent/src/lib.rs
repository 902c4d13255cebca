//! leasehold-agent: configuration, transports, dispatch, sync and the CLI.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod device;
pub mod dispatch;
pub mod drivers;
pub mod embedded;
pub mod local;
pub mod logging;
pub mod memory;
pub mod metadata_proxy;
pub mod metrics;
pub mod notification;
pub mod queue;
pub mod rabbit;
pub mod run;
pub mod server_api;
pub mod setup;
pub mod systemd;
