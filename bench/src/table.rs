//! The markdown table every measurement adds rows to.

use std::fmt::Write;

/// One measured row: both systems' figures and their ratio.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// Leasehold's figure, as printed.
    pub ours: String,
    /// The reference's (or the floor's) figure, as printed.
    pub theirs: String,
    /// theirs / ours (how many times better Leasehold is), if both are numbers.
    pub ratio: Option<f64>,
    /// The goal, in words.
    pub goal: String,
    /// Whether the goal was met, when it can be said.
    pub met: Option<bool>,
}

impl Row {
    /// Two figures where less is better (times, sizes), shown by `show`;
    /// the goal is met when ours is at least `at_least` times better. A
    /// missing figure (that side failed) shows as "failed".
    pub fn lower_is_better(
        what: String,
        ours: Option<f64>,
        theirs: Option<f64>,
        show: impl Fn(f64) -> String,
        goal: &str,
        at_least: Option<f64>,
    ) -> Row {
        let ratio = match (ours, theirs) {
            (Some(a), Some(b)) if a > 0.0 => Some(b / a),
            _ => None,
        };
        let shown = |v: Option<f64>| v.map(&show).unwrap_or_else(|| "failed".into());
        Row {
            what,
            ours: shown(ours),
            theirs: shown(theirs),
            ratio,
            goal: goal.into(),
            met: at_least.and_then(|g| ratio.map(|q| q >= g)),
        }
    }

    /// Counts of something that should not happen (dnsmasq restarted); the
    /// goal is zero on our side.
    pub fn none_wanted(what: String, ours: Option<usize>, theirs: Option<usize>) -> Row {
        let shown = |v: Option<usize>| v.map_or_else(|| "failed".into(), |n| n.to_string());
        Row {
            what,
            ours: shown(ours),
            theirs: shown(theirs),
            ratio: None,
            goal: "0".into(),
            met: ours.map(|n| n == 0),
        }
    }
}

/// The rows of one run.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Adds a row and prints it at once (a long run shows progress).
    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  -> {}: leasehold {} | other {} | ratio {}",
            row.what,
            row.ours,
            row.theirs,
            ratio_text(row.ratio)
        );
        self.rows.push(row);
    }

    /// The table in markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("| measurement | Leasehold | reference / floor | ratio | goal | met |\n");
        out.push_str("|---|---:|---:|---:|---|---|\n");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.what,
                r.ours,
                r.theirs,
                ratio_text(r.ratio),
                r.goal,
                met
            );
        }
        out
    }
}

fn ratio_text(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.0}×"),
        Some(r) => format!("{r:.2}×"),
        None => "-".into(),
    }
}

/// A duration in seconds, printed with a unit that fits.
pub fn secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// A size in KiB, printed in MiB.
pub fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}
