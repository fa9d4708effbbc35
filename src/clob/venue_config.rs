//! What the CLOB connection needs, from `[live]` and the environment: the host, the signing key
//! (a secret, never printed: `Debug` leaves it out), the signature type and funder, the order
//! type and the pacing.

use std::time::Duration;

use alloy::primitives::Address;

use crate::clob::account::{OrderKind, SigType};

/// How to reach and sign for the CLOB.
#[derive(Clone)]
pub struct VenueConfig {
    /// Base URL.
    pub host: String,
    /// The signing key (never logged).
    pub private_key: secrecy::SecretString,
    /// Signature type.
    pub sig: SigType,
    /// Configured funder, if any.
    pub funder: Option<Address>,
    /// Order type for copies.
    pub order_kind: OrderKind,
    /// GTD lifetime, seconds.
    pub gtd_expiry_s: u64,
    /// Per-call timeout.
    pub timeout: Duration,
    /// Calls per second.
    pub requests_per_second: u32,
    /// Where the region check asks (Polymarket's site unless overridden).
    pub geoblock_host: Option<String>,
}

impl VenueConfig {
    /// The connection settings from the environment and `[live]`.
    ///
    /// # Errors
    /// When PRIVATE_KEY is missing or a `[live]` value is invalid.
    pub fn from_settings(s: &crate::config::Settings, env: &crate::config::Env) -> Result<Self, String> {
        let Some(key) = env.private_key.clone() else {
            return Err(
                "PRIVATE_KEY is not set: live trading and doctor need the key that signs orders (see .env.template)"
                    .into(),
            );
        };
        let sig = SigType::parse(&s.live.signature_type).map_err(|e| format!("live.signature_type {e}"))?;
        let order_kind = OrderKind::parse(&s.live.order_type).map_err(|e| format!("live.order_type {e}"))?;
        let funder = if s.live.funder.is_empty() {
            None
        } else {
            Some(
                s.live
                    .funder
                    .parse()
                    .map_err(|_| format!("live.funder {}", crate::config::problem::not_an_address(&s.live.funder)))?,
            )
        };
        Ok(Self {
            host: env.clob_host.clone(),
            private_key: key,
            sig,
            funder,
            order_kind,
            gtd_expiry_s: s.live.gtd_expiry_s,
            timeout: Duration::from_millis(s.live.request_timeout_ms),
            requests_per_second: s.live.requests_per_second,
            geoblock_host: env.geoblock_url.clone(),
        })
    }
}

impl std::fmt::Debug for VenueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueConfig")
            .field("host", &crate::config::redact_url(&self.host))
            .field("sig", &self.sig)
            .field("funder", &self.funder)
            .finish_non_exhaustive()
    }
}
