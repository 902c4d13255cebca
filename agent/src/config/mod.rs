//! Configuration: oslo-style INI files in, one resolved [`Options`] out.
//!
//! `--config-file` may repeat and later files win, as in oslo.config. Every
//! option the agent and its drivers read is declared, so an unknown option in
//! a known section warns, and a bad value is an error naming the file, the
//! line, the section, the option and the value.

mod agent_options;
pub mod ini;
mod server_options;

use std::path::{Path, PathBuf};

use leasehold_core::options::{BadValue, OptionSpec, Options, Origin};

pub use agent_options::{is_secret, AGENT_OPTIONS};
pub use server_options::{is_neutron_server_option, neutron_server_options};

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read or parsed.
    #[error(transparent)]
    Ini(#[from] ini::IniError),
    /// A value does not fit its option.
    #[error(transparent)]
    BadValue(#[from] BadValue),
    /// Several values do not fit their options.
    #[error("{} bad values:\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    BadValues(Vec<BadValue>),
    /// Two options contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

/// A notice about the configuration that is not an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigNotice {
    /// An option nobody reads, in a section the agent knows.
    UnknownOption {
        /// Where it was set.
        origin: Origin,
        /// Section.
        section: String,
        /// Option.
        option: String,
    },
    /// A whole section the agent does not read (e.g. neutron.conf's `[database]`).
    IgnoredSection {
        /// Section.
        section: String,
    },
    /// neutron-server's own `[DEFAULT]` options (neutron.conf's), all in one notice.
    NeutronServerOptions {
        /// The options, by name.
        options: Vec<String>,
        /// The files that set them.
        files: Vec<PathBuf>,
    },
}

impl std::fmt::Display for ConfigNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigNotice::UnknownOption {
                origin,
                section,
                option,
            } => {
                write!(f, "{origin}: unknown option [{section}] {option}, ignored")
            }
            ConfigNotice::IgnoredSection { section } => write!(
                f,
                "section [{section}] is not used by the DHCP agent, ignored"
            ),
            ConfigNotice::NeutronServerOptions { options, files } => {
                let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "{} option{} of neutron-server ignored: {} ([DEFAULT] of {}; neutron-dhcp-agent does not read them either)",
                    options.len(),
                    if options.len() == 1 { "" } else { "s" },
                    options.join(", "),
                    files.join(", ")
                )
            }
        }
    }
}

/// Raw values of all files, in order, before any option is declared.
#[derive(Clone, Debug, Default)]
pub struct RawConfig {
    files: Vec<PathBuf>,
    assignments: Vec<(PathBuf, ini::Assignment)>,
}

impl RawConfig {
    /// Reads the files in order.
    pub fn read(files: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut raw = RawConfig {
            files: files.to_vec(),
            ..Default::default()
        };
        for path in files {
            for a in ini::read_file(path)? {
                raw.assignments.push((path.clone(), a));
            }
        }
        Ok(raw)
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Resolves against declared options: later files win.
    pub fn resolve(&self, specs: &[OptionSpec]) -> (Options, Vec<ConfigNotice>) {
        let mut options = Options::new();
        options.declare(specs);
        for (path, a) in &self.assignments {
            options.set(
                &a.section,
                &a.key,
                a.value.clone(),
                Origin::File {
                    path: path.clone(),
                    line: a.line,
                },
            );
        }
        let mut notices = Vec::new();
        let mut ignored: Vec<String> = Vec::new();
        let mut server_options: Vec<String> = Vec::new();
        let mut server_files: Vec<PathBuf> = Vec::new();
        for (section, option, origin) in options.undeclared() {
            if section == "DEFAULT" && is_neutron_server_option(&option) {
                // Every neutron.conf has some: one notice for them all, not a warning each.
                if let Origin::File { path, .. } = &origin {
                    if !server_files.contains(path) {
                        server_files.push(path.clone());
                    }
                }
                server_options.push(option);
            } else if agent_options::is_known_section(&section, specs) {
                notices.push(ConfigNotice::UnknownOption {
                    origin,
                    section,
                    option,
                });
            } else if !ignored.contains(&section) {
                ignored.push(section);
            }
        }
        if !server_options.is_empty() {
            notices.push(ConfigNotice::NeutronServerOptions {
                options: server_options,
                files: server_files,
            });
        }
        notices.extend(
            ignored
                .into_iter()
                .map(|section| ConfigNotice::IgnoredSection { section }),
        );
        (options, notices)
    }
}

/// Checks every value and the rules between options; all bad values at once.
pub fn validate(options: &Options) -> Result<(), ConfigError> {
    let errors = options.check_all();
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            ConfigError::BadValue(errors.into_iter().next().expect("one error"))
        } else {
            ConfigError::BadValues(errors)
        });
    }
    let interval = options.get_int("DEFAULT", "resync_interval")?.unwrap_or(5);
    let throttle = options.get_int("DEFAULT", "resync_throttle")?.unwrap_or(1);
    if throttle > interval {
        return Err(ConfigError::Inconsistent(format!(
            "[DEFAULT] resync_throttle = {throttle} must not exceed resync_interval = {interval}"
        )));
    }
    Ok(())
}

/// The agent's host name: `[DEFAULT] host`, else the machine's hostname.
pub fn host(options: &Options) -> Result<String, BadValue> {
    if let Some(host) = options.get_str("DEFAULT", "host")? {
        if !host.is_empty() {
            return Ok(host);
        }
    }
    Ok(nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into()))
}

/// Replaces the password of a URL (`rabbit://user:pass@host`) with `****`.
///
/// Passwords are often generated and may hold an unescaped `/`, `,`, `:`
/// or `@`; none of them may make a part of one show. So the host list ends
/// at the first `/` after the *last* `@`, each `@` ends a user info, and
/// everything between a user name's `:` and its `@` is masked. A host never
/// holds a `,`, so after the first user the user info starts after the first
/// `,` of the piece; a piece without one is more user info.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(last_at) = rest.rfind('@') else {
        return url.to_string();
    };
    let (authority, tail) = match rest[last_at..].find('/') {
        Some(i) => rest.split_at(last_at + i),
        None => (rest, ""),
    };
    let pieces: Vec<&str> = authority.split('@').collect();
    let mut out = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        if i + 1 == pieces.len() {
            out.push_str(piece); // the last host(s)
            break;
        }
        let (hosts, userinfo) = if i == 0 {
            ("", *piece)
        } else {
            match piece.split_once(',') {
                Some((h, u)) => (h, u),
                None => {
                    // No host here: the previous password held an '@'.
                    out.push_str("****@");
                    continue;
                }
            }
        };
        if i > 0 {
            out.push_str(hosts);
            out.push(',');
        }
        match userinfo.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:****@")),
            None => out.push_str(&format!("{userinfo}@")),
        }
    }
    format!("{}://{}{}", &url[..scheme_end], out, tail)
}

/// The text shown for an option's value in listings: secrets masked.
pub fn shown_value(spec: &OptionSpec, value: &str) -> String {
    if spec.name == "transport_url" {
        mask_url(value)
    } else if is_secret(spec) {
        "****".into()
    } else {
        value.to_string()
    }
}

/// A path option resolved to a path.
pub fn path_option(
    options: &Options,
    section: &str,
    name: &str,
) -> Result<Option<PathBuf>, BadValue> {
    Ok(options
        .get_str(section, name)?
        .filter(|s| !s.is_empty())
        .map(PathBuf::from))
}

/// Whether `path` looks like an INI file we can read (for friendly CLI errors).
pub fn exists(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    #[test]
    fn later_files_win_and_state_path_interpolates() {
        let d = tempfile::tempdir().unwrap();
        let a = file(
            &d,
            "neutron.conf",
            "[DEFAULT]\nstate_path = /srv/a\nhost = one\n[database]\nconnection = mysql://x\n",
        );
        let b = file(
            &d,
            "dhcp_agent.ini",
            "[DEFAULT]\nstate_path = /srv/b\n[agent]\nreport_interval = 5\n",
        );
        let raw = RawConfig::read(&[a, b]).unwrap();
        let (o, notices) = raw.resolve(AGENT_OPTIONS);
        assert_eq!(
            o.get_str("DEFAULT", "state_path").unwrap().unwrap(),
            "/srv/b"
        );
        assert_eq!(
            o.get_str("DEFAULT", "external_pids").unwrap().unwrap(),
            "/srv/b/external/pids"
        );
        assert_eq!(o.get_str("DEFAULT", "host").unwrap().unwrap(), "one");
        assert_eq!(o.get_float("AGENT", "report_interval").unwrap(), Some(5.0));
        assert_eq!(
            notices,
            [ConfigNotice::IgnoredSection {
                section: "database".into()
            }]
        );
        validate(&o).unwrap();
    }

    #[test]
    fn unknown_option_in_known_section_warns_with_its_place() {
        let d = tempfile::tempdir().unwrap();
        let a = file(&d, "a.ini", "[DEFAULT]\n\nno_such_option = 1\n");
        let (_, notices) = RawConfig::read(std::slice::from_ref(&a))
            .unwrap()
            .resolve(AGENT_OPTIONS);
        assert_eq!(notices.len(), 1);
        let text = notices[0].to_string();
        assert!(
            text.contains(&format!("{}:3", a.display())) && text.contains("no_such_option"),
            "{text}"
        );
    }

    #[test]
    fn neutron_server_options_share_one_notice_and_misspellings_still_warn() {
        let d = tempfile::tempdir().unwrap();
        let conf = file(
            &d,
            "neutron.conf",
            "[DEFAULT]\ncore_plugin = ml2\nservice-plugins = router\ncore_plugn = ml2\n\
             [agent]\nl3_ha = true\n",
        );
        let ini = file(
            &d,
            "dhcp_agent.ini",
            "[DEFAULT]\nrouter_distributed = true\n",
        );
        let (_, notices) = RawConfig::read(&[conf.clone(), ini.clone()])
            .unwrap()
            .resolve(AGENT_OPTIONS);
        assert_eq!(
            notices,
            [
                ConfigNotice::UnknownOption {
                    origin: Origin::File {
                        path: conf.clone(),
                        line: 4
                    },
                    section: "DEFAULT".into(),
                    option: "core_plugn".into(),
                },
                // Server options count in [DEFAULT] only.
                ConfigNotice::UnknownOption {
                    origin: Origin::File {
                        path: conf.clone(),
                        line: 6
                    },
                    section: "agent".into(),
                    option: "l3_ha".into(),
                },
                ConfigNotice::NeutronServerOptions {
                    options: vec![
                        "core_plugin".into(),
                        "router_distributed".into(),
                        "service_plugins".into()
                    ],
                    files: vec![conf.clone(), ini.clone()],
                },
            ]
        );
        assert_eq!(
            notices[2].to_string(),
            format!(
                "3 options of neutron-server ignored: core_plugin, router_distributed, service_plugins \
                 ([DEFAULT] of {}, {}; neutron-dhcp-agent does not read them either)",
                conf.display(),
                ini.display()
            )
        );
    }

    #[test]
    fn bad_values_name_file_section_option_value() {
        let d = tempfile::tempdir().unwrap();
        let a = file(
            &d,
            "a.ini",
            "[DEFAULT]\nresync_interval = often\n[AGENT]\ncheck_child_processes_action = reboot\n",
        );
        let (o, _) = RawConfig::read(std::slice::from_ref(&a))
            .unwrap()
            .resolve(AGENT_OPTIONS);
        let text = validate(&o).unwrap_err().to_string();
        assert!(
            text.contains(&format!(
                "{}:2: [DEFAULT] resync_interval = \"often\"",
                a.display()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{}:4: [agent] check_child_processes_action = \"reboot\"",
                a.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn throttle_above_interval_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = file(
            &d,
            "a.ini",
            "[DEFAULT]\nresync_interval = 2\nresync_throttle = 3\n",
        );
        let (o, _) = RawConfig::read(&[a]).unwrap().resolve(AGENT_OPTIONS);
        assert!(validate(&o)
            .unwrap_err()
            .to_string()
            .contains("resync_throttle = 3"));
    }

    #[test]
    fn missing_file_and_syntax_error_name_the_file() {
        let e = RawConfig::read(&[PathBuf::from("/nonexistent/x.ini")]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.ini"));
        let d = tempfile::tempdir().unwrap();
        let a = file(&d, "bad.ini", "[DEFAULT]\nthis is not ini\n");
        let e = RawConfig::read(std::slice::from_ref(&a))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{}:2", a.display())), "{e}");
    }

    #[test]
    fn masks_passwords_in_urls() {
        assert_eq!(
            mask_url("rabbit://guest:secret@127.0.0.1:5672/"),
            "rabbit://guest:****@127.0.0.1:5672/"
        );
        assert_eq!(
            mask_url("rabbit://a:p1@h1:5672,b:p2@h2:5672/vh"),
            "rabbit://a:****@h1:5672,b:****@h2:5672/vh"
        );
        assert_eq!(
            mask_url("file:///etc/leasehold/networks.json"),
            "file:///etc/leasehold/networks.json"
        );
        assert_eq!(mask_url("rabbit://nopass@h/"), "rabbit://nopass@h/");
        // Generated passwords with '/', ',', ':' or '@' never show (found by fuzzing).
        for (url, secret) in [
            ("rabbit://u:pa/ss@h:5672/vh", "pa/ss"),
            (
                "rabbit://../u:s3cretmpw@h:5672,v:other-pw@h2:}5672/vh",
                "s3cretmpw",
            ),
            ("rabbit://u:p,w1@h1:5672,v:q:w2@h2/", "p,w1"),
            ("rabbit://u:p@w3@h1/", "p@w3"),
        ] {
            let masked = mask_url(url);
            for part in secret.split(['/', ',', '@', ':']) {
                assert!(!masked.contains(part), "{masked} shows {part}");
            }
        }
        assert_eq!(
            mask_url("rabbit://u:pa/ss@h:5672/vh"),
            "rabbit://u:****@h:5672/vh"
        );
    }
}
