//! The RabbitMQ transport, speaking oslo.messaging's rabbit driver wire format.

pub mod envelope;
pub mod plugin_api;
pub mod pyjson;
pub mod session;
pub mod topology;
pub mod url;

pub use plugin_api::RabbitPluginApi;
pub use session::{LinkEvent, Rabbit, RabbitSettings};
pub use topology::QueueOptions;
