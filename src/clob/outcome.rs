//! What an answer of the CLOB means for our copy: pure, so every message the exchange is known to
//! send is pinned by a table test. Every outcome carries a stable code for the journal.

use rust_decimal::Decimal;

/// The meaning of one `POST /order` attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    /// Matched now, fully or partly: what we gave and what we got, in shares/pUSD (decimal).
    Matched {
        /// What we gave (pUSD for a BUY, shares for a SELL).
        making: Decimal,
        /// What we got.
        taking: Decimal,
    },
    /// Resting on the book (GTD).
    Live,
    /// Accepted for delayed matching: look it up later.
    Delayed,
    /// Accepted, nothing matched (FAK/FOK with no liquidity).
    NoFill {
        /// The exchange's words.
        message: String,
    },
    /// Refused for good.
    Rejected {
        /// Stable code.
        code: &'static str,
        /// The exchange's words.
        message: String,
        /// Whether it counts toward the breaker's error streak (our account's problem, not the
        /// order's).
        counts_as_error: bool,
    },
    /// Refused for now: the same signed order may be sent again after a wait.
    Retry {
        /// Stable code (`engine_restarting`, `trading_paused`, `rate_limited`, `clob_unavailable`).
        code: &'static str,
        /// The exchange's words.
        message: String,
        /// The wait the answer asked for, when it said.
        wait_ms: Option<u64>,
    },
    /// Our API credentials were refused.
    Unauthorized {
        /// The exchange's words.
        message: String,
    },
    /// The exchange already has this very order ("Duplicated"): its fate is found by lookups and on
    /// chain; it is never sent again.
    Duplicate {
        /// What the exchange said.
        message: String,
    },
    /// We cannot know whether the exchange has the order: look it up, never post a new one.
    Unknown {
        /// What happened.
        message: String,
    },
}

impl PostOutcome {
    /// Whether this answer refuses the order sent (for good, for now, or our credentials): said of
    /// the same order sent again, it tells nothing of what an earlier send did.
    #[must_use]
    pub const fn refuses(&self) -> bool {
        matches!(self, Self::NoFill { .. } | Self::Rejected { .. } | Self::Retry { .. } | Self::Unauthorized { .. })
    }
}

/// Every code a refused order can be journaled with.
pub const REFUSAL_CODES: [&str; 16] = [
    "insufficient_balance",
    "below_minimum",
    "invalid_price",
    "closed_only",
    "market_closed",
    "invalid_signature",
    "exchange_rejected",
    "engine_restarting",
    "rate_limited",
    "trading_paused",
    "stale",
    "invalid_order",
    "auth_error",
    "price_out_of_band",
    "order_not_built",
    "clob_unavailable",
];

/// The stable code spelled `code` (as journaled), `exchange_rejected` for anything else.
#[must_use]
pub fn stable_code(code: &str) -> &'static str {
    REFUSAL_CODES.iter().find(|c| **c == code).copied().unwrap_or("exchange_rejected")
}

/// The error text inside `{"error": "..."}`, or the body itself.
#[must_use]
pub fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").or_else(|| v.get("errorMsg")).and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().chars().take(300).collect())
}

/// The code of a refusal for the funder's balance or allowance: a BUY's moves trading to reducing.
pub const INSUFFICIENT_BALANCE: &str = "insufficient_balance";

/// A refusal message (HTTP 400, or `success: false`) → its outcome.
#[must_use]
pub fn classify_refusal(message: &str) -> PostOutcome {
    let m = message.to_ascii_lowercase();
    let rejected = |code, counts_as_error| PostOutcome::Rejected { code, message: message.to_owned(), counts_as_error };
    if m.contains("no orders found to match") || m.contains("fully filled or killed") || m.contains("no match") {
        PostOutcome::NoFill { message: message.to_owned() }
    } else if m.contains("duplicated") || m.contains("already exists") {
        // The exchange has this very order: what became of it is found by looking it up.
        PostOutcome::Duplicate { message: format!("the exchange already has this order ({message})") }
    } else if m.contains("not enough balance") || m.contains("allowance") {
        rejected(INSUFFICIENT_BALANCE, true)
    } else if m.contains("lower than the minimum") || m.contains("min size") {
        // "Size (1.08) lower than the minimum: 5"; "invalid amount for a marketable BUY order
        // ($0.99), min size: $1": the order's size, not the account or the exchange.
        rejected("below_minimum", false)
    } else if m.contains("tick size") {
        rejected("invalid_price", false)
    } else if m.contains("closed only") || m.contains("close only") {
        rejected("closed_only", true)
    } else if m.contains("not accepting orders") || m.contains("market is closed") || m.contains("closed market") {
        rejected("market_closed", false)
    } else if m.contains("invalid signature") || m.contains("order signer") {
        rejected("invalid_signature", true)
    } else {
        rejected("exchange_rejected", true)
    }
}

/// A wait named in a 429 answer ("retry after 3 seconds", "retry in 500ms", `"retry_after": 3`),
/// in ms, at most ten minutes. Only a number right after "retry" (and "after" or "in") is a
/// wait: "retry later, request 98765" names none. A fraction of a second rounds up.
fn named_wait_ms(message: &str) -> Option<u64> {
    let m = message.to_ascii_lowercase();
    let i = m.find("retry")?;
    let rest = m[i + "retry".len()..].trim_start_matches(['_', '-', ' ']);
    let rest = rest.strip_prefix("after").or_else(|| rest.strip_prefix("in ")).unwrap_or(rest);
    let rest = rest.trim_start_matches([' ', ':', '"', '\'', '=']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let unit = &rest[digits.len()..];
    let fraction = unit.starts_with('.');
    let unit = unit.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit()).trim_start();
    let ms = if unit.starts_with("ms") || unit.starts_with("milli") {
        n + u64::from(fraction)
    } else {
        (n + u64::from(fraction)).saturating_mul(1_000)
    };
    Some(ms.min(600_000))
}

/// An HTTP error answer of `POST /order` → its outcome.
#[must_use]
pub fn classify_status(status: u16, body: &str) -> PostOutcome {
    let message = error_text(body);
    match status {
        400 | 422 => classify_refusal(&message),
        // The SDK turns an answer it cannot read as an order's (a `null` body) into a 404: the
        // order may have been taken (docs/PROTOCOL.md §7), so it is looked up, never refused.
        404 => PostOutcome::Unknown { message: format!("HTTP 404: {message}") },
        401 | 403 => PostOutcome::Unauthorized { message },
        425 => PostOutcome::Retry { code: "engine_restarting", message, wait_ms: None },
        429 => PostOutcome::Retry { code: "rate_limited", wait_ms: named_wait_ms(&message), message },
        503 => PostOutcome::Retry { code: "trading_paused", message, wait_ms: None },
        // 500, 502, 504...: the order may have been taken before the failure.
        _ => PostOutcome::Unknown { message: format!("HTTP {status}: {message}") },
    }
}

/// A `200` answer of `POST /order` → its outcome.
#[must_use]
pub fn classify_answer(
    success: bool,
    error_msg: Option<&str>,
    status: &str,
    making: Decimal,
    taking: Decimal,
) -> PostOutcome {
    let err = error_msg.unwrap_or("").trim();
    if !success {
        return classify_refusal(if err.is_empty() { "refused without a message" } else { err });
    }
    match status.to_ascii_lowercase().as_str() {
        // "matched" with an amount missing (the SDK reads an empty one as 0), on either side, says
        // something matched without saying what: not a no-fill, and the exchange has the order.
        // The executor sees amounts that do not fit, looks it up, books it from our fill on chain,
        // and never sends it again (a lookup answering null included).
        "matched" => PostOutcome::Matched { making, taking },
        "unmatched" | "canceled" => PostOutcome::NoFill {
            message: if err.is_empty() { format!("order {status}, nothing matched") } else { err.to_owned() },
        },
        "live" => PostOutcome::Live,
        "delayed" => PostOutcome::Delayed,
        other => PostOutcome::Unknown { message: format!("unexpected order status {other:?}") },
    }
}

/// What a lookup (`GET /data/order/{id}`) says became of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The exchange never got it: the same signed order may be sent.
    NotFound,
    /// Finished: this many shares matched (possibly 0).
    Done {
        /// Shares matched.
        matched: Decimal,
    },
    /// Still working (live or delayed).
    Pending,
    /// Matched, by the exchange's word, with no size said (a matched size of 0): as for a POST
    /// answered so, not a no-fill. Our fill on chain says how much.
    Unsized,
}

/// A lookup's status the SDK does not name, in the words `classify_lookup` takes: the documented
/// `CANCELED_MARKET_RESOLVED` (a resting order cancelled when its market resolved) and `INVALID`
/// are final, as a cancel is (what matched before stays booked); the `ORDER_STATUS_`-prefixed
/// form an older API version gave reads as its plain name. Anything else is `"unknown"`, looked
/// up again.
#[must_use]
pub fn other_status(raw: &str) -> &'static str {
    let s = raw.trim().to_ascii_uppercase();
    let s = s.strip_prefix("ORDER_STATUS_").unwrap_or(&s);
    match s {
        "LIVE" => "live",
        "DELAYED" => "delayed",
        "MATCHED" => "matched",
        "UNMATCHED" => "unmatched",
        "CANCELED" | "CANCELLED" | "CANCELED_MARKET_RESOLVED" | "CANCELLED_MARKET_RESOLVED" | "INVALID" => "canceled",
        _ => "unknown",
    }
}

/// A found order's status and matched size → its outcome.
#[must_use]
pub fn classify_lookup(status: &str, size_matched: Decimal) -> LookupOutcome {
    match status.to_ascii_lowercase().as_str() {
        "matched" if size_matched <= Decimal::ZERO => LookupOutcome::Unsized,
        "matched" | "canceled" | "unmatched" => LookupOutcome::Done { matched: size_matched },
        // Live, delayed, or a status we do not know: not final, looked up again.
        _ => LookupOutcome::Pending,
    }
}

/// How long after its send a market order held by a market's matching delay may still match:
/// matches were reported up to 43 s after the POST (docs/PROTOCOL.md §7).
pub const MATCHING_DELAY_MAX_S: u64 = 60;

/// True when an order whose fate the CLOB never told us can no longer have filled unseen: its last
/// chance to match (a FAK or FOK order matches when it arrives or never, so its last send, or the
/// end of a matching delay when the exchange said it `held` it; a GTD order rests until its
/// expiry) plus the time a match takes to settle on chain is behind the chain
/// as journaled (`chain_read_s`, with our own fills). With no fill of ours on chain by then, it did
/// not fill; a match that never settles would be taken out of the books at that point anyway. An
/// order with no expiry that may rest never passes this point. All times are unix seconds.
///
/// The send is stamped by this host's clock and the chain by its blocks': the earlier of the chain
/// as read and this host's `now_s` is taken, so a host clock running behind the chain never makes
/// the settlement time look passed before it has.
#[must_use]
pub fn past_any_fill(
    order_type: &str,
    held: bool,
    last_sent_s: u64,
    expiration_s: u64,
    settle_within_s: u64,
    chain_read_s: u64,
    now_s: u64,
) -> bool {
    let last_chance_s = match order_type.to_ascii_uppercase().as_str() {
        "FAK" | "FOK" if held => last_sent_s.saturating_add(MATCHING_DELAY_MAX_S),
        "FAK" | "FOK" => last_sent_s,
        "GTD" if expiration_s > 0 => expiration_s.max(last_sent_s),
        _ => return false,
    };
    chain_read_s.min(now_s) >= last_chance_s.saturating_add(settle_within_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_past_any_fill_once_the_chain_is_read_beyond_its_last_chance_and_settlement() {
        // (type, last sent, expiry, settle within, chain read through, past any fill); this
        // host's clock far ahead
        for (kind, sent, expiry, within, chain, want) in [
            ("FAK", 1_000, 0, 600, 1_599, false),
            ("FAK", 1_000, 0, 30, 1_030, true),
            ("FAK", 1_000, 0, 600, 1_600, true),
            ("fok", 1_000, 0, 600, 5_000, true),
            ("FAK", 1_000, 0, 600, 0, false),
            // A GTD order can match until it expires.
            ("GTD", 1_000, 3_000, 600, 1_600, false),
            ("GTD", 1_000, 3_000, 600, 3_600, true),
            // Sent again after its expiry (refused then): the send is the last chance.
            ("GTD", 4_000, 3_000, 600, 4_599, false),
            ("GTD", 0, 0, 600, u64::MAX, false),
            ("GTC", 1_000, 0, 600, u64::MAX, false),
            ("FAK", u64::MAX, 0, 600, u64::MAX, true),
        ] {
            assert_eq!(
                past_any_fill(kind, false, sent, expiry, within, chain, u64::MAX),
                want,
                "{kind} {sent} {expiry} {within} {chain}"
            );
        }
    }

    #[test]
    fn a_host_clock_behind_the_chain_does_not_end_the_wait_early() {
        // Sent at 1,000 by this host's clock, which runs 300 s behind the chain's blocks.
        // (this host's clock now, past any fill)
        for (now, want) in [(1_100, false), (1_599, false), (1_600, true)] {
            assert_eq!(past_any_fill("FAK", false, 1_000, 0, 600, 1_900, now), want, "now {now}");
        }
    }

    #[test]
    fn a_market_order_held_by_a_matching_delay_may_match_until_the_delay_ends() {
        // (type, held, chain read through, past any fill): sent at 1,000, settled within 30 s
        for (kind, held, chain, want) in [
            ("FAK", false, 1_030, true),
            ("FAK", true, 1_030, false),
            ("FAK", true, 1_089, false),
            ("FAK", true, 1_090, true),
            ("FOK", true, 1_089, false),
            // A GTD order's expiry decides, held or not.
            ("GTD", true, 3_029, false),
            ("GTD", true, 3_030, true),
        ] {
            assert_eq!(past_any_fill(kind, held, 1_000, 3_000, 30, chain, u64::MAX), want, "{kind} {held} {chain}");
        }
    }

    fn code(o: &PostOutcome) -> &'static str {
        match o {
            PostOutcome::Matched { .. } => "matched",
            PostOutcome::Live => "live",
            PostOutcome::Delayed => "delayed",
            PostOutcome::NoFill { .. } => "no_fill",
            PostOutcome::Rejected { code, .. } | PostOutcome::Retry { code, .. } => code,
            PostOutcome::Unauthorized { .. } => "unauthorized",
            PostOutcome::Duplicate { .. } => "duplicate",
            PostOutcome::Unknown { .. } => "unknown",
        }
    }

    #[test]
    fn every_known_answer_maps_to_its_code() {
        for (status, body, want) in [
            (400, r#"{"error":"not enough balance / allowance"}"#, "insufficient_balance"),
            (400, r#"{"error":"Size (1.5) lower than the minimum: 5"}"#, "below_minimum"),
            (400, r#"{"error":"invalid amount for a marketable BUY order ($0.99), min size: $1"}"#, "below_minimum"),
            (400, r#"{"error":"order 0xab breaks minimum tick size rule: 0.01"}"#, "invalid_price"),
            (400, r#"{"error":"order 0xab is invalid. Duplicated."}"#, "duplicate"),
            (400, r#"{"error":"order couldn't be fully filled. FOK orders are fully filled or killed."}"#, "no_fill"),
            (400, r#"{"error":"no orders found to match with FAK order"}"#, "no_fill"),
            (400, r#"{"error":"address in closed only mode"}"#, "closed_only"),
            (400, r#"{"error":"the market is not accepting orders"}"#, "market_closed"),
            (400, r#"{"error":"something new"}"#, "exchange_rejected"),
            (401, r#"{"error":"Unauthorized/Invalid api key"}"#, "unauthorized"),
            (425, r#"{"error":"too early"}"#, "engine_restarting"),
            (429, r#"{"error":"Too Many Requests"}"#, "rate_limited"),
            (503, r#"{"error":"trading is currently cancel-only"}"#, "trading_paused"),
            (500, "oops", "unknown"),
            (502, "<html>bad gateway</html>", "unknown"),
            (404, "Unable to find requested resource", "unknown"),
            (422, r#"{"error":"something new"}"#, "exchange_rejected"),
        ] {
            assert_eq!(code(&classify_status(status, body)), want, "{status} {body}");
        }
    }

    /// A refusal journaled as `code: message` is read back with the same code after a restart.
    #[test]
    fn every_refusal_code_reads_back() {
        for status in [400, 401, 425, 429, 503] {
            for body in
                [r#"{"error":"not enough balance / allowance"}"#, r#"{"error":"address in closed only mode"}"#, "x"]
            {
                if let PostOutcome::Rejected { code, .. } | PostOutcome::Retry { code, .. } =
                    classify_status(status, body)
                {
                    assert_eq!(stable_code(code), code);
                }
            }
        }
        for code in ["stale", "auth_error", "below_minimum"] {
            assert_eq!(stable_code(code), code);
        }
        assert_eq!(stable_code("something else"), "exchange_rejected");
    }

    #[test]
    fn balance_errors_count_toward_the_breaker_but_order_errors_do_not() {
        let counts = |b: &str| match classify_status(400, b) {
            PostOutcome::Rejected { counts_as_error, .. } => counts_as_error,
            other => panic!("{other:?}"),
        };
        assert!(counts(r#"{"error":"not enough balance / allowance"}"#));
        assert!(!counts(r#"{"error":"Size (1) lower than the minimum: 5"}"#));
        assert!(!counts(r#"{"error":"invalid amount for a marketable BUY order ($0.99), min size: $1"}"#));
    }

    #[test]
    fn a_429_wait_is_read_when_the_answer_names_one() {
        assert_eq!(
            classify_status(429, r#"{"error":"rate limited, retry after 3 seconds"}"#),
            PostOutcome::Retry {
                code: "rate_limited",
                message: "rate limited, retry after 3 seconds".into(),
                wait_ms: Some(3_000)
            }
        );
        // (the answer's text, the wait read, ms)
        for (text, want) in [
            ("Too Many Requests", None),
            ("retry after 3 seconds", Some(3_000)),
            ("Retry-After: 2", Some(2_000)),
            (r#"{"retry_after": 4}"#, Some(4_000)),
            ("retry in 500ms", Some(500)),
            ("retry after 1.5 s", Some(2_000)),
            ("retry later, request 98765", None),
            ("retry after 86400 seconds", Some(600_000)),
        ] {
            let PostOutcome::Retry { wait_ms, .. } = classify_status(429, text) else { panic!("{text}") };
            assert_eq!(wait_ms, want, "{text}");
        }
    }

    #[test]
    fn success_answers_by_status() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        for (success, err, status, taking, want) in [
            (true, None, "matched", "10", "matched"),
            // Matched without an amount (the SDK reads "" as 0) is looked up, never a no-fill.
            (true, None, "matched", "0", "matched"),
            (true, None, "canceled", "0", "no_fill"),
            (true, None, "unmatched", "0", "no_fill"),
            (true, None, "live", "0", "live"),
            (true, None, "delayed", "0", "delayed"),
            (false, Some("not enough balance / allowance"), "", "0", "insufficient_balance"),
            (true, None, "weird", "0", "unknown"),
        ] {
            assert_eq!(code(&classify_answer(success, err, status, d("5"), d(taking))), want, "{status}");
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(classify_lookup("LIVE", Decimal::ZERO), LookupOutcome::Pending);
        assert_eq!(classify_lookup("MATCHED", Decimal::TEN), LookupOutcome::Done { matched: Decimal::TEN });
        assert_eq!(classify_lookup("MATCHED", Decimal::ZERO), LookupOutcome::Unsized, "matched is never a no-fill");
        assert_eq!(classify_lookup("CANCELED", Decimal::ZERO), LookupOutcome::Done { matched: Decimal::ZERO });
        assert_eq!(classify_lookup("UNMATCHED", Decimal::ZERO), LookupOutcome::Done { matched: Decimal::ZERO });
        // A status we do not know is not final: its fate is looked up again (and the chain decides).
        assert_eq!(classify_lookup("unknown", Decimal::ZERO), LookupOutcome::Pending);
        assert_eq!(classify_lookup("PARTIALLY_SETTLED", Decimal::TEN), LookupOutcome::Pending);
    }

    #[test]
    fn statuses_the_sdk_does_not_name_are_read_by_their_meaning() {
        // (status as the API gave it, read as, outcome with 4 matched)
        let four = Decimal::from(4);
        for (raw, word, outcome) in [
            ("CANCELED_MARKET_RESOLVED", "canceled", LookupOutcome::Done { matched: four }),
            ("INVALID", "canceled", LookupOutcome::Done { matched: four }),
            ("ORDER_STATUS_MATCHED", "matched", LookupOutcome::Done { matched: four }),
            ("ORDER_STATUS_LIVE", "live", LookupOutcome::Pending),
            ("order_status_canceled_market_resolved", "canceled", LookupOutcome::Done { matched: four }),
            ("PARTIALLY_SETTLED", "unknown", LookupOutcome::Pending),
        ] {
            assert_eq!(other_status(raw), word, "{raw}");
            assert_eq!(classify_lookup(other_status(raw), four), outcome, "{raw}");
        }
    }
}
