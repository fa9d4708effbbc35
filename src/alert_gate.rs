//! Who may raise an alert through `POST /alert`, and how often.
//!
//! The endpoint relays to every sink (Telegram included) and is journaled, so an open one lets any
//! local process, or a web page through a cross-site POST, flood the journal and the Telegram
//! queue until a real breaker alert waits behind the noise. Two guards:
//! - a token: `<journal>.alert-token`, created by the daemon (mode 0640, the journal's owner and
//!   group) and read by the scripts; a browser cannot add the `Authorization` header cross-site
//!   without a CORS preflight, which this server never grants;
//! - a rate: a small burst, then one a minute; what is refused is counted and said with the next
//!   alert that gets through, so nothing is silently lost and storage stays bounded.

use std::io::Write as _;
use std::num::NonZeroU32;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret as _, SecretString};

/// Alerts accepted at once before the pace applies.
const BURST: u32 = 5;
/// Shortest token accepted from the file (hex characters).
const MIN_TOKEN_LEN: usize = 32;

/// The token file of a journal.
#[must_use]
pub fn token_path(journal: &Path) -> PathBuf {
    let mut p = journal.as_os_str().to_owned();
    p.push(".alert-token");
    PathBuf::from(p)
}

/// Reads the journal's alert token, creating it on first use.
///
/// # Errors
/// When the file cannot be created or read, or holds too short a token.
pub fn load_or_create(path: &Path) -> std::io::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let t = text.trim();
            if t.len() < MIN_TOKEN_LEN || !t.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(std::io::Error::other(format!(
                    "{} does not hold a usable token (at least {MIN_TOKEN_LEN} letters or digits): delete it and the daemon makes a new one",
                    path.display()
                )));
            }
            Ok(SecretString::from(t.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(std::io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))),
    }
}

fn create(path: &Path) -> std::io::Result<SecretString> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // The service user writes it; its group (operators, the scripts) reads it; nobody else.
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(path)?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(SecretString::from(token))
}

/// Why an alert was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or a wrong token.
    Unauthorized,
    /// Over the pace.
    TooMany,
}

/// The token check and the pace, shared by every connection.
#[derive(Debug)]
pub struct AlertGate {
    token: SecretString,
    limiter: DefaultDirectRateLimiter,
    refused: AtomicU64,
}

impl AlertGate {
    /// A gate for `token`: a burst of a few alerts, then one a minute.
    #[must_use]
    pub fn new(token: SecretString) -> Self {
        let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
        Self {
            token,
            limiter: RateLimiter::direct(Quota::per_minute(NonZeroU32::MIN).allow_burst(burst)),
            refused: AtomicU64::new(0),
        }
    }

    /// Checks the `Authorization` header's value and the pace. On success returns how many alerts
    /// were refused by the pace since the last one that got through.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn admit(&self, authorization: Option<&[u8]>) -> Result<u64, Refusal> {
        if !self.authorized(authorization) {
            return Err(Refusal::Unauthorized);
        }
        if self.limiter.check().is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::TooMany);
        }
        Ok(self.refused.swap(0, Ordering::Relaxed))
    }
}

impl AlertGate {
    /// Whether the `Authorization` header's value carries the token (the pace is not touched).
    #[must_use]
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        let given = authorization.and_then(|h| h.strip_prefix(b"Bearer ")).unwrap_or_default();
        same(given, self.token.expose_secret().as_bytes())
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_private_then_read_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = token_path(&dir.path().join("journal.db"));
        assert!(path.ends_with("journal.db.alert-token"));
        let t = load_or_create(&path).unwrap();
        assert_eq!(t.expose_secret().len(), 64);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(load_or_create(&path).unwrap().expose_secret(), t.expose_secret());
        std::fs::write(&path, "short\n").unwrap();
        assert!(load_or_create(&path).unwrap_err().to_string().contains("delete it"));
    }

    #[test]
    fn only_the_token_passes_and_then_only_at_the_pace() {
        let gate = AlertGate::new(SecretString::from("a".repeat(64)));
        let good = format!("Bearer {}", "a".repeat(64));
        let cases: [(Option<&str>, Result<u64, Refusal>); 4] = [
            (None, Err(Refusal::Unauthorized)),
            (Some("Bearer nope"), Err(Refusal::Unauthorized)),
            (Some(&format!("Bearer {}", "b".repeat(64))), Err(Refusal::Unauthorized)),
            (Some(&good), Ok(0)),
        ];
        for (h, want) in cases {
            assert_eq!(gate.admit(h.map(str::as_bytes)), want, "{h:?}");
        }
        for _ in 1..BURST {
            assert_eq!(gate.admit(Some(good.as_bytes())), Ok(0));
        }
        assert_eq!(gate.admit(Some(good.as_bytes())), Err(Refusal::TooMany));
        assert_eq!(gate.admit(Some(good.as_bytes())), Err(Refusal::TooMany));
        assert_eq!(gate.admit(Some(b"Bearer x")), Err(Refusal::Unauthorized), "a wrong token is not counted");
    }
}
