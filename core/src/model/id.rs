//! Identifiers of networks, subnets, ports and segments.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest id we accept; Neutron's UUIDs have 36 characters.
pub const MAX_ID_LEN: usize = 64;

/// A resource id from the server. Ids become file names, namespace names and
/// dnsmasq tags, so only `[A-Za-z0-9_-]`, 1 to 64 characters, are accepted.
/// They are not required to be UUIDs: Neutron's own tests use other shapes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(String);

impl Id {
    /// Checks `text` and makes an id of it.
    pub fn new(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        if text.is_empty() || text.len() > MAX_ID_LEN {
            return Err(format!(
                "id {text:?} must have 1 to {MAX_ID_LEN} characters, has {}",
                text.len()
            ));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        // Bytes first (every id of every port is checked); chars for the message.
        if text.bytes().all(|b| allowed(char::from(b))) {
            return Ok(Id(text));
        }
        if let Some(bad) = text.chars().find(|c| !allowed(*c)) {
            return Err(format!(
                "id {text:?} contains {bad:?}; only A-Z, a-z, 0-9, '-' and '_' are allowed"
            ));
        }
        Ok(Id(text))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `n` characters, as device and bridge names use them.
    pub fn prefix(&self, n: usize) -> &str {
        // Ids are ASCII, so byte and character positions agree.
        &self.0[..self.0.len().min(n)]
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Id {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::new(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Id::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_test_shapes() {
        assert!(Id::new("f92dfb46-282d-4ddc-8219-8838a48afaae").is_ok());
        assert!(Id::new("ccccccccc-cccc-cccc-cccc-ccccccccc").is_ok());
        assert!(Id::new("seg_1").is_ok());
    }

    #[test]
    fn rejects_path_separators_and_length() {
        let err = Id::new("../etc").unwrap_err();
        assert!(err.contains("'.'"), "{err}");
        assert!(Id::new("a/b").is_err());
        assert!(Id::new("").is_err());
        assert!(Id::new("a".repeat(65)).is_err());
        assert!(Id::new("a\nb").is_err());
    }

    #[test]
    fn prefix_is_bounded() {
        let id = Id::new("abcdef01-1234").unwrap();
        assert_eq!(id.prefix(11), "abcdef01-12");
        assert_eq!(Id::new("ab").unwrap().prefix(11), "ab");
    }
}
