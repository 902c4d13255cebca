//! One agent's link to RabbitMQ: topology, calls with replies, consumers, reconnects.
//!
//! lapin's own recovery is left off; a supervisor task connects, declares
//! the exchanges and queues oslo.messaging's rabbit driver declares for a
//! DHCP agent, consumes, and on any connection error starts again with
//! backoff (1 s doubling to 30 s, brokers in turn). After a reconnect it
//! tells the agent, which resyncs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use leasehold_core::options::{BadValue, Options};

use super::envelope::{self, CallIds, Context, Reply};
use super::topology::{self, Arg, Declaration, ExchangeType, Names, QueueOptions};
use super::url::TransportUrl;
use crate::notification::{self, Event};
use crate::server_api::RpcError;

/// The agent's RPC topic.
pub const AGENT_TOPIC: &str = "dhcp_agent";

/// What the transport needs from the configuration.
#[derive(Debug, Clone)]
pub struct RabbitSettings {
    /// Brokers and vhost.
    pub url: TransportUrl,
    /// This agent's host (queue `dhcp_agent.<host>`).
    pub host: String,
    /// Exchange of neutron's topics (`neutron`).
    pub control_exchange: String,
    /// Default call timeout (`rpc_response_timeout`).
    pub rpc_timeout: Duration,
    /// How queues and exchanges are declared.
    pub queues: QueueOptions,
    /// `heartbeat_timeout_threshold`, seconds.
    pub heartbeat: u16,
}

impl RabbitSettings {
    /// The settings of a `rabbit://` transport from the resolved configuration.
    pub fn from_options(url: TransportUrl, host: String, o: &Options) -> Result<Self, BadValue> {
        let seconds = |name: &str, default: i64| -> Result<Duration, BadValue> {
            Ok(Duration::from_secs(
                o.get_int("DEFAULT", name)?.unwrap_or(default).max(0) as u64,
            ))
        };
        Ok(RabbitSettings {
            url,
            host,
            control_exchange: o.str_or("DEFAULT", "control_exchange", "neutron")?,
            rpc_timeout: seconds("rpc_response_timeout", 60)?,
            queues: QueueOptions::from_options(o)?,
            heartbeat: o
                .get_int("oslo_messaging_rabbit", "heartbeat_timeout_threshold")?
                .unwrap_or(60)
                .clamp(0, u16::MAX as i64) as u16,
        })
    }
}

/// Transport-level happenings the agent acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected for the first time.
    Connected,
    /// Connected again after a loss: resync.
    Reconnected,
    /// The broker refuses a queue or exchange as the configuration declares
    /// it (it exists with other settings); the text names the options that
    /// decide it. The transport keeps retrying.
    Refused(String),
}

/// Why a session could not be set up.
#[derive(Debug)]
enum SessionError {
    /// Connection, channel or protocol failure.
    Amqp(lapin::Error),
    /// A declaration refused for settings an option decides (see [`LinkEvent::Refused`]).
    Refused(String),
}

impl From<lapin::Error> for SessionError {
    fn from(e: lapin::Error) -> Self {
        SessionError::Amqp(e)
    }
}

/// The largest AMQP frame we accept (RabbitMQ offers 128 KiB, as py-amqp
/// takes). lapin keeps a send and a receive ring of 32 frames each for the
/// connection's life, 8 MiB at 128 KiB, all of it resident once a large
/// reply (a thousand networks' `get_active_networks_info`) has passed
/// through; at 32 KiB they cost 2 MiB. Larger messages are only split into
/// more frames: the message bytes are the same.
const FRAME_MAX: u32 = 32 * 1024;

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// A running RabbitMQ transport.
#[derive(Debug, Clone)]
pub struct Rabbit {
    settings: Arc<RabbitSettings>,
    reply_q: Arc<str>,
    pending: Pending,
    publisher: watch::Receiver<Option<Channel>>,
}

impl Rabbit {
    /// Starts the supervisor; notifications go to `events`, link changes to `links`.
    pub fn start(
        settings: RabbitSettings,
        events: mpsc::Sender<Event>,
        links: mpsc::Sender<LinkEvent>,
        shutdown: watch::Receiver<bool>,
    ) -> Rabbit {
        let (publisher_tx, publisher) = watch::channel(None);
        let rabbit = Rabbit {
            settings: Arc::new(settings),
            reply_q: format!("reply_{}", envelope::new_hex_id()).into(),
            pending: Arc::default(),
            publisher,
        };
        let supervisor = Supervisor {
            rabbit: rabbit.clone(),
            publisher_tx,
            events,
            links,
            shutdown,
            fanout_q: format!("{AGENT_TOPIC}_fanout_{}", envelope::new_hex_id()),
        };
        tokio::spawn(supervisor.run());
        rabbit
    }

    /// Calls `method` on `topic` and waits for the reply.
    pub async fn call(
        &self,
        topic: &str,
        method: &str,
        args: Value,
        version: &str,
        timeout: Option<Duration>,
    ) -> Result<Box<RawValue>, RpcError> {
        let timeout = timeout.unwrap_or(self.settings.rpc_timeout);
        let transport = |message: String| RpcError::Transport {
            method: method.into(),
            message,
        };
        let channel = self
            .wait_for_channel(timeout)
            .await
            .ok_or_else(|| RpcError::Timeout {
                method: method.into(),
                seconds: timeout.as_secs(),
            })?;
        let ids = CallIds {
            msg_id: envelope::new_hex_id(),
            reply_q: self.reply_q.to_string(),
        };
        let body = envelope::encode_request(
            method,
            args,
            Some(version),
            Some(&ids),
            &envelope::new_hex_id(),
            &Context::new_admin(),
        );
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(ids.msg_id.clone(), tx);
        let props = properties().with_expiration(timeout.as_millis().to_string().into());
        let published = async {
            channel
                .basic_publish(
                    self.settings.control_exchange.as_str().into(),
                    topic.into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await?
                .await
        }
        .await;
        let outcome = match published {
            Ok(confirm) if confirm.is_nack() => Err(transport("broker refused the message".into())),
            Ok(_) => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => reply.outcome.map_err(|f| f.into_rpc_error(method)),
                Ok(Err(_)) => Err(transport("connection lost while waiting".into())),
                Err(_) => Err(RpcError::Timeout {
                    method: method.into(),
                    seconds: timeout.as_secs(),
                }),
            },
            Err(e) => Err(transport(e.to_string())),
        };
        self.lock_pending().remove(&ids.msg_id);
        outcome
    }

    async fn wait_for_channel(&self, timeout: Duration) -> Option<Channel> {
        let mut rx = self.publisher.clone();
        let found = tokio::time::timeout(
            timeout,
            rx.wait_for(|c| c.as_ref().is_some_and(|c| c.status().connected())),
        )
        .await;
        match found {
            Ok(Ok(channel)) => channel.clone(),
            _ => None,
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Reply>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The properties oslo (kombu) gives every message.
fn properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_headers(FieldTable::default())
        .with_delivery_mode(2)
        .with_priority(0)
}

struct Supervisor {
    rabbit: Rabbit,
    publisher_tx: watch::Sender<Option<Channel>>,
    events: mpsc::Sender<Event>,
    links: mpsc::Sender<LinkEvent>,
    shutdown: watch::Receiver<bool>,
    fanout_q: String,
}

impl Supervisor {
    async fn run(mut self) {
        let mut attempt = 0usize;
        let mut connected_before = false;
        let mut backoff = Duration::from_secs(1);
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let uri = self.rabbit.settings.url.amqp_uri(attempt);
            let broker = format!(
                "{:?}",
                self.rabbit.settings.url.brokers[attempt % self.rabbit.settings.url.brokers.len()]
            );
            match self.session(&uri).await {
                Ok((connection, lost)) => {
                    tracing::info!(broker, "connected to RabbitMQ");
                    backoff = Duration::from_secs(1);
                    let event = if connected_before {
                        LinkEvent::Reconnected
                    } else {
                        LinkEvent::Connected
                    };
                    connected_before = true;
                    let _ = self.links.send(event).await;
                    tokio::select! {
                        reason = lost => tracing::warn!(broker, "RabbitMQ connection lost: {}", reason.unwrap_or_else(|_| "connection dropped".into())),
                        _ = self.shutdown.changed() => {
                            let _ = connection.close(200, "agent stopping".into()).await;
                            return;
                        }
                    }
                    self.publisher_tx.send_replace(None);
                    // Callers waiting for replies on the lost connection fail at once.
                    self.rabbit.lock_pending().clear();
                }
                Err(SessionError::Amqp(e)) => tracing::warn!(
                    broker,
                    "cannot connect to RabbitMQ: {e}; retrying in {} s",
                    backoff.as_secs()
                ),
                Err(SessionError::Refused(why)) => {
                    tracing::error!(broker, "{why}; retrying in {} s", backoff.as_secs());
                    // Never block the supervisor on a reader that is busy elsewhere.
                    let _ = self.links.try_send(LinkEvent::Refused(why));
                }
            }
            attempt += 1;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// Connects and sets everything up; the future resolves when the connection is lost.
    async fn session(
        &self,
        uri: &str,
    ) -> Result<(Connection, oneshot::Receiver<String>), SessionError> {
        let s = &self.rabbit.settings;
        let uri = format!("{uri}?heartbeat={}&frame_max={FRAME_MAX}", s.heartbeat);
        let name = format!(
            "leasehold-agent:{}:{}",
            std::process::id(),
            envelope::new_hex_id()
        );
        let connection = Connection::connect(
            &uri,
            ConnectionProperties::default().with_connection_name(name.into()),
        )
        .await?;
        let (lost_tx, lost_rx) = oneshot::channel();
        let mut listener = Box::pin(connection.events_listener());
        tokio::spawn(async move {
            while let Some(event) = listener.next().await {
                if let lapin::Event::Error(e) = event {
                    let _ = lost_tx.send(e.to_string());
                    return;
                }
            }
            let _ = lost_tx.send("connection closed".into());
        });

        match self.set_up(&connection).await {
            Ok(publish) => {
                self.publisher_tx.send_replace(Some(publish));
                Ok((connection, lost_rx))
            }
            Err(e) => {
                // Not left open for the broker to count: one per retry adds up.
                let _ = connection.close(200, "setup failed".into()).await;
                Err(e)
            }
        }
    }

    /// Declares, consumes, and returns the channel to publish on.
    async fn set_up(&self, connection: &Connection) -> Result<Channel, SessionError> {
        let s = &self.rabbit.settings;
        let publish = connection.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consume = connection.create_channel().await?;
        self.declare(&consume).await?;
        self.consume(&consume, AGENT_TOPIC, Kind::Notifications)
            .await?;
        self.consume(
            &consume,
            &format!("{AGENT_TOPIC}.{}", s.host),
            Kind::Notifications,
        )
        .await?;
        self.consume(&consume, &self.fanout_q, Kind::Notifications)
            .await?;
        self.consume(&consume, &self.rabbit.reply_q, Kind::Replies)
            .await?;
        Ok(publish)
    }

    async fn declare(&self, ch: &Channel) -> Result<(), SessionError> {
        let s = &self.rabbit.settings;
        let names = Names {
            control_exchange: &s.control_exchange,
            topic: AGENT_TOPIC,
            host: &s.host,
            fanout_queue: &self.fanout_q,
            reply_queue: &self.rabbit.reply_q,
        };
        for declaration in topology::declarations(&s.queues, &names) {
            if let Err(e) = declare_one(ch, &declaration).await {
                let text = e.to_string();
                return Err(
                    match topology::explain_refusal(&declaration, &s.queues, &text) {
                        Some(why) => SessionError::Refused(why),
                        None => SessionError::Amqp(e),
                    },
                );
            }
        }
        Ok(())
    }

    async fn consume(&self, ch: &Channel, queue: &str, kind: Kind) -> Result<(), lapin::Error> {
        let tag = format!("leasehold-{}", envelope::new_hex_id());
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let events = self.events.clone();
        let pending = self.rabbit.pending.clone();
        let queue = queue.to_string();
        tokio::spawn(async move {
            let mut seen = VecDeque::with_capacity(16);
            while let Some(Ok(delivery)) = consumer.next().await {
                // oslo acknowledges before dispatching: a message that breaks the
                // handler is not redelivered forever.
                if delivery.ack(BasicAckOptions::default()).await.is_err() {
                    continue;
                }
                match kind {
                    Kind::Replies => deliver_reply(&pending, &delivery.data),
                    Kind::Notifications => {
                        if let Some(event) = decode_notification(&queue, &delivery.data, &mut seen)
                        {
                            if events.send(event).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

/// Makes one declaration (and its binding) on the broker.
async fn declare_one(ch: &Channel, declaration: &Declaration) -> Result<(), lapin::Error> {
    match declaration {
        Declaration::Exchange {
            name,
            kind,
            durable,
            auto_delete,
        } => {
            let kind = match kind {
                ExchangeType::Topic => ExchangeKind::Topic,
                ExchangeType::Fanout => ExchangeKind::Fanout,
            };
            let options = ExchangeDeclareOptions {
                durable: *durable,
                auto_delete: *auto_delete,
                ..Default::default()
            };
            ch.exchange_declare(name.as_str().into(), kind, options, FieldTable::default())
                .await
        }
        Declaration::Queue {
            name,
            durable,
            auto_delete,
            arguments,
            bind,
            ..
        } => {
            let options = QueueDeclareOptions {
                durable: *durable,
                auto_delete: *auto_delete,
                ..Default::default()
            };
            let mut table = FieldTable::default();
            for (key, value) in arguments {
                table.insert((*key).into(), amqp_value(value));
            }
            ch.queue_declare(name.as_str().into(), options, table)
                .await?;
            if let Some((exchange, routing_key)) = bind {
                ch.queue_bind(
                    name.as_str().into(),
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            }
            Ok(())
        }
    }
}

/// An argument as py-amqp encodes it: a 32-bit integer when it fits.
fn amqp_value(arg: &Arg) -> AMQPValue {
    match *arg {
        Arg::Int(v) => match i32::try_from(v) {
            Ok(small) => AMQPValue::LongInt(small),
            Err(_) => AMQPValue::LongLongInt(v),
        },
        Arg::Str(text) => AMQPValue::LongString(text.into()),
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Notifications,
    Replies,
}

fn deliver_reply(pending: &Pending, body: &[u8]) {
    let reply = match envelope::decode_reply(body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("dropping a reply that does not decode: {e}");
            return;
        }
    };
    if !reply.ending && reply.outcome.as_ref().is_ok_and(|r| r.get() == "null") {
        return; // a call-monitor heartbeat
    }
    let waiter = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&reply.msg_id);
    match waiter {
        Some(tx) => {
            let _ = tx.send(reply);
        }
        None => tracing::debug!(
            msg_id = reply.msg_id,
            "reply for a call nobody waits for (timed out?)"
        ),
    }
}

/// Decodes one delivery; anything unusable is logged with the field and dropped.
fn decode_notification(queue: &str, body: &[u8], seen: &mut VecDeque<String>) -> Option<Event> {
    let request = match envelope::decode(body).and_then(envelope::parse_request) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(queue, "dropping a message that does not decode: {e}");
            return None;
        }
    };
    if let Some(id) = &request.unique_id {
        if seen.contains(id) {
            tracing::info!(queue, unique_id = id, "dropping a duplicate message");
            return None;
        }
        if seen.len() == 16 {
            seen.pop_front();
        }
        seen.push_back(id.clone());
    }
    if !version_compatible(&request.version) || request.namespace.is_some() {
        tracing::warn!(
            queue,
            method = request.method,
            version = request.version,
            "dropping a message for an unsupported version or namespace"
        );
        return None;
    }
    match notification::decode(&request.method, request.args) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!(queue, "dropping a message: {e}");
            None
        }
    }
}

/// The agent's endpoint is version 1.0: same major, requested minor ≤ 0.
fn version_compatible(version: &str) -> bool {
    let mut parts = version.split('.');
    parts.next() == Some("1") && parts.next().is_none_or(|m| m == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_deduplicated_and_versions_checked() {
        let ctx = Context::new_admin();
        let body = envelope::encode_request(
            "network_delete_end",
            serde_json::json!({"payload": {"network_id": "n"}}),
            Some("1.0"),
            None,
            "u1",
            &ctx,
        );
        let mut seen = VecDeque::new();
        assert!(decode_notification("q", body.as_bytes(), &mut seen).is_some());
        assert!(decode_notification("q", body.as_bytes(), &mut seen).is_none());
        let v2 = envelope::encode_request(
            "network_delete_end",
            serde_json::json!({"payload": {"network_id": "n"}}),
            Some("2.0"),
            None,
            "u2",
            &ctx,
        );
        assert!(decode_notification("q", v2.as_bytes(), &mut seen).is_none());
        assert!(decode_notification("q", b"garbage", &mut seen).is_none());
        assert!(version_compatible("1.0") && version_compatible("1") && !version_compatible("1.1"));
    }
}
