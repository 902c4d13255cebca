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
