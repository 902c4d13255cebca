//! One module per subcommand, and the option table docs/configuration.md holds.

pub mod check_config;
pub mod list_drivers;
pub mod option_table;
pub mod render;
