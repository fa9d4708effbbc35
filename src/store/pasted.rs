//! Secrets pasted into a halt by a command that could not read them (an operator's user not
//! allowed the root-only environment file, no daemon answering): the command stored the reason as
//! typed, in the breaker and the events log. The daemon, which knows the secrets, cleans both when
//! it opens the journal, so that no backup or report of it carries them on.

use rusqlite::params;

use super::{Store, StoreResult};

/// How far before the breaker's time the events of its halt are looked for (the command writes
/// the breaker and its event in one go; a margin for a halt asked again).
const EVENTS_BEFORE_MS: i64 = 60_000;

impl Store {
    /// Cleans the stored breaker's reason, and the events written since a minute before it, of
    /// the secrets this process knows. Returns how many rows changed.
    ///
    /// # Errors
    /// On a database error.
    pub fn clean_pasted_secrets(&mut self) -> StoreResult<usize> {
        let tx = self.conn.savepoint()?;
        let (reason, since_ms): (String, i64) =
            match tx.query_row("SELECT reason, max(since_ms, halt_asked_ms) FROM breaker WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            }) {
                Ok(found) => found,
                Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(0),
                Err(e) => return Err(e.into()),
            };
        let mut changed = 0;
        let clean = crate::config::env::redact(&reason);
        if clean != reason {
            changed += tx.execute("UPDATE breaker SET reason = ?1 WHERE id = 1", [&clean])?;
        }
        let events: Vec<(i64, String)> = {
            let mut st = tx.prepare("SELECT id, message FROM events WHERE at_ms >= ?1")?;
            st.query_map([since_ms.saturating_sub(EVENTS_BEFORE_MS)], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (id, message) in events {
            let clean = crate::config::env::redact(&message);
            if clean != message {
                changed += tx.execute("UPDATE events SET message = ?1 WHERE id = ?2", params![clean, id])?;
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

    #[test]
    fn a_pasted_key_is_cleaned_from_the_breaker_and_its_events() {
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
        s.conn
            .execute(
                "INSERT INTO events (at_ms, kind, message) VALUES (?1, 'breaker_tripped', ?2)",
                params![crate::store::now_ms(), format!("halted: pasted {key}")],
            )
            .unwrap();
        assert_eq!(s.clean_pasted_secrets().unwrap(), 0, "nothing known yet");
        crate::config::env::register_secrets([key]);
        assert_eq!(s.clean_pasted_secrets().unwrap(), 2);
        assert_eq!(s.breaker().unwrap().reason, "pasted <redacted>");
        let message: String = s.conn.query_row("SELECT message FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(message, "halted: pasted <redacted>");
        assert_eq!(s.clean_pasted_secrets().unwrap(), 0, "once");
    }
}
