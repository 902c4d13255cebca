//! oslo.messaging's message format (envelope version 2.0) for requests and replies.
//!
//! The body of every AMQP message is `{"oslo.version": "2.0", "oslo.message":
//! "<inner JSON as a string>"}`. Requests carry `method`, `args`, `version`,
//! call ids and the caller's context as `_context_*` keys; replies carry
//! `result` or `failure`. We write the bytes the Python agent writes.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::pyjson;
use crate::server_api::RpcError;

/// The envelope version we write and accept (same major, minor ≤ 0).
pub const OSLO_VERSION: &str = "2.0";

/// The admin context the DHCP agent sends with every request, in the key
/// order neutron-dhcp-agent 29 writes (see wire sample 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `req-<uuid4>`.
    pub request_id: String,
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC.
    pub timestamp: String,
}

impl Context {
    /// A fresh admin context.
    pub fn new_admin() -> Self {
        Context {
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            timestamp: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string(),
        }
    }

    fn write(&self, m: &mut Map<String, Value>) {
        let null = || Value::Null;
        for (k, v) in [
            ("user", null()),
            ("project_id", null()),
            ("system_scope", null()),
            ("project", null()),
            ("domain", null()),
            ("user_domain", null()),
            ("project_domain", null()),
            ("is_admin", Value::Bool(true)),
            ("read_only", Value::Bool(false)),
            ("show_deleted", Value::Bool(false)),
            ("auth_token", null()),
            ("request_id", Value::String(self.request_id.clone())),
            ("global_request_id", null()),
            ("resource_uuid", null()),
            ("roles", serde_json::json!(["reader", "admin", "member"])),
            ("user_identity", Value::String("- - - - -".into())),
            ("is_admin_project", Value::Bool(true)),
            ("user_id", null()),
            ("timestamp", Value::String(self.timestamp.clone())),
            ("project_name", null()),
            ("user_name", null()),
            ("has_global_access", Value::Bool(true)),
            ("can_set_project_id", Value::Bool(true)),
        ] {
            m.insert(format!("_context_{k}"), v);
        }
    }
}

/// The ids of a call: where to reply and how to match the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallIds {
    /// `_msg_id`, uuid4 hex.
    pub msg_id: String,
    /// `_reply_q`, `reply_<uuid4hex>`.
    pub reply_q: String,
}

/// A new uuid4 as 32 hex digits, as oslo writes ids.
pub fn new_hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The AMQP body of a request: a call when `call` is given, else a cast.
pub fn encode_request(
    method: &str,
    args: Value,
    version: Option<&str>,
    call: Option<&CallIds>,
    unique_id: &str,
    context: &Context,
) -> String {
    let mut m = Map::new();
    m.insert("method".into(), Value::String(method.into()));
    m.insert("args".into(), args);
    if let Some(v) = version {
        m.insert("version".into(), Value::String(v.into()));
    }
    if let Some(c) = call {
        m.insert("_msg_id".into(), Value::String(c.msg_id.clone()));
        m.insert("_reply_q".into(), Value::String(c.reply_q.clone()));
        m.insert("_timeout".into(), Value::Null);
    }
    m.insert("_unique_id".into(), Value::String(unique_id.into()));
    context.write(&mut m);
    wrap(&Value::Object(m))
}

/// The AMQP body of a reply.
pub fn encode_reply(result: Value, failure: Option<&str>, msg_id: &str, unique_id: &str) -> String {
    let mut m = Map::new();
    m.insert("result".into(), result);
    m.insert(
        "failure".into(),
        failure.map_or(Value::Null, |f| Value::String(f.into())),
    );
    m.insert("ending".into(), Value::Bool(true));
    m.insert("_msg_id".into(), Value::String(msg_id.into()));
    m.insert("_unique_id".into(), Value::String(unique_id.into()));
    wrap(&Value::Object(m))
}

fn wrap(inner: &Value) -> String {
    let mut outer = Map::new();
    outer.insert("oslo.version".into(), Value::String(OSLO_VERSION.into()));
    outer.insert(
        "oslo.message".into(),
        Value::String(pyjson::to_string(inner)),
    );
    pyjson::to_string(&Value::Object(outer))
}

/// A body that is not a message we understand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// An envelope version we do not speak.
    #[error("unsupported oslo.version {0:?}")]
    Version(String),
    /// `oslo.message` is not a JSON object in a string.
    #[error("oslo.message: {0}")]
    Inner(String),
    /// A field has the wrong type.
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Unwraps the envelope; a dict without it is a legacy message, used as it is.
pub fn decode(body: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    match serde_json::from_str(&inner_text(body)?) {
        Ok(Value::Object(inner)) => Ok(inner),
        Ok(_) => Err(EnvelopeError::Inner("not an object".into())),
        Err(e) => Err(EnvelopeError::Inner(e.to_string())),
    }
}

/// The message inside the envelope, as JSON text; a body without the
/// envelope is its own message.
fn inner_text(body: &[u8]) -> Result<Cow<'_, str>, EnvelopeError> {
    let outer: Value =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let Value::Object(mut outer) = outer else {
        return Err(EnvelopeError::NotJson("top level is not an object".into()));
    };
    let (Some(version), Some(message)) =
        (outer.remove("oslo.version"), outer.remove("oslo.message"))
    else {
        let text = std::str::from_utf8(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        return Ok(Cow::Borrowed(text));
    };
    let version = version.as_str().unwrap_or_default();
    let mut parts = version.splitn(2, '.');
    let major = parts.next().unwrap_or_default();
    let minor: u32 = parts
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(u32::MAX);
    if major != "2" || minor > 0 {
        return Err(EnvelopeError::Version(version.to_string()));
    }
    match message {
        Value::String(text) => Ok(Cow::Owned(text)),
        _ => Err(EnvelopeError::Inner("not a string".into())),
    }
}

/// A request from the server: a cast, or a call when `msg_id` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Method name.
    pub method: String,
    /// Keyword arguments.
    pub args: Value,
    /// Requested version (`1.0` when absent).
    pub version: String,
    /// Namespace; `None` for all DHCP traffic.
    pub namespace: Option<String>,
    /// Set for calls.
    pub call: Option<CallIds>,
    /// For de-duplication.
    pub unique_id: Option<String>,
}

fn opt_str(m: &Map<String, Value>, field: &'static str) -> Result<Option<String>, EnvelopeError> {
    text_field(field, m.get(field))
}

/// A string field's text; absent and `null` are `None`, anything else an error.
fn text_field(field: &'static str, value: Option<&Value>) -> Result<Option<String>, EnvelopeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(EnvelopeError::Field {
            field,
            message: format!("expected a string, got {other}"),
        }),
    }
}

/// Reads a request; `_context_*` keys are ignored.
pub fn parse_request(m: Map<String, Value>) -> Result<Request, EnvelopeError> {
    let method = opt_str(&m, "method")?.ok_or(EnvelopeError::Field {
        field: "method",
        message: "missing".into(),
    })?;
    let args = match m.get("args") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return Err(EnvelopeError::Field {
                field: "args",
                message: format!("expected an object, got {other}"),
            })
        }
    };
    let call = match (opt_str(&m, "_msg_id")?, opt_str(&m, "_reply_q")?) {
        (Some(msg_id), Some(reply_q)) => Some(CallIds { msg_id, reply_q }),
        _ => None,
    };
    Ok(Request {
        method,
        args,
        version: opt_str(&m, "version")?.unwrap_or_else(|| "1.0".into()),
        namespace: opt_str(&m, "namespace")?,
        call,
        unique_id: opt_str(&m, "_unique_id")?,
    })
}

/// A reply to one of our calls.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Which call it answers.
    pub msg_id: String,
    /// The result as JSON text (decoded by the caller into what it
    /// expects, without a `Value` tree of a large reply in between), or the
    /// server's failure.
    pub outcome: Result<Box<RawValue>, RemoteFailure>,
    /// Whether this is the last message for the call.
    pub ending: bool,
}

/// An exception raised by the server, from the reply's `failure` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    /// Exception class name (`NetworkNotFound`).
    pub class: String,
    /// Its module.
    pub module: String,
    /// Its message.
    pub message: String,
}

impl RemoteFailure {
    /// As the error of the method called.
    pub fn into_rpc_error(self, method: &str) -> RpcError {
        RpcError::Remote {
            method: method.into(),
            exc_type: self.class,
            message: self.message,
        }
    }
}

/// A reply's keys; `result` stays text.
#[derive(serde::Deserialize)]
struct ReplyFields {
    #[serde(rename = "_msg_id")]
    msg_id: Option<Value>,
    failure: Option<Value>,
    result: Option<Box<RawValue>>,
    ending: Option<Value>,
}

/// Reads a reply (enveloped or legacy); a `failure` that does not parse is
/// kept as its text.
pub fn decode_reply(body: &[u8]) -> Result<Reply, EnvelopeError> {
    let fields: ReplyFields = serde_json::from_str(&inner_text(body)?)
        .map_err(|e| EnvelopeError::Inner(e.to_string()))?;
    let msg_id = text_field("_msg_id", fields.msg_id.as_ref())?.ok_or(EnvelopeError::Field {
        field: "_msg_id",
        message: "missing".into(),
    })?;
    let ending = fields.ending.and_then(|v| v.as_bool()).unwrap_or(true);
    let outcome = match text_field("failure", fields.failure.as_ref())? {
        None => Ok(fields.result.unwrap_or_else(null_raw)),
        Some(text) => Err(remote_failure(text)),
    };
    Ok(Reply {
        msg_id,
        outcome,
        ending,
    })
}

/// JSON `null` as raw text.
fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".into()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// The exception a `failure` string describes (oslo's serialized
/// exception: a JSON dict with class, module and message).
fn remote_failure(text: String) -> RemoteFailure {
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let field = |k: &str| {
        parsed
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if parsed.is_object() {
        RemoteFailure {
            class: field("class"),
            module: field("module"),
            message: field("message"),
        }
    } else {
        RemoteFailure {
            class: "RemoteError".into(),
            module: String::new(),
            message: text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replys_result_is_kept_as_its_text() {
        let body = encode_reply(json!([{"id": "net-1"}, 2]), None, "m1", "u1");
        let reply = decode_reply(body.as_bytes()).unwrap();
        assert_eq!(reply.msg_id, "m1");
        assert!(reply.ending);
        assert_eq!(reply.outcome.unwrap().get(), r#"[{"id": "net-1"}, 2]"#);
        // A legacy reply (no envelope) and a missing _msg_id.
        let legacy =
            decode_reply(br#"{"_msg_id": "m2", "result": null, "ending": false}"#).unwrap();
        assert!(!legacy.ending);
        assert_eq!(legacy.outcome.unwrap().get(), "null");
        let err = decode_reply(br#"{"result": 1}"#).unwrap_err();
        assert!(err.to_string().contains("_msg_id"), "{err}");
        assert!(decode_reply(b"[1, 2]").is_err());
    }

    #[test]
    fn reply_failure_is_classified_by_class_name() {
        let failure = r#"{"class": "NetworkNotFound", "module": "neutron_lib.exceptions", "message": "Network x could not be found.", "tb": [], "args": [], "kwargs": {}}"#;
        let body = encode_reply(Value::Null, Some(failure), "m1", "u1");
        let reply = decode_reply(body.as_bytes()).unwrap();
        let f = reply.outcome.unwrap_err();
        assert_eq!(f.class, "NetworkNotFound");
        assert_eq!(
            f.clone().into_rpc_error("get_network_info").exc_type(),
            Some("NetworkNotFound")
        );
        assert!(reply.ending);
    }

    #[test]
    fn legacy_and_bad_envelopes() {
        let legacy = decode(br#"{"method": "network_create_end", "args": {}}"#).unwrap();
        assert_eq!(parse_request(legacy).unwrap().method, "network_create_end");
        assert!(matches!(
            decode(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#),
            Err(EnvelopeError::Version(_))
        ));
        assert!(matches!(
            decode(br#"{"oslo.version": "2.1", "oslo.message": "{}"}"#),
            Err(EnvelopeError::Version(_))
        ));
        assert!(matches!(
            decode(br#"{"oslo.version": "2.0", "oslo.message": "[1]"}"#),
            Err(EnvelopeError::Inner(_))
        ));
        assert!(matches!(
            decode(b"\xff\xfe"),
            Err(EnvelopeError::NotJson(_))
        ));
        assert!(matches!(decode(b"[]"), Err(EnvelopeError::NotJson(_))));
        let e = parse_request(json!({"method": 5}).as_object().unwrap().clone()).unwrap_err();
        assert!(e.to_string().contains("method"));
        let e = parse_request(
            json!({"method": "m", "args": []})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("args"));
    }

    #[test]
    fn request_round_trip_keeps_call_ids() {
        let ids = CallIds {
            msg_id: "abc".into(),
            reply_q: "reply_x".into(),
        };
        let body = encode_request(
            "get_network_info",
            json!({"network_id": "n", "host": "h"}),
            Some("1.0"),
            Some(&ids),
            "u",
            &Context::new_admin(),
        );
        let req = parse_request(decode(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(req.call, Some(ids));
        assert_eq!(req.version, "1.0");
        assert_eq!(req.args["network_id"], "n");
    }
}
