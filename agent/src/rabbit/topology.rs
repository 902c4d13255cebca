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
    /// `rabbit_quorum_queue`: topic queues are quorum queues (so durable, and
    /// so is their exchange).
    pub quorum: bool,
    /// `rabbit_transient_quorum_queue`: reply and fanout queues are quorum
    /// queues (so durable, and so is the fanout exchange).
    pub transient_quorum: bool,
    /// Limits given to every quorum queue declared.
    pub quorum_limits: QuorumLimits,
}

/// The arguments oslo.messaging gives quorum queues; 0 means "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuorumLimits {
    /// `rabbit_quorum_delivery_limit` (`x-delivery-limit`).
    pub delivery_limit: i64,
    /// `rabbit_quorum_max_memory_length` (`x-max-in-memory-length`).
    pub max_memory_length: i64,
    /// `rabbit_quorum_max_memory_bytes` (`x-max-in-memory-bytes`).
    pub max_memory_bytes: i64,
}

impl Default for QueueOptions {
    /// oslo.messaging's defaults.
    fn default() -> Self {
        QueueOptions {
            durable: false,
            auto_delete: false,
            transient_ttl: 1800,
            quorum: false,
            transient_quorum: false,
            quorum_limits: QuorumLimits::default(),
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
            quorum: o.flag(SECTION, "rabbit_quorum_queue")?,
            transient_quorum: o.flag(SECTION, "rabbit_transient_quorum_queue")?,
            quorum_limits: QuorumLimits {
                delivery_limit: o
                    .get_int(SECTION, "rabbit_quorum_delivery_limit")?
                    .unwrap_or(0),
                max_memory_length: o
                    .get_int(SECTION, "rabbit_quorum_max_memory_length")?
                    .unwrap_or(0),
                max_memory_bytes: o
                    .get_int(SECTION, "rabbit_quorum_max_memory_bytes")?
                    .unwrap_or(0),
            },
        })
    }

    /// Whether topic queues and the control exchange are durable: quorum
    /// queues always are, so oslo makes `rabbit_quorum_queue` imply it.
    pub fn topic_durable(&self) -> bool {
        self.durable || self.quorum
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
///
/// Topic queues: durable with `amqp_durable_queues` or `rabbit_quorum_queue`,
/// quorum arguments with the latter, never an expiry. Reply and fanout
/// queues: durable and quorum with `rabbit_transient_quorum_queue`, expiring
/// after `rabbit_transient_queues_ttl`. The fanout exchange is durable with
/// `rabbit_transient_quorum_queue` (neutron-server declares it so when it
/// sends a fanout).
pub fn declarations(o: &QueueOptions, n: &Names<'_>) -> Vec<Declaration> {
    let mut out = vec![Declaration::Exchange {
        name: n.control_exchange.to_string(),
        kind: ExchangeType::Topic,
        durable: o.topic_durable(),
        auto_delete: o.auto_delete,
    }];
    for queue in [n.topic.to_string(), format!("{}.{}", n.topic, n.host)] {
        out.push(Declaration::Queue {
            name: queue.clone(),
            role: QueueRole::Topic,
            durable: o.topic_durable(),
            auto_delete: o.auto_delete,
            arguments: if o.quorum {
                quorum_arguments(&o.quorum_limits)
            } else {
                Vec::new()
            },
            bind: Some((n.control_exchange.to_string(), queue)),
        });
    }
    let fanout_exchange = format!("{}_fanout", n.topic);
    out.push(Declaration::Exchange {
        name: fanout_exchange.clone(),
        kind: ExchangeType::Fanout,
        durable: o.transient_quorum,
        auto_delete: true,
    });
    for (queue, bind) in [
        (n.fanout_queue, Some((fanout_exchange, n.topic.to_string()))),
        (n.reply_queue, None),
    ] {
        out.push(Declaration::Queue {
            name: queue.to_string(),
            role: QueueRole::Transient,
            durable: o.transient_quorum,
            auto_delete: false,
            arguments: transient_arguments(o),
            bind,
        });
    }
    out
}

fn quorum_arguments(limits: &QuorumLimits) -> Vec<(&'static str, Arg)> {
    let mut args = vec![("x-queue-type", Arg::Str("quorum"))];
    for (key, value) in [
        ("x-delivery-limit", limits.delivery_limit),
        ("x-max-in-memory-length", limits.max_memory_length),
        ("x-max-in-memory-bytes", limits.max_memory_bytes),
    ] {
        if value != 0 {
            args.push((key, Arg::Int(value)));
        }
    }
    args
}

fn transient_arguments(o: &QueueOptions) -> Vec<(&'static str, Arg)> {
    let mut args = if o.transient_quorum {
        quorum_arguments(&o.quorum_limits)
    } else {
        Vec::new()
    };
    // 0 is "no expiry" in oslo.messaging: no x-expires at all.
    if o.transient_ttl > 0 {
        args.push(("x-expires", Arg::Int(i64::from(o.transient_ttl) * 1000)));
    }
    args
}

/// Explains a broker's refusal of `declaration` (a `PRECONDITION_FAILED`
/// text such as `inequivalent arg 'x-queue-type' for queue 'dhcp_agent' …`)
/// by the options that decide what was refused, with their values here.
/// `None` when no option of ours decides it.
///
/// Such a refusal means the queue or exchange already exists, declared by
/// another process (the agent's predecessor, neutron-server, another agent)
/// with other settings; retrying cannot help until one side changes.
pub fn explain_refusal(
    declaration: &Declaration,
    o: &QueueOptions,
    broker: &str,
) -> Option<String> {
    use QueueRole::{Topic, Transient};
    let property = if let Some(rest) = broker.split("inequivalent arg '").nth(1) {
        rest.split('\'').next().unwrap_or("")
    } else if broker.contains("invalid property 'auto-delete'") {
        "auto-delete quorum"
    } else {
        return None;
    };
    let exchange_kind = match declaration {
        Declaration::Exchange { kind, .. } => Some(*kind),
        Declaration::Queue { .. } => None,
    };
    let role = match declaration {
        Declaration::Queue { role, .. } => Some(*role),
        Declaration::Exchange { .. } => None,
    };
    let limits = &o.quorum_limits;
    let decided_by: Vec<(&str, String)> = match (property, exchange_kind, role) {
        ("durable", Some(ExchangeType::Topic), _) | ("durable", _, Some(Topic)) => vec![
            ("amqp_durable_queues", o.durable.to_string()),
            ("rabbit_quorum_queue", o.quorum.to_string()),
        ],
        ("x-queue-type", _, Some(Topic)) => vec![("rabbit_quorum_queue", o.quorum.to_string())],
        ("auto_delete", _, _) => vec![("amqp_auto_delete", o.auto_delete.to_string())],
        ("auto-delete quorum", _, _) => vec![
            ("amqp_auto_delete", o.auto_delete.to_string()),
            ("rabbit_quorum_queue", o.quorum.to_string()),
        ],
        ("durable", Some(ExchangeType::Fanout), _)
        | ("durable", _, Some(Transient))
        | ("x-queue-type", _, Some(Transient)) => vec![(
            "rabbit_transient_quorum_queue",
            o.transient_quorum.to_string(),
        )],
        ("x-expires", _, Some(Transient)) => {
            vec![("rabbit_transient_queues_ttl", o.transient_ttl.to_string())]
        }
        ("x-delivery-limit", _, Some(_)) => vec![(
            "rabbit_quorum_delivery_limit",
            limits.delivery_limit.to_string(),
        )],
        ("x-max-in-memory-length", _, Some(_)) => vec![(
            "rabbit_quorum_max_memory_length",
            limits.max_memory_length.to_string(),
        )],
        ("x-max-in-memory-bytes", _, Some(_)) => vec![(
            "rabbit_quorum_max_memory_bytes",
            limits.max_memory_bytes.to_string(),
        )],
        _ => return None,
    };
    let options = decided_by
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let advice =
        if property == "auto-delete quorum" {
            "RabbitMQ has no auto-delete quorum queues: turn one of them off".to_string()
        } else {
            format!(
            "it exists with other settings, declared by another process (the DHCP agent this one \
             replaces, neutron-server or another agent): give these options the values the \
             rest of the deployment uses, or delete the {}",
            if exchange_kind.is_some() { "exchange" } else { "queue" }
        )
        };
    // The broker's own words, without lapin's prefixes.
    let said = broker
        .find("PRECONDITION_FAILED")
        .map_or(broker, |start| &broker[start..]);
    Some(format!(
        "RabbitMQ refuses {} as this agent declares it ([{SECTION}] {options}): {advice}. \
         The broker said: {said}",
        declaration.describe()
    ))
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

    fn quorum() -> QueueOptions {
        QueueOptions {
            quorum: true,
            ..Default::default()
        }
    }

    #[test]
    fn quorum_makes_topic_queues_quorum_and_durable_with_their_exchange() {
        let d = declarations(&quorum(), &names());
        assert!(matches!(
            d[0],
            Declaration::Exchange {
                durable: true,
                auto_delete: false,
                ..
            }
        ));
        for topic in ["dhcp_agent", "dhcp_agent.node-1"] {
            assert_eq!(
                queue(&d, topic),
                (
                    &QueueRole::Topic,
                    true,
                    false,
                    &[("x-queue-type", Arg::Str("quorum"))][..]
                )
            );
        }
        // Reply and fanout queues are rabbit_transient_quorum_queue's business.
        assert!(matches!(d[3], Declaration::Exchange { durable: false, .. }));
        assert_eq!(
            queue(&d, "reply_def"),
            (
                &QueueRole::Transient,
                false,
                false,
                &[("x-expires", Arg::Int(1_800_000))][..]
            )
        );
    }

    #[test]
    fn transient_quorum_makes_reply_and_fanout_queues_quorum_and_the_fanout_exchange_durable() {
        let o = QueueOptions {
            transient_quorum: true,
            quorum_limits: QuorumLimits {
                delivery_limit: 5,
                max_memory_length: 0,
                max_memory_bytes: 5_000_000_000,
            },
            ..Default::default()
        };
        let d = declarations(&o, &names());
        assert!(matches!(d[0], Declaration::Exchange { durable: false, .. }));
        assert!(queue(&d, "dhcp_agent").3.is_empty());
        assert!(matches!(
            d[3],
            Declaration::Exchange {
                durable: true,
                auto_delete: true,
                ..
            }
        ));
        for transient in ["dhcp_agent_fanout_abc", "reply_def"] {
            assert_eq!(
                queue(&d, transient),
                (
                    &QueueRole::Transient,
                    true,
                    false,
                    &[
                        ("x-queue-type", Arg::Str("quorum")),
                        ("x-delivery-limit", Arg::Int(5)),
                        ("x-max-in-memory-bytes", Arg::Int(5_000_000_000)),
                        ("x-expires", Arg::Int(1_800_000)),
                    ][..]
                )
            );
        }
    }

    #[test]
    fn quorum_limits_go_to_quorum_queues_only() {
        let mut o = quorum();
        o.quorum_limits.max_memory_length = 10;
        let d = declarations(&o, &names());
        assert_eq!(
            queue(&d, "dhcp_agent").3,
            &[
                ("x-queue-type", Arg::Str("quorum")),
                ("x-max-in-memory-length", Arg::Int(10))
            ]
        );
        o.quorum = false;
        let d = declarations(&o, &names());
        assert!(queue(&d, "dhcp_agent").3.is_empty());
    }

    #[test]
    fn refusals_name_the_options_that_decide_them() {
        let o = QueueOptions::default();
        let d = declarations(&o, &names());
        let (exchange, topic, fanout_exchange, reply) = (&d[0], &d[2], &d[3], &d[5]);
        let broker = "protocol error: PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'dhcp_agent.node-1' in vhost 'v': received none but current is the value 'quorum' of type 'longstr'";
        let why = explain_refusal(topic, &o, broker).unwrap();
        assert!(why.contains("queue 'dhcp_agent.node-1'"), "{why}");
        assert!(
            why.contains("[oslo_messaging_rabbit] rabbit_quorum_queue = false"),
            "{why}"
        );
        assert!(why.ends_with(&broker["protocol error: ".len()..]), "{why}");

        let durable = "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'neutron' in vhost 'v': received 'false' but current is 'true'";
        let why = explain_refusal(exchange, &o, durable).unwrap();
        assert!(
            why.contains("amqp_durable_queues = false, rabbit_quorum_queue = false"),
            "{why}"
        );
        assert!(why.contains("delete the exchange"), "{why}");
        let why = explain_refusal(fanout_exchange, &o, durable).unwrap();
        assert!(
            why.contains("rabbit_transient_quorum_queue = false"),
            "{why}"
        );
        let why = explain_refusal(
            reply,
            &o,
            "inequivalent arg 'x-queue-type' for queue 'reply_def'",
        )
        .unwrap();
        assert!(
            why.contains("rabbit_transient_quorum_queue = false"),
            "{why}"
        );
        let why = explain_refusal(
            reply,
            &o,
            "inequivalent arg 'x-expires' for queue 'reply_def'",
        )
        .unwrap();
        assert!(why.contains("rabbit_transient_queues_ttl = 1800"), "{why}");
        let why = explain_refusal(
            topic,
            &o,
            "inequivalent arg 'x-delivery-limit' for queue 'dhcp_agent'",
        )
        .unwrap();
        assert!(why.contains("rabbit_quorum_delivery_limit = 0"), "{why}");
        let why = explain_refusal(
            topic,
            &o,
            "inequivalent arg 'auto_delete' for queue 'dhcp_agent'",
        )
        .unwrap();
        assert!(why.contains("amqp_auto_delete = false"), "{why}");
        let both = QueueOptions {
            auto_delete: true,
            ..quorum()
        };
        let why = explain_refusal(
            topic,
            &both,
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'dhcp_agent'",
        )
        .unwrap();
        assert!(
            why.contains("amqp_auto_delete = true, rabbit_quorum_queue = true"),
            "{why}"
        );
        assert!(why.contains("no auto-delete quorum queues"), "{why}");

        // Anything else is not ours to explain.
        assert_eq!(
            explain_refusal(
                topic,
                &o,
                "ACCESS_REFUSED - access to queue 'dhcp_agent' refused"
            ),
            None
        );
        assert_eq!(
            explain_refusal(
                exchange,
                &o,
                "inequivalent arg 'type' for exchange 'neutron'"
            ),
            None
        );
    }

    #[test]
    fn quorum_options_are_read_from_the_configuration() {
        let mut o = Options::new();
        o.declare(crate::config::AGENT_OPTIONS);
        let at = leasehold_core::options::Origin::Default;
        for (name, value) in [
            ("rabbit_quorum_queue", "true"),
            ("rabbit_transient_quorum_queue", "yes"),
            ("rabbit_quorum_delivery_limit", "3"),
            ("rabbit_quorum_max_memory_length", "4"),
            ("rabbit_quorum_max_memory_bytes", "5000000000"),
        ] {
            o.set(SECTION, name, value, at.clone());
        }
        let q = QueueOptions::from_options(&o).unwrap();
        assert!(q.quorum && q.transient_quorum && q.topic_durable() && !q.durable);
        assert_eq!(
            q.quorum_limits,
            QuorumLimits {
                delivery_limit: 3,
                max_memory_length: 4,
                max_memory_bytes: 5_000_000_000
            }
        );
    }
}
