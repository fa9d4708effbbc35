//! One configuration problem: where it is (file, entry, field) and what is wrong.

use std::fmt;

use serde::Serialize;

/// A configuration problem, precise enough to fix without guessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file (or "environment") the problem is in.
    pub file: String,
    /// The entry, e.g. `wallets[2] (whale-1)`, when the problem is inside one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The field, e.g. `sizing.multiplier`.
    pub field: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl Problem {
    /// A problem in `file` at `field`.
    pub fn new(file: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { file: file.into(), entry: None, field: field.into(), message: message.into() }
    }

    /// The same problem, inside `entry`.
    #[must_use]
    pub fn in_entry(mut self, entry: impl Into<String>) -> Self {
        self.entry = Some(entry.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if let Some(e) = &self.entry {
            write!(f, "{e}: ")?;
        }
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Formats a list of problems, one per line.
#[must_use]
pub fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}
