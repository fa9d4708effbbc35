//! `polycopy doctor`: checks a live setup end to end and explains each problem with its fix. Also
//! run at every live start, where a failure stops the start. Peer bots lose most of their users
//! to exactly these mistakes, reported as a bare HTTP error.

use std::fmt::Write as _;

use alloy::primitives::Address;
use rust_decimal::Decimal;

use crate::clob::account::{SigType, resolve_funder};
use crate::clob::public::{geoblocked, probe_version};
use crate::clob::venue::{Venue, VenueConfig, VenueError};

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but worth knowing.
    Warn,
    /// Live trading would fail.
    Fail,
    /// Not checked (an earlier failure, or turned off).
    Skipped,
}

/// One check's result, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it went.
    pub verdict: Verdict,
    /// What was found, and the fix when something is wrong.
    pub detail: String,
}

/// Every check, and the connection when the setup works.
#[derive(Debug)]
pub struct Diagnosis {
    /// Checks in order.
    pub checks: Vec<Check>,
    /// The authenticated connection (reused by the daemon).
    pub venue: Option<Venue>,
    /// The failed checks that failed only because the CLOB did not answer (timeouts, no
    /// connection, 5xx): a live daemon starts anyway and connects when it answers.
    pub unanswered: Vec<&'static str>,
}

impl Diagnosis {
    /// True when nothing failed.
    #[must_use]
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    /// True when something failed, and every failure was the CLOB not answering: the setup itself
    /// may be right, and the CLOB may be back in a minute.
    #[must_use]
    pub fn only_unanswered(&self) -> bool {
        !self.healthy()
            && self.checks.iter().filter(|c| c.verdict == Verdict::Fail).all(|c| self.unanswered.contains(&c.name))
    }

    /// True when something failed and every failure was the CLOB not answering or refusing the
    /// API credentials: a refusal a clock put right, or the CLOB recovering from an incident, can
    /// end, so a restart may work (every other failure is the setup's).
    #[must_use]
    pub fn only_credentials_or_unanswered(&self) -> bool {
        !self.healthy()
            && self
                .checks
                .iter()
                .filter(|c| c.verdict == Verdict::Fail)
                .all(|c| c.name == "credentials" || self.unanswered.contains(&c.name))
    }

    /// The checks as text, one per line, failures with their fix.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
                Verdict::Skipped => "skip",
            };
            let _ = writeln!(out, "[{mark}] {}: {}", c.name, c.detail);
        }
        out
    }
}

fn check(checks: &mut Vec<Check>, name: &'static str, verdict: Verdict, detail: impl Into<String>) {
    checks.push(Check { name, verdict, detail: detail.into() });
}

fn unreachable_fix(host: &str, e: &VenueError) -> String {
    format!(
        "cannot reach the CLOB at {}: {e}. Check CLOB_HOST (default https://clob.polymarket.com), this server's \
         DNS and outbound HTTPS, and https://status.polymarket.com",
        crate::config::redact_url(host)
    )
}

/// Every check, in the order it runs: a failure skips the ones after it.
const ORDER: [&str; 7] = ["signing key", "funder", "clob", "credentials", "balance", "allowances", "region"];

/// Records a failed check and marks every later one in [`ORDER`] as not checked.
fn fail_and_stop(checks: &mut Vec<Check>, name: &'static str, detail: impl Into<String>) -> Diagnosis {
    check(checks, name, Verdict::Fail, detail);
    for n in ORDER.iter().skip_while(|n| **n != name).skip(1) {
        check(checks, n, Verdict::Skipped, "not checked: fix the problem above first");
    }
    Diagnosis { checks: std::mem::take(checks), venue: None, unanswered: Vec::new() }
}

/// [`fail_and_stop`] for a call the CLOB answered with `e`, noting when it did not answer at all.
fn failed_call(checks: &mut Vec<Check>, name: &'static str, e: &VenueError, detail: String) -> Diagnosis {
    let mut d = fail_and_stop(checks, name, detail);
    if e.unanswered() {
        d.unanswered.push(name);
    }
    d
}

/// Runs every check against the CLOB named in `cfg`.
pub async fn diagnose(cfg: &VenueConfig, check_region: bool) -> Diagnosis {
    let mut checks = Vec::new();
    let venue = match connect(&mut checks, cfg).await {
        Ok(v) => v,
        Err(stopped) => return stopped,
    };
    let unanswered = collateral(&mut checks, &venue).await;
    region(&mut checks, cfg, check_region).await;
    Diagnosis { checks, venue: Some(venue), unanswered: unanswered.into_iter().collect() }
}

/// The key, the funder it implies, the CLOB's protocol version and the API credentials: each
/// needs the one before, so the first failure ends the diagnosis.
async fn connect(checks: &mut Vec<Check>, cfg: &VenueConfig) -> Result<Venue, Diagnosis> {
    let signer = match Venue::signer_address(secrecy::ExposeSecret::expose_secret(&cfg.private_key)) {
        Ok(a) => a,
        Err(e) => {
            return Err(fail_and_stop(
                checks,
                "signing key",
                format!("{e}: set PRIVATE_KEY to the 64 hex digits of the key (0x optional)"),
            ));
        }
    };
    check(checks, "signing key", Verdict::Ok, format!("signs as {signer:#x}"));
    match resolve_funder(cfg.sig, signer, cfg.funder) {
        Ok(f) => check(checks, "funder", Verdict::Ok, funder_text(cfg.sig, f)),
        Err(e) => return Err(fail_and_stop(checks, "funder", e)),
    }
    let host = crate::config::redact_url(&cfg.host);
    match probe_version(cfg).await {
        Ok(2) => check(checks, "clob", Verdict::Ok, format!("{host} answers, protocol version 2")),
        Ok(v) => {
            return Err(fail_and_stop(
                checks,
                "clob",
                format!(
                    "{host} speaks protocol version {v}, polycopy signs V2 orders (CLOB V2, live since 2026-04-28): check CLOB_HOST"
                ),
            ));
        }
        Err(e) => return Err(failed_call(checks, "clob", &e, unreachable_fix(&cfg.host, &e))),
    }
    // The API credentials are derived from the key (L1).
    match Venue::connect(cfg.clone()).await {
        Ok(v) => {
            check(checks, "credentials", Verdict::Ok, "API key derived from the signing key");
            Ok(v)
        }
        Err(e) => Err(failed_call(
            checks,
            "credentials",
            &e,
            format!(
                "the CLOB would not create or derive API credentials for this key: {e}. If the key has never \
                 logged in to polymarket.com, log in once (that registers the account); check the server clock"
            ),
        )),
    }
}

/// pUSD and the exchanges' allowances, as the CLOB sees them. Returns the check's name when it
/// failed only because the CLOB did not answer.
pub(crate) async fn collateral(checks: &mut Vec<Check>, venue: &Venue) -> Option<&'static str> {
    let (balance, allowances) = match venue.collateral().await {
        Ok(found) => found,
        Err(e) => {
            check(checks, "balance", Verdict::Fail, format!("the balance could not be read: {e}"));
            check(checks, "allowances", Verdict::Skipped, "not checked: the balance could not be read");
            return e.unanswered().then_some("balance");
        }
    };
    if balance > Decimal::ZERO {
        check(
            checks,
            "balance",
            Verdict::Ok,
            format!("{} pUSD available to {:#x}", balance_text(balance), venue.funder()),
        );
    } else {
        check(
            checks,
            "balance",
            Verdict::Warn,
            format!(
                "the funder {:#x} holds no pUSD: deposit on polymarket.com (or wrap USDC to pUSD) before buying",
                venue.funder()
            ),
        );
    }
    let missing = missing_allowances(&allowances);
    if missing.is_empty() {
        check(checks, "allowances", Verdict::Ok, "both V2 exchanges may spend the funder's pUSD");
    } else {
        check(
            checks,
            "allowances",
            Verdict::Fail,
            format!(
                "missing allowance: {} may not spend the funder's pUSD, so every order would be refused with \
                 \"not enough balance / allowance\". Approve pUSD for {} (polymarket.com: make any trade once, \
                 or send the approve transactions from the funder)",
                missing.join(" and "),
                if missing.len() > 1 { "them" } else { "it" }
            ),
        );
    }
    None
}

/// Whether this server's location may trade (skipped when the operator turned the check off).
async fn region(checks: &mut Vec<Check>, cfg: &VenueConfig, check_region: bool) {
    if !check_region {
        check(checks, "region", Verdict::Skipped, "live.check_geoblock = false");
        return;
    }
    match geoblocked(cfg).await {
        Ok(None) => check(checks, "region", Verdict::Ok, "this server's region may trade"),
        Ok(Some((country, region))) => check(
            checks,
            "region",
            Verdict::Fail,
            format!(
                "Polymarket does not accept orders from this server's location ({country} {region}): run polycopy \
                 where trading is permitted"
            ),
        ),
        Err(e) => check(checks, "region", Verdict::Warn, format!("the region check failed: {e}")),
    }
}

fn funder_text(sig: SigType, funder: Address) -> String {
    format!("trading from {funder:#x} (signature type {})", sig.name())
}

/// The CLOB reports the balance in base units (6 decimals): "5533220" is 5.53322 pUSD.
/// A pUSD amount the CLOB gives in base units (6 decimals), for people.
pub(crate) fn balance_text(base_units: Decimal) -> String {
    (base_units / Decimal::from(1_000_000)).normalize().to_string()
}

/// Reads an allowance as the chain holds it: a uint256 in base units. Polymarket's own approval flow
/// sets the maximum (78 digits), which no decimal type holds (docs/PROTOCOL.md §7).
fn allowance_units(text: &str) -> Option<alloy::primitives::U256> {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(hex) => alloy::primitives::U256::from_str_radix(hex, 16).ok(),
        None => alloy::primitives::U256::from_str_radix(t, 10).ok(),
    }
}

/// Names of the V2 exchanges without a non-zero allowance (an unreadable one is named as such).
fn missing_allowances(allowances: &std::collections::HashMap<Address, String>) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, neg) in [("the CTF Exchange V2", false), ("the NegRisk CTF Exchange V2", true)] {
        let Some(exchange) =
            polymarket_client_sdk_v2::contract_config(crate::clob::account::POLYGON, neg).and_then(|c| c.exchange_v2)
        else {
            continue;
        };
        match allowances.get(&exchange).map(|a| (a, allowance_units(a))) {
            Some((_, Some(v))) if !v.is_zero() => {}
            Some((a, None)) => {
                missing.push(format!("{name} ({exchange:#x}; the CLOB reported an unreadable allowance {a:?})"))
            }
            _ => missing.push(format!("{name} ({exchange:#x})")),
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnosis(checks: &[(&'static str, Verdict)], unanswered: &[&'static str]) -> Diagnosis {
        Diagnosis {
            checks: checks
                .iter()
                .map(|(name, verdict)| Check { name, verdict: *verdict, detail: String::new() })
                .collect(),
            venue: None,
            unanswered: unanswered.to_vec(),
        }
    }

    #[test]
    fn a_start_goes_on_only_when_every_failure_is_the_clob_not_answering() {
        use Verdict::{Fail, Ok as Fine, Skipped};
        let cases = [
            (diagnosis(&[("clob", Fail), ("credentials", Skipped)], &["clob"]), true, "the CLOB is down"),
            (diagnosis(&[("credentials", Fail)], &["credentials"]), true, "credentials unanswered"),
            (diagnosis(&[("credentials", Fail)], &[]), false, "credentials refused"),
            (diagnosis(&[("clob", Fine), ("balance", Fail)], &["balance"]), true, "balance unanswered"),
            (diagnosis(&[("balance", Fail), ("region", Fail)], &["balance"]), false, "and geoblocked"),
            (diagnosis(&[("allowances", Fail)], &[]), false, "an allowance missing"),
            (diagnosis(&[("clob", Fine)], &[]), false, "healthy: nothing to go on past"),
        ];
        for (d, want, why) in cases {
            assert_eq!(d.only_unanswered(), want, "{why}");
        }
    }
    use alloy::primitives::address;

    #[test]
    fn a_failure_skips_every_later_check_and_only_those() {
        let cases: [(&str, &[&str]); 4] = [
            ("signing key", &["funder", "clob", "credentials", "balance", "allowances", "region"]),
            ("funder", &["clob", "credentials", "balance", "allowances", "region"]),
            ("clob", &["credentials", "balance", "allowances", "region"]),
            ("credentials", &["balance", "allowances", "region"]),
        ];
        for (failed, skipped) in cases {
            let mut checks = vec![Check { name: "earlier", verdict: Verdict::Ok, detail: String::new() }];
            let d = fail_and_stop(&mut checks, ORDER.iter().find(|n| **n == failed).unwrap(), "why");
            assert!(checks.is_empty(), "the checks moved into the diagnosis");
            assert!(d.venue.is_none() && !d.healthy());
            assert_eq!(d.checks[0].verdict, Verdict::Ok);
            assert_eq!((d.checks[1].name, d.checks[1].verdict), (failed, Verdict::Fail));
            let rest: Vec<_> = d.checks[2..].iter().map(|c| (c.name, c.verdict)).collect();
            let want: Vec<_> = skipped.iter().map(|n| (*n, Verdict::Skipped)).collect();
            assert_eq!(rest, want, "after {failed}");
        }
    }

    #[test]
    fn allowances_must_cover_both_v2_exchanges() {
        let std_ex = address!("E111180000d2663C0091e4f400237545B87B996B");
        let neg_ex = address!("e2222d279d744050d28e00520010520000310F59");
        let m = |pairs: &[(Address, &str)]| pairs.iter().map(|(a, v)| (*a, (*v).to_owned())).collect();
        assert!(missing_allowances(&m(&[(std_ex, "1000"), (neg_ex, "5")])).is_empty());
        let miss = missing_allowances(&m(&[(std_ex, "1000"), (neg_ex, "0")]));
        assert_eq!(miss.len(), 1);
        assert!(miss[0].contains("NegRisk"));
        assert_eq!(missing_allowances(&m(&[])).len(), 2);
        // Polymarket's own approval sets the uint256 maximum: 78 digits.
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert!(missing_allowances(&m(&[(std_ex, max), (neg_ex, max)])).is_empty());
        assert!(missing_allowances(&m(&[(std_ex, "0xffffffffffffffff"), (neg_ex, max)])).is_empty());
        let bad = missing_allowances(&m(&[(std_ex, "lots"), (neg_ex, max)]));
        assert!(bad.len() == 1 && bad[0].contains("unreadable"), "{bad:?}");
    }
}
