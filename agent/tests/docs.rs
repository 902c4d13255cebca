//! docs/configuration.md held to the code and to neutron-dhcp-agent 29.
//!
//! Against the code: every option the agent and its built-in drivers read has
//! one row with the declared type and default, and no row names an option
//! nobody reads; every Neutron option the document calls unsupported does, when
//! set, what the document says (the agent binary is run on a file that sets
//! them all). Against Neutron (the pinned venv): the Neutron defaults written
//! are Neutron's, "same" is only written where name, default, type and bounds
//! are all Neutron's, and every option a neutron-dhcp-agent process registers
//! is either read by Leasehold or listed as unsupported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use leasehold_agent::commands::option_table::{
    declared_options, default_cell, kind_cell, markdown_row,
};
use leasehold_agent::config::AGENT_OPTIONS;
use leasehold_core::options::{normalize_section, OptionKind, OptionSpec};
use serde_json::Value;

const DOC: &str = "docs/configuration.md";
const READ_HEADING: &str = "## Options Leasehold reads";
const UNSUPPORTED_HEADING: &str = "## Neutron options Leasehold does not read";
/// What the "in Leasehold" cell says for an option warned about one by one.
const WARNS: &str = "warning naming file and line";
/// What it says for an option whose whole section is set aside.
const SECTION_NOTICE: &str = "one notice for the section";
/// What it says for neutron-server's `[DEFAULT]` options, noted all together.
const SERVER_NOTICE: &str = "one notice for all of neutron-server's options";
/// The text of that notice, before the names.
const SERVER_NOTICE_TEXT: &str = "of neutron-server ignored: ";
/// The Neutron default cell of a row naming several options.
const VARIOUS: &str = "various";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the agent crate sits in the workspace")
        .to_path_buf()
}

type Key = (String, String);

fn key(section: &str, name: &str) -> Key {
    (normalize_section(section), name.to_string())
}

/// A row of the table of options Leasehold reads.
#[derive(Debug)]
struct ReadRow {
    line: usize,
    section: String,
    name: String,
    kind: String,
    ours: String,
    neutron: String,
    differs: String,
}

/// What a row of the unsupported table names.
#[derive(Debug, Clone)]
enum Target {
    Option { section: String, name: String },
    Section(String),
}

/// A row of the table of Neutron options Leasehold does not read.
#[derive(Debug)]
struct UnsupportedRow {
    line: usize,
    targets: Vec<Target>,
    neutron: String,
    leasehold: String,
}

#[derive(Debug)]
struct Doc {
    read: Vec<ReadRow>,
    unsupported: Vec<UnsupportedRow>,
}

/// The text between backticks in a cell, each piece once.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// `[SECTION] name` or `[SECTION]`.
fn target(span: &str) -> Option<Target> {
    let rest = span.strip_prefix('[')?;
    let (section, name) = rest.split_once(']')?;
    let name = name.trim();
    Some(if name.is_empty() {
        Target::Section(section.to_string())
    } else {
        Target::Option {
            section: section.to_string(),
            name: name.to_string(),
        }
    })
}

fn parse_doc() -> Doc {
    let text = std::fs::read_to_string(repo().join(DOC)).expect("docs/configuration.md");
    let mut doc = Doc {
        read: Vec::new(),
        unsupported: Vec::new(),
    };
    let mut part = "";
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.starts_with("## ") {
            part = line;
            continue;
        }
        if !line.starts_with("| `[") {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if part == READ_HEADING {
            assert_eq!(
                cells.len(),
                6,
                "{DOC}:{line_no}: a row of the options read has 6 cells"
            );
            let spans = code_spans(cells[0]);
            let Some(Target::Option { section, name }) = spans.first().and_then(|s| target(s))
            else {
                panic!("{DOC}:{line_no}: the first cell names no `[SECTION] option`");
            };
            assert_eq!(spans.len(), 1, "{DOC}:{line_no}: one option a row");
            doc.read.push(ReadRow {
                line: line_no,
                section,
                name,
                kind: cells[1].to_string(),
                ours: cells[2].to_string(),
                neutron: cells[3].to_string(),
                differs: cells[4].to_string(),
            });
        } else if part == UNSUPPORTED_HEADING {
            assert_eq!(
                cells.len(),
                4,
                "{DOC}:{line_no}: a row of the unsupported options has 4 cells"
            );
            let targets: Vec<Target> = code_spans(cells[0])
                .into_iter()
                .map(|s| {
                    target(s)
                        .unwrap_or_else(|| panic!("{DOC}:{line_no}: {s:?} is no [SECTION] option"))
                })
                .collect();
            assert!(!targets.is_empty(), "{DOC}:{line_no}: names no option");
            doc.unsupported.push(UnsupportedRow {
                line: line_no,
                targets,
                neutron: cells[1].to_string(),
                leasehold: cells[3].to_string(),
            });
        }
    }
    assert!(
        !doc.read.is_empty() && !doc.unsupported.is_empty(),
        "{DOC}: no tables under {READ_HEADING:?} and {UNSUPPORTED_HEADING:?}"
    );
    doc
}

fn all_declared() -> Vec<OptionSpec> {
    let registry = leasehold_agent::drivers::builtin_registry().expect("built-in drivers");
    declared_options(&registry)
}

/// The Leasehold default cell: exactly the declared default, or for an unset
/// one `(unset)` with an optional explanation, `(unset: the hostname)`.
fn default_matches(cell: &str, default: Option<&str>) -> bool {
    let want = default_cell(default);
    cell == want || (default.is_none() && cell.starts_with("(unset: ") && cell.ends_with(')'))
}

fn fail_on(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{DOC} disagrees ({} problems):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_option_the_agent_reads_is_documented_with_its_type_and_default() {
    let doc = parse_doc();
    let specs = all_declared();
    let mut problems = Vec::new();
    let mut rows: BTreeMap<Key, &ReadRow> = BTreeMap::new();
    for row in &doc.read {
        if let Some(earlier) = rows.insert(key(&row.section, &row.name), row) {
            problems.push(format!(
                "{DOC}:{}: [{}] {} is documented twice (also line {})",
                row.line, row.section, row.name, earlier.line
            ));
        }
    }
    let mut missing = Vec::new();
    for spec in &specs {
        let Some(row) = rows.remove(&key(spec.section, spec.name)) else {
            missing.push(markdown_row(spec));
            continue;
        };
        let at = format!("{DOC}:{}: [{}] {}", row.line, row.section, row.name);
        if row.section != spec.section {
            problems.push(format!(
                "{at}: the code spells the section [{}]",
                spec.section
            ));
        }
        if row.kind != kind_cell(spec.kind) {
            problems.push(format!(
                "{at}: type {:?}, the code declares {:?}",
                row.kind,
                kind_cell(spec.kind)
            ));
        }
        if !default_matches(&row.ours, spec.default) {
            problems.push(format!(
                "{at}: Leasehold default {:?}, the code's is {:?}",
                row.ours,
                default_cell(spec.default)
            ));
        }
    }
    for row in rows.values() {
        problems.push(format!(
            "{DOC}:{}: [{}] {} is not an option the agent or a built-in driver declares",
            row.line, row.section, row.name
        ));
    }
    for row in &doc.read {
        let at = format!("{DOC}:{}: [{}] {}", row.line, row.section, row.name);
        if row.differs == "same" && row.ours != row.neutron {
            problems.push(format!(
                "{at}: says \"same\" but the defaults written differ ({} vs {})",
                row.ours, row.neutron
            ));
        }
        if (row.neutron == "—") != row.differs.starts_with("Leasehold only") {
            problems.push(format!(
                "{at}: an option Neutron lacks has Neutron default \"—\" and differs \"Leasehold only…\""
            ));
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "options the code reads that {DOC} lacks; add rows like these under {READ_HEADING:?}:\n{}",
            missing.join("\n")
        ));
    }
    fail_on(problems);
}

#[test]
fn the_agent_and_its_drivers_declare_shared_options_alike() {
    let registry = leasehold_agent::drivers::builtin_registry().expect("built-in drivers");
    let mut problems = Vec::new();
    for driver_spec in registry.option_specs() {
        let driver_key = key(driver_spec.section, driver_spec.name);
        for agent_spec in AGENT_OPTIONS {
            if key(agent_spec.section, agent_spec.name) != driver_key {
                continue;
            }
            if agent_spec.default != driver_spec.default || agent_spec.kind != driver_spec.kind {
                problems.push(format!(
                    "[{}] {}: the agent declares {:?} {:?}, a driver {:?} {:?}",
                    driver_spec.section,
                    driver_spec.name,
                    agent_spec.kind,
                    agent_spec.default,
                    driver_spec.kind,
                    driver_spec.default
                ));
            }
        }
    }
    fail_on(problems);
}

#[test]
fn unsupported_options_when_set_do_what_the_document_says() {
    let doc = parse_doc();
    let declared: BTreeSet<Key> = all_declared()
        .iter()
        .map(|s| key(s.section, s.name))
        .collect();
    let mut problems = Vec::new();

    // One file setting every unsupported option, section by section.
    let mut by_section: BTreeMap<String, Vec<(Target, &UnsupportedRow)>> = BTreeMap::new();
    for row in &doc.unsupported {
        for t in &row.targets {
            let section = match t {
                Target::Option { section, .. } | Target::Section(section) => section,
            };
            by_section
                .entry(section.clone())
                .or_default()
                .push((t.clone(), row));
        }
    }
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut line = 0;
    for (section, targets) in &by_section {
        text.push_str(&format!("[{section}]\n"));
        line += 1;
        for (t, row) in targets {
            let name = match t {
                Target::Option { name, .. } => name.clone(),
                Target::Section(_) => "leasehold_docs_probe".to_string(),
            };
            if declared.contains(&key(section, &name)) {
                problems.push(format!(
                    "{DOC}:{}: [{section}] {name} is listed as unsupported, but Leasehold reads it",
                    row.line
                ));
            }
            text.push_str(&format!("{name} = 1\n"));
            line += 1;
            expected.push((section.clone(), name, line, *row));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unsupported.ini");
    std::fs::write(&file, &text).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_leasehold-agent"))
        .arg("check-config")
        .arg("--config-file")
        .arg(&file)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "setting unsupported options must not stop the agent: {stderr}"
    );
    for (section, name, line, row) in expected {
        let normal = normalize_section(&section);
        let warning = format!(
            "{}:{line}: unknown option [{normal}] {name}, ignored",
            file.display()
        );
        let notice = format!("section [{normal}] is not used by the DHCP agent, ignored");
        let at = format!("{DOC}:{}: [{section}] {name}", row.line);
        if row.leasehold.contains(WARNS) {
            if !stderr.contains(&warning) {
                problems.push(format!("{at}: documented to warn, but no {warning:?}"));
            }
        } else if row.leasehold.contains(SERVER_NOTICE) {
            let named = stderr
                .lines()
                .filter_map(|l| l.split_once(SERVER_NOTICE_TEXT))
                .any(|(_, names)| names.split([',', ' ']).any(|n| n == name));
            if !named || stderr.contains(&warning) {
                problems.push(format!(
                    "{at}: documented as part of the notice of neutron-server's options, but no {SERVER_NOTICE_TEXT:?} line names it (or it is warned about alone)"
                ));
            }
        } else if row.leasehold.contains(SECTION_NOTICE) {
            if !stderr.contains(&notice) || stderr.contains(&warning) {
                problems.push(format!(
                    "{at}: documented as one notice for the section, but stderr has no {notice:?} (or warns per option)"
                ));
            }
        } else {
            problems.push(format!(
                "{at}: the \"in Leasehold\" cell says none of {WARNS:?}, {SECTION_NOTICE:?}, {SERVER_NOTICE:?}"
            ));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("the agent said:\n{stderr}"));
    }
    fail_on(problems);
}

#[test]
fn the_readme_points_to_the_reference() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Configuration\n"))
        .expect("README has a Configuration section");
    assert!(
        section.contains("](docs/configuration.md)"),
        "README's Configuration section links {DOC}"
    );
}

/// One option as neutron_options.py reports it.
#[derive(Debug)]
struct NeutronOption {
    group: String,
    name: String,
    raw: Value,
}

impl NeutronOption {
    fn default_cell(&self) -> String {
        cell_of(&self.raw["default"])
    }

    /// Whether Leasehold's declaration has Neutron's type and bounds.
    fn same_kind(&self, spec: &OptionSpec) -> bool {
        let ty = self.raw["type"].as_str().unwrap_or("");
        let min = self.raw["min"].as_f64();
        let max = self.raw["max"].as_f64();
        let choices: BTreeSet<&str> = self.raw["choices"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match spec.kind {
            OptionKind::Str => ty == "String" && choices.is_empty(),
            OptionKind::Bool => ty == "Boolean",
            OptionKind::List => ty == "List",
            OptionKind::Int { min: lo, max: hi } => {
                ty == "Integer" && lo.map(|v| v as f64) == min && hi.map(|v| v as f64) == max
            }
            OptionKind::Float { min: lo } => ty == "Float" && lo == min && max.is_none(),
            OptionKind::Choice(ours) => {
                ty == "String" && ours.iter().copied().collect::<BTreeSet<_>>() == choices
            }
        }
    }
}

/// A Neutron default written as the document writes defaults.
fn cell_of(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".into(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::Array(a) if a.is_empty() => "(empty)".into(),
        Value::Array(a) => format!(
            "`{}`",
            a.iter()
                .map(|v| v
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Object(m) => match m.get("computed").and_then(Value::as_str) {
            Some(what) => format!("(the {what})"),
            None if m.is_empty() => "(empty)".into(),
            None => format!("`{}`", Value::Object(m.clone())),
        },
    }
}

/// Every option a neutron-dhcp-agent 29 process registers, by section and name,
/// and the deprecated names it still reads.
fn neutron_options() -> (BTreeMap<Key, NeutronOption>, BTreeMap<Key, Key>) {
    let venv = leasehold_testkit::neutron::neutron_venv();
    let script = repo().join("agent/tests/support/neutron_options.py");
    let out = Command::new(venv.join("bin/python"))
        .arg("-W")
        .arg("ignore")
        .arg(&script)
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    let mut options = BTreeMap::new();
    let mut deprecated = BTreeMap::new();
    for raw in list {
        let group = raw["group"].as_str().unwrap().to_string();
        let name = raw["name"].as_str().unwrap().to_string();
        for old in raw["deprecated_names"].as_array().into_iter().flatten() {
            if let Some(old) = old.as_str() {
                deprecated.insert(key(&group, old), key(&group, &name));
            }
        }
        options.insert(key(&group, &name), NeutronOption { group, name, raw });
    }
    (options, deprecated)
}

#[test]
fn documented_neutron_facts_are_neutron_29s() {
    let doc = parse_doc();
    let (neutron, deprecated) = neutron_options();
    let specs: BTreeMap<Key, OptionSpec> = all_declared()
        .into_iter()
        .map(|s| (key(s.section, s.name), s))
        .collect();
    let mut problems = Vec::new();

    for row in &doc.read {
        let k = key(&row.section, &row.name);
        let at = format!("{DOC}:{}: [{}] {}", row.line, row.section, row.name);
        match neutron.get(&k) {
            None if row.neutron != "—" => problems.push(format!(
                "{at}: neutron-dhcp-agent 29 has no such option; write \"—\""
            )),
            None => {}
            Some(n) => {
                if row.neutron != n.default_cell() {
                    problems.push(format!(
                        "{at}: Neutron default {:?}, Neutron 29's is {:?}",
                        row.neutron,
                        n.default_cell()
                    ));
                }
                if row.differs == "same" {
                    if let Some(spec) = specs.get(&k) {
                        if !n.same_kind(spec) {
                            problems.push(format!(
                                "{at}: says \"same\", but Neutron declares it {} (min {}, max {}, choices {}) and Leasehold {}",
                                n.raw["type"], n.raw["min"], n.raw["max"], n.raw["choices"],
                                kind_cell(spec.kind)
                            ));
                        }
                    }
                }
            }
        }
    }

    let mut covered_options: BTreeSet<Key> = specs.keys().cloned().collect();
    let mut covered_sections: BTreeSet<String> = BTreeSet::new();
    for row in &doc.unsupported {
        for t in &row.targets {
            match t {
                Target::Option { section, name } => {
                    let k = key(section, name);
                    let at = format!("{DOC}:{}: [{section}] {name}", row.line);
                    match (neutron.get(&k), deprecated.get(&k)) {
                        (Some(n), _) => {
                            if row.targets.len() == 1
                                && row.neutron != VARIOUS
                                && row.neutron != n.default_cell()
                            {
                                problems.push(format!(
                                    "{at}: Neutron default {:?}, Neutron 29's is {:?}",
                                    row.neutron,
                                    n.default_cell()
                                ));
                            }
                        }
                        (None, Some(_)) => {}
                        (None, None) => problems.push(format!(
                            "{at}: neutron-dhcp-agent 29 registers no such option"
                        )),
                    }
                    covered_options.insert(k);
                }
                Target::Section(section) => {
                    let normal = normalize_section(section);
                    if !neutron.keys().any(|(g, _)| *g == normal) {
                        problems.push(format!(
                            "{DOC}:{}: neutron-dhcp-agent 29 registers nothing in [{section}]",
                            row.line
                        ));
                    }
                    covered_sections.insert(normal);
                }
            }
        }
    }
    let mut uncovered = Vec::new();
    let all = neutron
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                format!("`[{}] {}`", n.group, n.name),
                n.default_cell(),
            )
        })
        .chain(deprecated.iter().map(|(old, new)| {
            (
                old.clone(),
                format!("`[{}] {}`", old.0, old.1),
                format!("(old name of {})", new.1),
            )
        }));
    for (k, cell, default) in all {
        if !covered_options.contains(&k) && !covered_sections.contains(&k.0) {
            uncovered.push(format!("| {cell} | {default} | ? | ? |"));
        }
    }
    if !uncovered.is_empty() {
        problems.push(format!(
            "options neutron-dhcp-agent 29 registers that {DOC} neither reads nor lists under {UNSUPPORTED_HEADING:?}:\n{}",
            uncovered.join("\n")
        ));
    }
    fail_on(problems);
}
