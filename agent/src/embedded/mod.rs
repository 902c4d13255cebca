//! The embedded mode (`transport_url = file:///path/networks.json`): the agent
//! plays its own server from a file of networks, with no broker and no OpenStack.
//!
//! The file is re-read when it changes (checked every 250 ms) or on SIGHUP; a
//! file that does not parse or validate is refused whole and the last good
//! state keeps being served. Changes become the same notifications the real
//! server sends, through the same dispatcher.

pub mod allocate;
pub mod diff;
pub mod networks_file;
pub mod server;
pub mod vlan;
pub mod watch;

pub use server::EmbeddedServer;
