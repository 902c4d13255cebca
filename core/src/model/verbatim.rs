//! Addresses that are parsed for meaning but written back exactly as the server sent them.
//!
//! Neutron writes addresses into dnsmasq files as the strings it received
//! (`2001:0200:feed:7ac0::1` stays uncompressed, MAC case is kept), so the
//! renderers must print the original text while the logic compares values.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed value together with the exact text it was parsed from.
#[derive(Clone)]
pub struct Verbatim<T> {
    value: T,
    text: String,
}

impl<T> Verbatim<T> {
    /// The parsed value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The text as the server sent it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Parses one kind of address from text; the error names what was expected.
pub trait ParseVerbatim: Sized {
    /// What the value is, for error messages ("IP address", "CIDR", "MAC address").
    const WHAT: &'static str;
    /// Parses `text`.
    fn parse_text(text: &str) -> Option<Self>;
}

impl ParseVerbatim for IpAddr {
    const WHAT: &'static str = "IP address";
    fn parse_text(text: &str) -> Option<Self> {
        IpAddr::from_str(text).ok()
    }
}

impl ParseVerbatim for IpNet {
    const WHAT: &'static str = "CIDR";
    fn parse_text(text: &str) -> Option<Self> {
        IpNet::from_str(text).ok()
    }
}

/// A MAC address; only the colon form Neutron sends (`fa:16:3e:00:00:01`) is accepted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Mac(pub [u8; 6]);

impl ParseVerbatim for Mac {
    const WHAT: &'static str = "MAC address (xx:xx:xx:xx:xx:xx)";
    fn parse_text(text: &str) -> Option<Self> {
        if text.len() != 17 || text.split(':').count() != 6 {
            return None;
        }
        macaddr::MacAddr6::from_str(text)
            .ok()
            .map(|m| Mac(m.into_array()))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl<T: ParseVerbatim> Verbatim<T> {
    /// Parses `text`, keeping it; the error names the expected kind and the value.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::from_text(text.to_string())
    }

    /// Parses `text`, keeping it without copying it.
    pub fn from_text(text: String) -> Result<Self, String> {
        match T::parse_text(&text) {
            Some(value) => Ok(Verbatim { value, text }),
            None => Err(format!("{text:?} is not a valid {}", T::WHAT)),
        }
    }
}

impl<T: fmt::Display> Verbatim<T> {
    /// Makes one from a value, its text being the value's canonical form.
    pub fn from_value(value: T) -> Self {
        let text = value.to_string();
        Verbatim { value, text }
    }
}

impl<T> fmt::Display for Verbatim<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<T> fmt::Debug for Verbatim<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

// Equality and hashing follow the value, not the spelling: `fa:16:3E:..` and
// `fa:16:3e:..` are the same MAC.
impl<T: PartialEq> PartialEq for Verbatim<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Verbatim<T> {}
impl<T: Hash> Hash for Verbatim<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl<T> Serialize for Verbatim<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, T: ParseVerbatim> Deserialize<'de> for Verbatim<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Verbatim::from_text(text).map_err(serde::de::Error::custom)
    }
}

/// An IP address as the server wrote it.
pub type IpAddress = Verbatim<IpAddr>;
/// A CIDR as the server wrote it (host bits may be set, as in host routes).
pub type Cidr = Verbatim<IpNet>;
/// A MAC address as the server wrote it.
pub type MacAddress = Verbatim<Mac>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_compares_values() {
        let a = IpAddress::parse("2001:0200:feed:7ac0::1").unwrap();
        let b = IpAddress::parse("2001:200:feed:7ac0::1").unwrap();
        assert_eq!(a.to_string(), "2001:0200:feed:7ac0::1");
        assert_eq!(a, b);
        let m = MacAddress::parse("00:16:3E:C2:77:1D").unwrap();
        assert_eq!(m.to_string(), "00:16:3E:C2:77:1D");
        assert_eq!(m.value().to_string(), "00:16:3e:c2:77:1d");
    }

    #[test]
    fn errors_name_the_value() {
        let err = MacAddress::parse("00:00:0f:rr:rr:rr").unwrap_err();
        assert!(
            err.contains("00:00:0f:rr:rr:rr") && err.contains("MAC"),
            "{err}"
        );
        assert!(MacAddress::parse("0016.3ec2.771d").is_err());
        assert!(IpAddress::parse("10.0.0.256").is_err());
        let err = Cidr::parse("10.0.0.0/33").unwrap_err();
        assert!(err.contains("CIDR"), "{err}");
        assert!(Cidr::parse("20.0.0.1/24").is_ok());
    }
}
