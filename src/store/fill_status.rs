//! Where a target fill stands in the journal. Read back typed, so that a decision taken on it (copy
//! it again after a reorg, count it as a copy, refuse a close) never compares spellings.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};

/// A fill's status, as the journal's `fills.status` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FillStatus {
    /// Journaled, not decided yet (or its order's outcome is still unknown).
    Pending,
    /// Copied.
    Executed,
    /// Not copied, for the reason beside it.
    Rejected,
    /// Gone from the chain (a reorg, or a pending transaction never mined) before we acted.
    Withdrawn,
}

impl FillStatus {
    /// As the journal spells it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Executed => "executed",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    /// Parses the journal's spelling.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Executed, Self::Rejected, Self::Withdrawn].into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for FillStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A spelling the journal never writes is a corrupt row: the read fails, it is never guessed.
impl FromSql for FillStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Self::parse(text).ok_or_else(|| {
            FromSqlError::Other(Box::new(super::StoreError::Corrupt { column: "fills.status", value: text.to_owned() }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_and_nothing_else_does() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for s in [FillStatus::Pending, FillStatus::Executed, FillStatus::Rejected, FillStatus::Withdrawn] {
            let back: FillStatus = c.query_row("SELECT ?1", [s.as_str()], |r| r.get(0)).unwrap();
            assert_eq!(back, s);
        }
        for bad in ["", "Pending", "EXECUTED", "done"] {
            let err = c.query_row("SELECT ?1", [bad], |r| r.get::<_, FillStatus>(0)).unwrap_err();
            assert!(err.to_string().contains("corrupt value in column fills.status"), "{bad:?}: {err}");
        }
    }
}
