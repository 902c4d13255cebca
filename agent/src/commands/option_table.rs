//! The option reference of `docs/configuration.md`, from the declarations:
//! every option the agent and its drivers read, with its kind and default
//! written the way the document writes them (`agent/tests/docs.rs` compares).

use leasehold_core::options::{OptionKind, OptionSpec, Options};
use leasehold_core::registry::Registry;

use crate::config::AGENT_OPTIONS;

/// Every option the agent reads with the drivers of `registry`, once each, by
/// section and name; where the agent and a driver both declare one, the
/// driver's declaration counts, as when the configuration is loaded.
pub fn declared_options(registry: &Registry) -> Vec<OptionSpec> {
    let mut options = Options::new();
    options.declare(AGENT_OPTIONS);
    options.declare(&registry.option_specs());
    options.specs().copied().collect()
}

/// The option as the document names it: `` `[SECTION] name` ``.
pub fn option_cell(spec: &OptionSpec) -> String {
    format!("`[{}] {}`", spec.section, spec.name)
}

/// A kind in words: `integer ≥ 1`, `one of respawn, exit`, …
pub fn kind_cell(kind: OptionKind) -> String {
    match kind {
        OptionKind::Str => "string".into(),
        OptionKind::Bool => "boolean".into(),
        OptionKind::List => "list".into(),
        OptionKind::Int { min, max } => match (min, max) {
            (None, None) => "integer".into(),
            (Some(min), None) => format!("integer ≥ {min}"),
            (None, Some(max)) => format!("integer ≤ {max}"),
            (Some(min), Some(max)) => format!("integer {min}–{max}"),
        },
        OptionKind::Float { min: None } => "number".into(),
        OptionKind::Float { min: Some(min) } => format!("number ≥ {min}"),
        OptionKind::Choice(choices) => format!("one of {}", choices.join(", ")),
    }
}

/// A default as the document writes it: `` `value` ``, `(empty)` or `(unset)`.
/// An unset default's cell may explain itself: `(unset: the hostname)`.
pub fn default_cell(default: Option<&str>) -> String {
    match default {
        None => "(unset)".into(),
        Some("") => "(empty)".into(),
        Some(value) => format!("`{value}`"),
    }
}

/// A table row with the facts the code knows (option, type, default) and
/// placeholders for the ones a person writes (Neutron's default, how it
/// differs, what it does): what to paste when an option is missing.
pub fn markdown_row(spec: &OptionSpec) -> String {
    format!(
        "| {} | {} | {} | ? | ? | {} |",
        option_cell(spec),
        kind_cell(spec.kind),
        default_cell(spec.default),
        spec.help
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(
            kind_cell(OptionKind::Int {
                min: Some(1),
                max: None
            }),
            "integer ≥ 1"
        );
        assert_eq!(
            kind_cell(OptionKind::Int {
                min: Some(-1),
                max: Some(9)
            }),
            "integer -1–9"
        );
        assert_eq!(
            kind_cell(OptionKind::Float { min: Some(0.0) }),
            "number ≥ 0"
        );
        assert_eq!(
            kind_cell(OptionKind::Choice(&["respawn", "exit"])),
            "one of respawn, exit"
        );
        assert_eq!(default_cell(None), "(unset)");
        assert_eq!(default_cell(Some("")), "(empty)");
        assert_eq!(default_cell(Some("br-int")), "`br-int`");
    }
}
