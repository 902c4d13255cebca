//! Configuration options as drivers see them: declared specs and typed getters.
//!
//! The agent reads oslo-style INI files into an [`Options`]; drivers declare the
//! options they read ([`OptionSpec`], the way oslo.config drivers register
//! theirs) and read them with typed getters whose errors name the file, the
//! section, the option and the value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionKind {
    /// Any single-line string.
    Str,
    /// An integer, with optional bounds.
    Int {
        /// Smallest allowed value.
        min: Option<i64>,
        /// Largest allowed value.
        max: Option<i64>,
    },
    /// A floating point number with an optional lower bound.
    Float {
        /// Smallest allowed value.
        min: Option<f64>,
    },
    /// A boolean in oslo's spellings (true/false, yes/no, on/off, 1/0).
    Bool,
    /// A comma-separated list.
    List,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

/// One option a component reads: where it lives, its kind and its default.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// Section: `DEFAULT`, `AGENT`, `OVS`, …
    pub section: &'static str,
    /// Option name as in Neutron.
    pub name: &'static str,
    /// Value kind.
    pub kind: OptionKind,
    /// Default as it would be written in the file; `None` = unset.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
    /// Never printed or logged (passwords, URLs with credentials).
    pub secret: bool,
}

impl OptionSpec {
    /// A string option.
    pub const fn str(
        section: &'static str,
        name: &'static str,
        default: Option<&'static str>,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            section,
            name,
            kind: OptionKind::Str,
            default,
            help,
            secret: false,
        }
    }
    /// A boolean option.
    pub const fn bool(
        section: &'static str,
        name: &'static str,
        default: bool,
        help: &'static str,
    ) -> Self {
        let default = if default { "true" } else { "false" };
        OptionSpec {
            section,
            name,
            kind: OptionKind::Bool,
            default: Some(default),
            help,
            secret: false,
        }
    }
    /// An integer option.
    pub const fn int(
        section: &'static str,
        name: &'static str,
        default: Option<&'static str>,
        min: Option<i64>,
        max: Option<i64>,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            section,
            name,
            kind: OptionKind::Int { min, max },
            default,
            help,
            secret: false,
        }
    }
    /// A float option.
    pub const fn float(
        section: &'static str,
        name: &'static str,
        default: &'static str,
        min: Option<f64>,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            section,
            name,
            kind: OptionKind::Float { min },
            default: Some(default),
            help,
            secret: false,
        }
    }
    /// A list option.
    pub const fn list(
        section: &'static str,
        name: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            section,
            name,
            kind: OptionKind::List,
            default: Some(default),
            help,
            secret: false,
        }
    }
    /// A choice option.
    pub const fn choice(
        section: &'static str,
        name: &'static str,
        choices: &'static [&'static str],
        default: &'static str,
        help: &'static str,
    ) -> Self {
        OptionSpec {
            section,
            name,
            kind: OptionKind::Choice(choices),
            default: Some(default),
            help,
            secret: false,
        }
    }
    /// The same option, marked secret.
    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A line of a config file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The option's declared default.
    Default,
    /// Set by the program (tests, `render --facts`, the agent's computed defaults).
    Program,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::Default => f.write_str("default"),
            Origin::Program => f.write_str("program"),
        }
    }
}

/// An option value that does not fit its kind.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{origin}: [{section}] {option} = {value:?}: {reason}")]
pub struct BadValue {
    /// Where the value came from.
    pub origin: Origin,
    /// Section.
    pub section: String,
    /// Option name.
    pub option: String,
    /// The value as written.
    pub value: String,
    /// What is wrong.
    pub reason: String,
}

/// Normalises a section name as oslo.config does: `DEFAULT` upper, others lower.
pub fn normalize_section(section: &str) -> String {
    if section.eq_ignore_ascii_case("DEFAULT") {
        "DEFAULT".into()
    } else {
        section.to_ascii_lowercase()
    }
}

/// Normalises an option name: oslo accepts `-` for `_`.
pub fn normalize_option(name: &str) -> String {
    name.trim().replace('-', "_")
}

type Key = (String, String);

/// The resolved configuration: values from files over declared defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    specs: BTreeMap<Key, OptionSpec>,
    values: BTreeMap<Key, (String, Origin)>,
}

impl Options {
    /// An empty set with no declared options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares options; a later declaration of the same option replaces the earlier.
    pub fn declare(&mut self, specs: &[OptionSpec]) {
        for spec in specs {
            self.specs.insert(key(spec.section, spec.name), *spec);
        }
    }

    /// Sets a value (later calls win, as later config files do).
    pub fn set(&mut self, section: &str, option: &str, value: impl Into<String>, origin: Origin) {
        self.values
            .insert(key(section, option), (value.into(), origin));
    }

    /// Whether an option was declared.
    pub fn is_declared(&self, section: &str, option: &str) -> bool {
        self.specs.contains_key(&key(section, option))
    }

    /// The spec of a declared option.
    pub fn spec(&self, section: &str, option: &str) -> Option<&OptionSpec> {
        self.specs.get(&key(section, option))
    }

    /// All declared specs, by section and name.
    pub fn specs(&self) -> impl Iterator<Item = &OptionSpec> {
        self.specs.values()
    }

    /// Values that were set but not declared: (section, option, origin).
    pub fn undeclared(&self) -> Vec<(String, String, Origin)> {
        self.values
            .iter()
            .filter(|(k, _)| !self.specs.contains_key(*k))
            .map(|((s, o), (_, origin))| (s.clone(), o.clone(), origin.clone()))
            .collect()
    }

    /// The raw value (interpolated) and where it came from; `None` when unset
    /// and without a default.
    pub fn raw(&self, section: &str, option: &str) -> Result<Option<(String, Origin)>, BadValue> {
        let k = key(section, option);
        let (text, origin) = match self.values.get(&k) {
            Some((v, o)) => (v.clone(), o.clone()),
            None => match self.specs.get(&k).and_then(|s| s.default) {
                Some(d) => (d.to_string(), Origin::Default),
                None => return Ok(None),
            },
        };
        let text = self.interpolate(&k, &text, &origin, 0)?;
        Ok(Some((text, origin)))
    }

    /// Expands `$name` and `${name}` from the same section or `[DEFAULT]`.
    fn interpolate(
        &self,
        k: &Key,
        text: &str,
        origin: &Origin,
        depth: usize,
    ) -> Result<String, BadValue> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let bad = |reason: String| BadValue {
            origin: origin.clone(),
            section: k.0.clone(),
            option: k.1.clone(),
            value: text.to_string(),
            reason,
        };
        if depth > 8 {
            return Err(bad("interpolation nests too deep (a loop?)".into()));
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
                continue;
            }
            let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => (&braced[..end], &braced[end + 1..]),
                    None => return Err(bad("unclosed ${".into())),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                return Err(bad(
                    "'$' not followed by an option name (write $$ for a dollar)".into(),
                ));
            }
            let same = (k.0.clone(), normalize_option(name));
            let default = ("DEFAULT".to_string(), normalize_option(name));
            let target = [same, default].into_iter().find(|t| {
                self.values.contains_key(t) || self.specs.get(t).and_then(|s| s.default).is_some()
            });
            let Some(target) = target else {
                return Err(bad(format!("${name} names no option")));
            };
            let raw = match self.values.get(&target) {
                Some((v, _)) => v.clone(),
                None => self.specs[&target].default.unwrap_or("").to_string(),
            };
            out.push_str(&self.interpolate(&target, &raw, origin, depth + 1)?);
            rest = tail;
        }
        out.push_str(rest);
        Ok(out)
    }

    fn bad(
        &self,
        section: &str,
        option: &str,
        value: &str,
        origin: Origin,
        reason: impl Into<String>,
    ) -> BadValue {
        BadValue {
            origin,
            section: normalize_section(section),
            option: normalize_option(option),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A string option; `None` when unset.
    pub fn get_str(&self, section: &str, option: &str) -> Result<Option<String>, BadValue> {
        let Some((v, origin)) = self.raw(section, option)? else {
            return Ok(None);
        };
        if let Some(OptionKind::Choice(choices)) = self.spec(section, option).map(|s| s.kind) {
            if !choices.contains(&v.as_str()) {
                return Err(self.bad(
                    section,
                    option,
                    &v,
                    origin,
                    format!("must be one of {}", choices.join(", ")),
                ));
            }
        }
        Ok(Some(v))
    }

    /// A string option, or `default` when unset.
    pub fn str_or(&self, section: &str, option: &str, default: &str) -> Result<String, BadValue> {
        Ok(self
            .get_str(section, option)?
            .unwrap_or_else(|| default.to_string()))
    }

    /// A boolean option in oslo's spellings.
    pub fn get_bool(&self, section: &str, option: &str) -> Result<Option<bool>, BadValue> {
        let Some((v, origin)) = self.raw(section, option)? else {
            return Ok(None);
        };
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Some(true)),
            "false" | "no" | "off" | "0" => Ok(Some(false)),
            _ => Err(self.bad(
                section,
                option,
                &v,
                origin,
                "not a boolean (true/false, yes/no, on/off, 1/0)",
            )),
        }
    }

    /// A boolean option, `false` when unset.
    pub fn flag(&self, section: &str, option: &str) -> Result<bool, BadValue> {
        Ok(self.get_bool(section, option)?.unwrap_or(false))
    }

    /// An integer option, checked against the declared bounds.
    pub fn get_int(&self, section: &str, option: &str) -> Result<Option<i64>, BadValue> {
        let Some((v, origin)) = self.raw(section, option)? else {
            return Ok(None);
        };
        let n: i64 = v
            .trim()
            .parse()
            .map_err(|_| self.bad(section, option, &v, origin.clone(), "not an integer"))?;
        if let Some(OptionKind::Int { min, max }) = self.spec(section, option).map(|s| s.kind) {
            if min.is_some_and(|m| n < m) {
                return Err(self.bad(
                    section,
                    option,
                    &v,
                    origin,
                    format!("must be at least {}", min.unwrap_or_default()),
                ));
            }
            if max.is_some_and(|m| n > m) {
                return Err(self.bad(
                    section,
                    option,
                    &v,
                    origin,
                    format!("must be at most {}", max.unwrap_or_default()),
                ));
            }
        }
        Ok(Some(n))
    }

    /// A float option, checked against the declared lower bound.
    pub fn get_float(&self, section: &str, option: &str) -> Result<Option<f64>, BadValue> {
        let Some((v, origin)) = self.raw(section, option)? else {
            return Ok(None);
        };
        let n: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| self.bad(section, option, &v, origin.clone(), "not a number"))?;
        if let Some(OptionKind::Float { min: Some(min) }) =
            self.spec(section, option).map(|s| s.kind)
        {
            if n < min {
                return Err(self.bad(
                    section,
                    option,
                    &v,
                    origin,
                    format!("must be at least {min}"),
                ));
            }
        }
        Ok(Some(n))
    }

    /// A comma-separated list option; empty items are dropped, items trimmed.
    pub fn get_list(&self, section: &str, option: &str) -> Result<Vec<String>, BadValue> {
        let Some((v, _)) = self.raw(section, option)? else {
            return Ok(Vec::new());
        };
        Ok(v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }

    /// Checks every declared and set option against its kind; all errors at once.
    pub fn check_all(&self) -> Vec<BadValue> {
        let mut errors = Vec::new();
        for spec in self.specs.values() {
            let result = match spec.kind {
                OptionKind::Str | OptionKind::Choice(_) => {
                    self.get_str(spec.section, spec.name).map(drop)
                }
                OptionKind::Int { .. } => self.get_int(spec.section, spec.name).map(drop),
                OptionKind::Float { .. } => self.get_float(spec.section, spec.name).map(drop),
                OptionKind::Bool => self.get_bool(spec.section, spec.name).map(drop),
                OptionKind::List => self.get_list(spec.section, spec.name).map(drop),
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        errors
    }
}

fn key(section: &str, option: &str) -> Key {
    (normalize_section(section), normalize_option(option))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(line: usize) -> Origin {
        Origin::File {
            path: "/etc/neutron/dhcp_agent.ini".into(),
            line,
        }
    }

    fn options() -> Options {
        let mut o = Options::new();
        o.declare(&[
            OptionSpec::str("DEFAULT", "state_path", Some("/var/lib/neutron"), "state"),
            OptionSpec::str("DEFAULT", "dhcp_confs", Some("$state_path/dhcp"), "confs"),
            OptionSpec::int(
                "DEFAULT",
                "resync_interval",
                Some("5"),
                Some(1),
                None,
                "resync",
            ),
            OptionSpec::bool("DEFAULT", "force_metadata", false, "meta"),
            OptionSpec::float("AGENT", "report_interval", "30", Some(0.0), "report"),
            OptionSpec::list("DEFAULT", "dnsmasq_dns_servers", "", "servers"),
            OptionSpec::choice(
                "AGENT",
                "check_child_processes_action",
                &["respawn", "exit"],
                "respawn",
                "action",
            ),
        ]);
        o
    }

    #[test]
    fn defaults_interpolate_state_path() {
        let mut o = options();
        assert_eq!(
            o.get_str("DEFAULT", "dhcp_confs").unwrap().unwrap(),
            "/var/lib/neutron/dhcp"
        );
        o.set("DEFAULT", "state_path", "/srv/lh", file(2));
        assert_eq!(
            o.get_str("DEFAULT", "dhcp_confs").unwrap().unwrap(),
            "/srv/lh/dhcp"
        );
        o.set(
            "DEFAULT",
            "dhcp_confs",
            "${state_path}/x/$$literal",
            file(3),
        );
        assert_eq!(
            o.get_str("DEFAULT", "dhcp_confs").unwrap().unwrap(),
            "/srv/lh/x/$literal"
        );
    }

    #[test]
    fn booleans_in_oslo_spellings() {
        let mut o = options();
        for (text, want) in [
            ("True", true),
            ("yes", true),
            ("ON", true),
            ("1", true),
            ("false", false),
            ("No", false),
            ("off", false),
            ("0", false),
        ] {
            o.set("DEFAULT", "force_metadata", text, file(1));
            assert_eq!(
                o.get_bool("DEFAULT", "force_metadata").unwrap(),
                Some(want),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_values_name_file_section_option_and_value() {
        let mut o = options();
        o.set("DEFAULT", "force_metadata", "maybe", file(7));
        let e = o.get_bool("DEFAULT", "force_metadata").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/etc/neutron/dhcp_agent.ini:7"), "{text}");
        assert!(
            text.contains("[DEFAULT] force_metadata") && text.contains("\"maybe\""),
            "{text}"
        );

        o.set("DEFAULT", "resync_interval", "0", file(8));
        assert!(o
            .get_int("DEFAULT", "resync_interval")
            .unwrap_err()
            .reason
            .contains("at least 1"));
        o.set("agent", "check_child_processes_action", "reboot", file(9));
        let e = o
            .get_str("AGENT", "check_child_processes_action")
            .unwrap_err();
        assert_eq!(e.section, "agent");
        assert!(e.reason.contains("respawn, exit"));
        o.set("AGENT", "report_interval", "soon", file(10));
        assert!(o.get_float("agent", "report_interval").is_err());
        assert_eq!(o.check_all().len(), 4);
    }

    #[test]
    fn lists_and_unknown_interpolation() {
        let mut o = options();
        o.set(
            "DEFAULT",
            "dnsmasq_dns_servers",
            " 8.8.8.8, ,1.1.1.1 ",
            file(1),
        );
        assert_eq!(
            o.get_list("DEFAULT", "dnsmasq_dns_servers").unwrap(),
            ["8.8.8.8", "1.1.1.1"]
        );
        o.set("DEFAULT", "dhcp_confs", "$nowhere/dhcp", file(4));
        assert!(o
            .get_str("DEFAULT", "dhcp_confs")
            .unwrap_err()
            .reason
            .contains("$nowhere"));
        o.set("DEFAULT", "mystery-option", "1", file(5));
        let undeclared = o.undeclared();
        assert_eq!(undeclared[0].1, "mystery_option");
    }
}
