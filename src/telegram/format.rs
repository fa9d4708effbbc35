//! Messages as a trader reads them on a phone: Telegram HTML (only `b`, `i`, `code` and `a`, every
//! piece of data escaped), the side at a glance, the market by name with a link to its page, the
//! target's trade on a Polygon explorer, refusals in plain words with their code kept for search.
//! Pure: the Telegram sink sends what this returns.

use crate::actors::notifier::{Event, short_token};
use crate::domain::{Side, TargetFill, Usdc};
use crate::market::MarketRef;

/// Where a transaction is shown.
const EXPLORER_TX: &str = "https://polygonscan.com/tx/";

/// Escapes text for Telegram's HTML parse mode.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The text of an HTML message without its tags and entities (when Telegram refuses the markup).
#[must_use]
pub fn plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

fn link(url: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(url), escape(text))
}

fn side_mark(side: Side) -> &'static str {
    match side {
        Side::Buy => "🟢",
        Side::Sell => "🔴",
    }
}

fn market_name(market: Option<&MarketRef>, token: &str) -> String {
    market.map_or_else(|| format!("token {}", short_token(token)), |m| m.name.clone())
}

fn links(market: Option<&MarketRef>, fill: &TargetFill) -> String {
    let mut parts = Vec::new();
    if let Some(url) = market.and_then(MarketRef::url) {
        parts.push(link(&url, "market"));
    }
    parts.push(link(&format!("{EXPLORER_TX}{:#x}", fill.id.tx_hash), "target's trade"));
    parts.join(" · ")
}

fn signed(u: Usdc) -> String {
    if u.0 > 0 { format!("+{u}") } else { u.to_string() }
}

/// The HTML message for `ev`.
#[must_use]
pub fn html(ev: &Event) -> String {
    match ev {
        // The operator's own close: no target, no target's trade to link.
        Event::Executed { fill, .. } | Event::Rejected { fill, .. } if fill.wallet == crate::domain::OPERATOR => {
            format!("🧹 {}", escape(&ev.text()))
        }
        Event::Executed { fill, label, exec, latency_ms, market, realized, .. } => {
            let token = exec.token_id.to_string();
            let mut text = format!(
                "{} <b>{}</b> {} shares · <b>{}</b>\nat {} = <b>{} USDC</b>\ncopied <i>{}</i> (target {} at {}), {:.1} s after {}",
                side_mark(exec.side),
                exec.side,
                exec.shares,
                escape(&market_name(market.as_ref(), &token)),
                exec.price,
                exec.usdc,
                escape(label),
                fill.shares,
                fill.price,
                *latency_ms as f64 / 1000.0,
                // A fill seen pending has no block yet.
                if fill.block_number == 0 { "it was seen pending" } else { "its block" }
            );
            if let Some(r) = realized {
                text.push_str(&format!("\nrealized P&amp;L <b>{} USDC</b>", signed(*r)));
            }
            text.push('\n');
            text.push_str(&links(market.as_ref(), fill));
            text
        }
        Event::Rejected { fill, label, reason, market } => format!(
            "⚪ <b>not copied</b> · <i>{}</i> {} {} at {} · {}\n{}\n<code>{}</code> · {}",
            escape(label),
            fill.side,
            fill.shares,
            fill.price,
            escape(&market_name(market.as_ref(), &fill.token_id.to_string())),
            escape(&reason.explain()),
            reason.code(),
            links(market.as_ref(), fill)
        ),
        Event::FillDetected { fill, label } => format!(
            "👀 <i>{}</i> {} {} shares of {} at {} · {}",
            escape(label),
            fill.side,
            fill.shares,
            escape(&short_token(&fill.token_id.to_string())),
            fill.price,
            link(&format!("{EXPLORER_TX}{:#x}", fill.id.tx_hash), "tx")
        ),
        Event::BreakerTripped(_) => format!("🛑 <b>{}</b>", escape(&ev.text())),
        Event::BreakerReset { .. } => format!("✅ {}", escape(&ev.text())),
        Event::Alert { .. }
        | Event::Warning { .. }
        | Event::Error { .. }
        | Event::ReorgedAfterCopy { .. }
        | Event::WalletsRejected(_) => {
            format!("⚠️ {}", escape(&ev.text()))
        }
        Event::Settled { realized, .. } => format!("🏁 {} ({})", escape(&ev.text()), signed(*realized)),
        _ => escape(&ev.text()),
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::*;
    use crate::domain::{Execution, Price, Shares};
    use crate::risk::DenyReason;

    fn fill(side: Side) -> TargetFill {
        crate::domain::test_fill(side, Shares(100_000_000), Price(500_000))
    }

    /// Telegram's HTML: only these tags, every one closed, every `&` an entity.
    fn valid_telegram_html(s: &str) -> bool {
        let mut open: Vec<String> = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find(['<', '&']) {
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix('&') {
                if !["&lt;", "&gt;", "&amp;", "&quot;"].iter().any(|e| tail.starts_with(e)) {
                    return false;
                }
                rest = after;
                continue;
            }
            let Some(end) = tail.find('>') else { return false };
            let tag = &tail[1..end];
            if let Some(name) = tag.strip_prefix('/') {
                if open.pop().as_deref() != Some(name) {
                    return false;
                }
            } else {
                let name = tag.split_whitespace().next().unwrap_or("");
                if !["b", "i", "code", "a"].contains(&name) {
                    return false;
                }
                if name == "a" && !tag.starts_with("a href=\"https://") {
                    return false;
                }
                open.push(name.to_owned());
            }
            rest = &tail[end + 1..];
        }
        open.is_empty()
    }

    #[test]
    fn copies_and_refusals_read_differently_and_are_valid_html() {
        let market = Some(MarketRef {
            name: "Will <X> & Y happen? — Yes".into(),
            slug: Some("will-x-happen".into()),
            condition: None,
        });
        let exec = |side: Side| Execution {
            fill_row: 1,
            side,
            token_id: U256::from(7),
            shares: Shares(10_000_000),
            price: Price(500_000),
            usdc: Usdc(5_000_000),
            mode: crate::domain::ExecMode::Paper,
            at_ms: 0,
        };
        let buy = Event::Executed {
            fill: fill(Side::Buy),
            label: "whale<1>".into(),
            exec: exec(Side::Buy),
            latency_ms: 1200,
            pipeline_us: None,
            market: market.clone(),
            realized: None,
        };
        let sell = Event::Executed {
            fill: fill(Side::Sell),
            label: "whale".into(),
            exec: exec(Side::Sell),
            latency_ms: 900,
            pipeline_us: Some(400),
            market: None,
            realized: Some(Usdc(1_200_000)),
        };
        let refused = Event::Rejected {
            fill: fill(Side::Buy),
            label: "whale".into(),
            reason: DenyReason::MaxOrderUsdc { notional: Usdc(99_990_000), max: Usdc(50_000_000) },
            market,
        };
        let cases: [(&Event, &[&str]); 3] = [
            (
                &buy,
                &[
                    "🟢 <b>BUY</b> 10 shares",
                    "Will &lt;X&gt; &amp; Y happen? — Yes",
                    "= <b>5 USDC</b>",
                    "whale&lt;1&gt;",
                    "1.2 s",
                    "https://polymarket.com/market/will-x-happen",
                    "https://polygonscan.com/tx/0x",
                ],
            ),
            (&sell, &["🔴 <b>SELL</b>", "realized P&amp;L <b>+1.2 USDC</b>", "token 7"]),
            (
                &refused,
                &[
                    "⚪ <b>not copied</b>",
                    "over your 50 USDC per-order cap: this copy would be 99.99 USDC",
                    "<code>max_order_usdc</code>",
                ],
            ),
        ];
        for (ev, wants) in cases {
            let h = html(ev);
            assert!(valid_telegram_html(&h), "{h}");
            for w in wants {
                assert!(h.contains(w), "{w:?} missing in {h}");
            }
        }
        assert!(!html(&refused).contains("🟢") && !html(&buy).contains("not copied"));
    }

    #[test]
    fn plain_text_drops_tags_and_entities() {
        assert_eq!(
            plain("⚪ <b>not copied</b> · <i>a&amp;b</i> &lt;x&gt; <a href=\"https://x\">tx</a>"),
            "⚪ not copied · a&b <x> tx"
        );
    }

    #[test]
    fn every_other_event_is_escaped() {
        let ev = Event::Alert { message: "disk <5% & falling".into() };
        let h = html(&ev);
        assert!(valid_telegram_html(&h), "{h}");
        assert!(h.contains("disk &lt;5% &amp; falling"), "{h}");
    }
}
