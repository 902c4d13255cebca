//! The RabbitMQ transport, speaking oslo.messaging's rabbit driver wire format.

pub mod envelope;
pub mod pyjson;
