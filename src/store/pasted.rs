//! Secrets pasted into a halt by a command that could not read them (an operator's user not
//! allowed the root-only environment file, no daemon answering): the command stored the reason as
//! typed, in the breaker and the events log. The daemon, which knows the secrets, cleans both when
//! it opens the journal, so that no backup or report of it carries them on.

use super::{Store, StoreResult};

impl Store {
    /// Cleans the stored breaker's reason and every event of the secrets this process knows, the
    /// old text overwritten on disk too (a backup copies the file's pages, free space included).
    /// Returns how many rows changed.
    ///
    /// # Errors
    /// On a database error.
    pub fn clean_pasted_secrets(&mut self) -> StoreResult<usize> {
        let secrets = crate::config::env::known_secrets();
        if secrets.is_empty() {
            return Ok(0);
        }
        // The text replaced is zeroed where it lay, not left in the page's free space.
        self.conn.pragma_update(None, "secure_delete", true)?;
        let cleaned = self.clean_each(&secrets);
        self.conn.pragma_update(None, "secure_delete", false)?;
        let changed = cleaned?;
        if changed > 0 {
            // The pages written since are copied into the file, and the log that held them emptied.
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(changed)
    }

    fn clean_each(&mut self, secrets: &[String]) -> StoreResult<usize> {
        let tx = self.conn.savepoint()?;
        let mut changed = 0;
        // One scan per secret, in SQL: the events of months are not read into memory at a start.
        for s in secrets {
            for (table, column) in [("breaker", "reason"), ("events", "message")] {
                changed += tx.execute(
                    &format!(
                        "UPDATE {table} SET {column} = replace({column}, ?1, '<redacted>') WHERE instr({column}, ?1) > 0"
                    ),
                    [s],
                )?;
            }
        }
        tx.commit()?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::BreakerState;
    use rusqlite::params;

    #[test]
    fn a_pasted_key_is_cleaned_from_the_breaker_and_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("j.db")).unwrap();
        let key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
        let halt = BreakerState {
            tripped: true,
            code: "manual".into(),
            reason: format!("pasted {key}"),
            by: "cli".into(),
            since_ms: crate::store::now_ms(),
            ..BreakerState::default()
        };
        s.set_breaker(&halt).unwrap();
        // An old event too: the halt asked again later moves the breaker's time past it.
        for at in [0, crate::store::now_ms()] {
            s.conn
                .execute(
                    "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'breaker_tripped', ?2)",
                    params![at, format!("halted: pasted {key}")],
                )
                .unwrap();
        }
        assert_eq!(s.clean_pasted_secrets().unwrap(), 0, "nothing known yet");
        crate::config::env::register_secrets([key]);
        assert_eq!(s.clean_pasted_secrets().unwrap(), 3);
        assert_eq!(s.breaker().unwrap().reason, "pasted <redacted>");
        let left: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM events WHERE message != 'halted: pasted <redacted>'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        assert_eq!(s.clean_pasted_secrets().unwrap(), 0, "once");
        drop(s);
        let bytes = std::fs::read(dir.path().join("j.db")).unwrap();
        let bare = key.trim_start_matches("0x").as_bytes();
        assert!(!bytes.windows(bare.len()).any(|w| w == bare), "the key is still in the file's bytes");
    }
}
