//! An oslo.config-style INI reader: sections, `key = value`, comments, continuation lines.

use std::path::{Path, PathBuf};

/// One `key = value` assignment as read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Section as written (normalised later).
    pub section: String,
    /// Option name as written.
    pub key: String,
    /// Value, trimmed, quotes removed, continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum IniError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is neither a section, an assignment, a comment nor a continuation.
    #[error("config file {path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads and parses one file.
pub fn read_file(path: &Path) -> Result<Vec<Assignment>, IniError> {
    let text = std::fs::read_to_string(path).map_err(|source| IniError::Io {
        path: path.into(),
        source,
    })?;
    parse(&text).map_err(|(line, message)| IniError::Syntax {
        path: path.into(),
        line,
        message,
    })
}

/// Parses INI text; errors carry the line number.
pub fn parse(text: &str) -> Result<Vec<Assignment>, (usize, String)> {
    let mut out: Vec<Assignment> = Vec::new();
    let mut section: Option<String> = None;
    // Whether the previous non-blank line was an assignment a continuation may extend.
    let mut open_value = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            open_value = false;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if line.starts_with([' ', '\t']) && open_value {
            if let Some(last) = out.last_mut() {
                last.value.push('\n');
                last.value.push_str(trimmed);
                continue;
            }
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err((
                    line_no,
                    format!("section header {trimmed:?} has no closing ']'"),
                ));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err((line_no, "empty section name".into()));
            }
            section = Some(name.to_string());
            open_value = false;
            continue;
        }
        let Some(split) = trimmed.find(['=', ':']) else {
            return Err((line_no, format!("expected 'key = value', got {trimmed:?}")));
        };
        let key = trimmed[..split].trim();
        if key.is_empty() {
            return Err((line_no, format!("no option name before '=' in {trimmed:?}")));
        }
        let Some(section) = &section else {
            return Err((
                line_no,
                format!("option {key:?} comes before any [section]"),
            ));
        };
        out.push(Assignment {
            section: section.clone(),
            key: key.to_string(),
            value: unquote(trimmed[split + 1..].trim()).to_string(),
            line: line_no,
        });
        open_value = true;
    }
    Ok(out)
}

/// oslo.config removes one pair of matching surrounding quotes.
fn unquote(value: &str) -> &str {
    let b = value.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &value[1..value.len() - 1]
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_quotes_and_continuations() {
        let text = "# top comment\n[DEFAULT]\nhost = node-1\n; other comment\ninterface_driver: openvswitch\ndns_domain = \"example.org\"\ndnsmasq_dns_servers = 8.8.8.8,\n    1.1.1.1\n\n[AGENT]\nreport_interval=10\n";
        let a = parse(text).unwrap();
        let got: Vec<_> = a
            .iter()
            .map(|a| (a.section.as_str(), a.key.as_str(), a.value.as_str(), a.line))
            .collect();
        assert_eq!(
            got,
            [
                ("DEFAULT", "host", "node-1", 3),
                ("DEFAULT", "interface_driver", "openvswitch", 5),
                ("DEFAULT", "dns_domain", "example.org", 6),
                ("DEFAULT", "dnsmasq_dns_servers", "8.8.8.8,\n1.1.1.1", 7),
                ("AGENT", "report_interval", "10", 11),
            ]
        );
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        assert_eq!(parse("[DEFAULT\nx=1").unwrap_err().0, 1);
        assert_eq!(parse("x = 1\n").unwrap_err().0, 1);
        assert_eq!(parse("[DEFAULT]\njust words\n").unwrap_err().0, 2);
        assert!(parse("[DEFAULT]\n = 3\n")
            .unwrap_err()
            .1
            .contains("no option name"));
    }

    #[test]
    fn values_may_contain_equals_and_urls() {
        let a = parse("[DEFAULT]\ntransport_url = rabbit://u:p@h:5672/v?x=1\n").unwrap();
        assert_eq!(a[0].value, "rabbit://u:p@h:5672/v?x=1");
    }
}
