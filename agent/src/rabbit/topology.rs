//! The exchanges and queues the agent declares, with the flags and arguments
//! oslo.messaging's rabbit driver gives them for the same options.
//!
//! Kept apart from the AMQP calls so what is declared can be checked without
//! a broker: RabbitMQ refuses to declare an existing queue or exchange with
//! other flags or arguments, so these must be exactly oslo's.

use leasehold_core::options::{BadValue, Options};

/// `[oslo_messaging_rabbit]` options that decide how queues and exchanges are declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// `amqp_durable_queues`: topic queues and their exchange survive a broker restart.
    pub durable: bool,
    /// `amqp_auto_delete`: topic queues and their exchange go with their last consumer.
    pub auto_delete: bool,
    /// `rabbit_transient_queues_ttl`, seconds an unused reply or fanout queue
    /// lives (`x-expires`); 0 means no expiry.
    pub transient_ttl: u32,
}

impl Default for QueueOptions {
    /// oslo.messaging's defaults.
    fn default() -> Self {
        QueueOptions {
            durable: false,
            auto_delete: false,
            transient_ttl: 1800,
        }
    }
}

const SECTION: &str = "oslo_messaging_rabbit";

impl QueueOptions {
    /// Reads them from the resolved configuration.
    pub fn from_options(o: &Options) -> Result<Self, BadValue> {
        let d = QueueOptions::default();
        Ok(QueueOptions {
            durable: o.flag(SECTION, "amqp_durable_queues")?,
            auto_delete: o.flag(SECTION, "amqp_auto_delete")?,
            transient_ttl: o
                .get_int(SECTION, "rabbit_transient_queues_ttl")?
                .map_or(d.transient_ttl, |v| v.clamp(0, u32::MAX as i64) as u32),
        })
    }
}

/// An exchange's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    /// `topic`: the control exchange.
    Topic,
    /// `fanout`: `<topic>_fanout`.
    Fanout,
}

/// A queue or exchange argument value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A number (sent as a 32-bit integer when it fits, as py-amqp does).
    Int(i64),
    /// A string.
    Str(&'static str),
}

/// What a queue is for, which decides the options that govern it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    /// `dhcp_agent` or `dhcp_agent.<host>`, shared with the agent's predecessors.
    Topic,
    /// This process's fanout or reply queue (a fresh random name each start).
    Transient,
}

/// One declaration, in the order they are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declaration {
    /// `exchange.declare`.
    Exchange {
        /// Name.
        name: String,
        /// Type.
        kind: ExchangeType,
        /// Durable flag.
        durable: bool,
        /// Auto-delete flag.
        auto_delete: bool,
    },
    /// `queue.declare`, then `queue.bind` when `bind` is set.
    Queue {
        /// Name.
        name: String,
        /// What it is for.
        role: QueueRole,
        /// Durable flag.
        durable: bool,
        /// Auto-delete flag.
        auto_delete: bool,
        /// `x-…` arguments, in declaration order.
        arguments: Vec<(&'static str, Arg)>,
        /// Exchange and routing key to bind it with.
        bind: Option<(String, String)>,
    },
}

impl Declaration {
    /// `exchange 'name'` or `queue 'name'`, as RabbitMQ names it in errors.
    pub fn describe(&self) -> String {
        match self {
            Declaration::Exchange { name, .. } => format!("exchange '{name}'"),
            Declaration::Queue { name, .. } => format!("queue '{name}'"),
        }
    }
}

/// Names of the queues a DHCP agent consumes from.
#[derive(Debug, Clone)]
pub struct Names<'a> {
    /// The control exchange (`neutron`).
    pub control_exchange: &'a str,
    /// The RPC topic (`dhcp_agent`).
    pub topic: &'a str,
    /// This agent's host.
    pub host: &'a str,
    /// `<topic>_fanout_<uuid>`.
    pub fanout_queue: &'a str,
    /// `reply_<uuid>`.
    pub reply_queue: &'a str,
}

/// Everything the agent declares, as oslo.messaging's driver declares it for
/// an RPC server on `topic` and `host` plus a reply queue.
pub fn declarations(o: &QueueOptions, n: &Names<'_>) -> Vec<Declaration> {
    let mut out = vec![Declaration::Exchange {
        name: n.control_exchange.to_string(),
        kind: ExchangeType::Topic,
        durable: o.durable,
        auto_delete: o.auto_delete,
    }];
    for queue in [n.topic.to_string(), format!("{}.{}", n.topic, n.host)] {
        out.push(Declaration::Queue {
            name: queue.clone(),
            role: QueueRole::Topic,
            durable: o.durable,
            auto_delete: o.auto_delete,
            arguments: Vec::new(),
            bind: Some((n.control_exchange.to_string(), queue)),
        });
    }
    let fanout_exchange = format!("{}_fanout", n.topic);
    out.push(Declaration::Exchange {
        name: fanout_exchange.clone(),
        kind: ExchangeType::Fanout,
        durable: false,
        auto_delete: true,
    });
    for (queue, bind) in [
        (n.fanout_queue, Some((fanout_exchange, n.topic.to_string()))),
        (n.reply_queue, None),
    ] {
        out.push(Declaration::Queue {
            name: queue.to_string(),
            role: QueueRole::Transient,
            durable: false,
            auto_delete: false,
            arguments: transient_arguments(o),
            bind,
        });
    }
    out
}

fn transient_arguments(o: &QueueOptions) -> Vec<(&'static str, Arg)> {
    let mut args = Vec::new();
    // 0 is "no expiry" in oslo.messaging: no x-expires at all.
    if o.transient_ttl > 0 {
        args.push(("x-expires", Arg::Int(i64::from(o.transient_ttl) * 1000)));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names<'static> {
        Names {
            control_exchange: "neutron",
            topic: "dhcp_agent",
            host: "node-1",
            fanout_queue: "dhcp_agent_fanout_abc",
            reply_queue: "reply_def",
        }
    }

    fn queue<'a>(
        d: &'a [Declaration],
        wanted: &str,
    ) -> (&'a QueueRole, bool, bool, &'a [(&'static str, Arg)]) {
        d.iter()
            .find_map(|d| match d {
                Declaration::Queue {
                    name,
                    role,
                    durable,
                    auto_delete,
                    arguments,
                    ..
                } if name == wanted => Some((role, *durable, *auto_delete, arguments.as_slice())),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no queue {wanted}"))
    }

    #[test]
    fn defaults_are_oslos_classic_queues() {
        let d = declarations(&QueueOptions::default(), &names());
        let described: Vec<String> = d.iter().map(Declaration::describe).collect();
        assert_eq!(
            described,
            [
                "exchange 'neutron'",
                "queue 'dhcp_agent'",
                "queue 'dhcp_agent.node-1'",
                "exchange 'dhcp_agent_fanout'",
                "queue 'dhcp_agent_fanout_abc'",
                "queue 'reply_def'",
            ]
        );
        for topic in ["dhcp_agent", "dhcp_agent.node-1"] {
            assert_eq!(queue(&d, topic), (&QueueRole::Topic, false, false, &[][..]));
        }
        for transient in ["dhcp_agent_fanout_abc", "reply_def"] {
            assert_eq!(
                queue(&d, transient),
                (
                    &QueueRole::Transient,
                    false,
                    false,
                    &[("x-expires", Arg::Int(1_800_000))][..]
                )
            );
        }
    }

    #[test]
    fn transient_ttl_zero_means_no_expiry() {
        let o = QueueOptions {
            transient_ttl: 0,
            ..Default::default()
        };
        let d = declarations(&o, &names());
        for transient in ["dhcp_agent_fanout_abc", "reply_def"] {
            assert!(queue(&d, transient).3.is_empty(), "{transient}: {d:?}");
        }
        let o = QueueOptions {
            transient_ttl: 1,
            ..Default::default()
        };
        let d = declarations(&o, &names());
        assert_eq!(queue(&d, "reply_def").3, &[("x-expires", Arg::Int(1000))]);
    }

    #[test]
    fn durable_and_auto_delete_apply_to_topic_queues_and_their_exchange() {
        let o = QueueOptions {
            durable: true,
            auto_delete: true,
            ..Default::default()
        };
        let d = declarations(&o, &names());
        assert_eq!(
            d[0],
            Declaration::Exchange {
                name: "neutron".into(),
                kind: ExchangeType::Topic,
                durable: true,
                auto_delete: true
            }
        );
        let (_, durable, auto_delete, _) = queue(&d, "dhcp_agent.node-1");
        assert!(durable && auto_delete);
        // The fanout exchange and the transient queues do not follow them.
        assert_eq!(
            d[3],
            Declaration::Exchange {
                name: "dhcp_agent_fanout".into(),
                kind: ExchangeType::Fanout,
                durable: false,
                auto_delete: true
            }
        );
        assert!(!queue(&d, "reply_def").1);
    }

    #[test]
    fn options_are_read_from_the_configuration() {
        let mut o = Options::new();
        o.declare(crate::config::AGENT_OPTIONS);
        assert_eq!(
            QueueOptions::from_options(&o).unwrap(),
            QueueOptions::default()
        );
        let at = leasehold_core::options::Origin::Default;
        o.set(SECTION, "rabbit_transient_queues_ttl", "0", at.clone());
        o.set(SECTION, "amqp_durable_queues", "true", at);
        let q = QueueOptions::from_options(&o).unwrap();
        assert_eq!(
            (q.transient_ttl, q.durable, q.auto_delete),
            (0, true, false)
        );
    }
}
