//! One module per subcommand.

pub mod check_config;
pub mod list_drivers;
pub mod render;
