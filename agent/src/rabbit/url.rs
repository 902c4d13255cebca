//! `transport_url` as oslo.messaging reads it: `rabbit://user:pass@host:port[,user:pass@host2:port]/vhost?opts`.

use std::fmt;

/// One broker of a transport URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Broker {
    /// User name.
    pub user: String,
    /// Password (never shown by Debug or Display).
    pub password: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:****@{}:{}", self.user, self.host, self.port)
    }
}

/// A parsed `rabbit://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportUrl {
    /// Brokers, tried in turn on reconnect.
    pub brokers: Vec<Broker>,
    /// Virtual host; `/` when the path is empty.
    pub vhost: String,
}

/// A transport URL we cannot use; the text never includes the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("transport_url {shown}: {reason}")]
pub struct UrlError {
    /// The URL with its passwords masked.
    pub shown: String,
    /// What is wrong.
    pub reason: String,
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad %-escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes are not UTF-8".into())
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl TransportUrl {
    /// Parses a `rabbit://` URL.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let err = |reason: &str| UrlError {
            shown: crate::config::mask_url(url),
            reason: reason.into(),
        };
        let rest = url
            .strip_prefix("rabbit://")
            .ok_or_else(|| err("only rabbit:// and file:// transports are supported"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (hosts, vhost) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let vhost = if vhost.is_empty() {
            "/".to_string()
        } else {
            percent_decode(vhost).map_err(|e| err(&e))?
        };
        let mut brokers = Vec::new();
        for part in hosts.split(',').filter(|p| !p.is_empty()) {
            let (cred, hostport) = match part.rfind('@') {
                Some(at) => (Some(&part[..at]), &part[at + 1..]),
                None => (None, part),
            };
            let (user, password) = match cred {
                Some(c) => match c.split_once(':') {
                    Some((u, p)) => (
                        percent_decode(u).map_err(|e| err(&e))?,
                        percent_decode(p).map_err(|e| err(&e))?,
                    ),
                    None => (percent_decode(c).map_err(|e| err(&e))?, String::new()),
                },
                None => ("guest".into(), "guest".into()),
            };
            let (host, port) = if let Some(stripped) = hostport.strip_prefix('[') {
                let end = stripped
                    .find(']')
                    .ok_or_else(|| err("unclosed [ in host"))?;
                let port = stripped[end + 1..].strip_prefix(':');
                (stripped[..end].to_string(), port)
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p)),
                    None => (hostport.to_string(), None),
                }
            };
            let port = match port {
                Some(p) => p
                    .parse()
                    .map_err(|_| err(&format!("port {p:?} is not a number")))?,
                None => 5672,
            };
            let host = if host.is_empty() {
                "localhost".into()
            } else {
                host
            };
            brokers.push(Broker {
                user,
                password,
                host,
                port,
            });
        }
        if brokers.is_empty() {
            brokers.push(Broker {
                user: "guest".into(),
                password: "guest".into(),
                host: "localhost".into(),
                port: 5672,
            });
        }
        Ok(TransportUrl { brokers, vhost })
    }

    /// The AMQP URI of broker `i` (modulo the number of brokers).
    pub fn amqp_uri(&self, i: usize) -> String {
        let b = &self.brokers[i % self.brokers.len()];
        let host = if b.host.contains(':') {
            format!("[{}]", b.host)
        } else {
            b.host.clone()
        };
        format!(
            "amqp://{}:{}@{}:{}/{}",
            percent_encode(&b.user),
            percent_encode(&b.password),
            host,
            b.port,
            percent_encode(&self.vhost)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oslo_urls() {
        let u = TransportUrl::parse(
            "rabbit://openstack:p%40ss@10.0.0.1:5673,guest:guest@h2/nova?heartbeat=1",
        )
        .unwrap();
        assert_eq!(u.brokers.len(), 2);
        assert_eq!(u.brokers[0].password, "p@ss");
        assert_eq!(u.brokers[0].port, 5673);
        assert_eq!(u.brokers[1].port, 5672);
        assert_eq!(u.vhost, "nova");
        assert_eq!(u.amqp_uri(0), "amqp://openstack:p%40ss@10.0.0.1:5673/nova");
        assert_eq!(u.amqp_uri(1), "amqp://guest:guest@h2:5672/nova");
        let d = TransportUrl::parse("rabbit://").unwrap();
        assert_eq!(d.amqp_uri(0), "amqp://guest:guest@localhost:5672/%2F");
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = TransportUrl::parse("rabbit://u:secret@h:notaport/").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(e.to_string().contains("notaport"));
        assert!(TransportUrl::parse("kafka://h").is_err());
        assert!(
            !format!("{:?}", TransportUrl::parse("rabbit://u:secret@h/").unwrap())
                .contains("secret")
        );
    }
}
