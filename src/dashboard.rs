//! The local dashboard: one read-only page on the loopback HTTP server (`GET /dashboard`), rendered
//! on the server with inline SVG, no build step and nothing fetched from elsewhere. It shows the
//! trading state, P&L over time, positions with their marks, each target's copy quality and the
//! latest copies and refusals, and refreshes itself in place (`?part=live` every 10 s). Everything
//! that comes from outside (market names, labels, reasons) is HTML-escaped. Reach it through an SSH
//! tunnel (RUNBOOK, "Dashboard").

use std::fmt::Write as _;

use crate::domain::format_micros;
use crate::risk::BreakerState;
use crate::store::{StatusReport, TargetQuality, TradeRow};

/// What the page shows, gathered by the HTTP handler.
#[derive(Debug, Clone)]
pub struct View {
    /// `paper` or `live`.
    pub mode: &'static str,
    /// The trading state.
    pub breaker: BreakerState,
    /// Positions, exposure, P&L.
    pub status: StatusReport,
    /// Realized P&L per UTC day, oldest first (day start unix ms, micro-USDC).
    pub pnl_by_day: Vec<(i64, i64)>,
    /// Each target: label, lower-case address and copy quality.
    pub targets: Vec<(String, String, TargetQuality)>,
    /// The latest fills and what became of them, newest first.
    pub trades: Vec<TradeRow>,
    /// Market names by token id, where known.
    pub names: std::collections::HashMap<String, String>,
    /// Each detection source's lead over the mined log, the last day.
    pub detection: crate::store::DetectionStats,
}

/// Text safe inside HTML elements and attribute values (the same escaping as Telegram's HTML).
pub use crate::telegram::format::escape;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:20px}h2{font-size:16px;margin-top:1.5em}table{border-collapse:collapse;background:#fff}\
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}\
.state{display:inline-block;padding:2px 8px;border-radius:4px;color:#fff}.active{background:#2a2}\
.reducing{background:#d80}.halted{background:#c22}.muted{color:#888}";

/// Refreshes the live part in place every 10 s (no navigation, no third-party code).
const SCRIPT: &str = "setInterval(function(){fetch('/dashboard?part=live').then(function(r){return r.ok?r.text():null})\
.then(function(t){if(t!==null){document.getElementById('live').innerHTML=t;}}).catch(function(){});},10000);";

/// The whole page.
#[must_use]
pub fn page(v: &View) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>polycopy dashboard</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>{STYLE}</style></head><body>\
         <h1>polycopy · {} mode</h1><div id=\"live\">{}</div><script>{SCRIPT}</script></body></html>",
        escape(v.mode),
        live(v)
    )
}

/// The part that refreshes.
#[must_use]
pub fn live(v: &View) -> String {
    let mut h = String::new();
    let state = v.breaker.trading().as_str();
    let _ = write!(
        h,
        "<p>trading <span class=\"state {state}\" id=\"state\">{state}</span>{}</p>",
        if v.breaker.code.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"muted\">({}: {})</span>", escape(&v.breaker.code), escape(&v.breaker.reason))
        }
    );
    let _ = write!(
        h,
        "<p>exposure <b>{} USDC</b> · realized today <b>{} USDC</b> · unrealized <b>{} USDC</b></p>",
        escape(&v.status.exposure_usdc),
        escape(&v.status.realized_today_usdc),
        escape(&v.status.unrealized_usdc)
    );
    h.push_str("<h2>Realized P&amp;L, cumulative by day</h2>");
    h.push_str(&pnl_chart(&v.pnl_by_day));
    positions(&mut h, v);
    targets(&mut h, v);
    detection(&mut h, v);
    trades(&mut h, v);
    h
}

/// Which source saw the targets' fills first, the last day (only once a source besides the chain
/// is on).
fn detection(h: &mut String, v: &View) {
    let d = &v.detection;
    if d.leads.is_empty() && d.orphans == 0 {
        return;
    }
    h.push_str(
        "<h2>Detection lead over the mined log, last day</h2><table id=\"detection\"><tr><th class=\"l\">source</th>\
         <th>fills</th><th>seen first</th><th>lead p50</th><th>lead p90</th><th>lead p99</th></tr>",
    );
    let secs = |ms: Option<i64>| ms.map_or_else(|| "–".to_owned(), |ms| format!("{} s", format_micros(ms * 1_000)));
    for (source, leads) in &d.leads {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(source),
            leads.len(),
            d.led(source),
            secs(d.lead(source, 50)),
            secs(d.lead(source, 90)),
            secs(d.lead(source, 99))
        );
    }
    let _ = write!(
        h,
        "</table><p class=\"muted\">{} fills seen only in their block · {} orphans (seen pending, never mined)</p>",
        d.chain_only, d.orphans
    );
}

fn name(v: &View, token: &str) -> String {
    v.names.get(token).cloned().unwrap_or_else(|| format!("token {token}"))
}

fn positions(h: &mut String, v: &View) {
    h.push_str(
        "<h2>Positions</h2><table id=\"positions\"><tr><th class=\"l\">market</th><th>shares</th><th>avg</th>\
                <th>cost</th><th>mark</th><th>unrealized</th></tr>",
    );
    if v.status.positions.is_empty() {
        h.push_str("<tr><td class=\"l muted\" colspan=\"6\">no open position</td></tr>");
    }
    for p in &v.status.positions {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name(v, &p.token_id)),
            escape(&p.shares),
            escape(&p.avg_price),
            escape(&p.cost_usdc),
            escape(p.mark.as_deref().unwrap_or("–")),
            escape(p.unrealized_usdc.as_deref().unwrap_or("–"))
        );
    }
    h.push_str("</table>");
}

fn targets(h: &mut String, v: &View) {
    h.push_str(
        "<h2>Targets</h2><table id=\"targets\"><tr><th class=\"l\">target</th><th>copies</th><th>refused</th>\
                <th>slippage</th><th>seen after block</th><th>our P&amp;L</th><th>its P&amp;L</th></tr>",
    );
    if v.targets.is_empty() {
        h.push_str("<tr><td class=\"l muted\" colspan=\"7\">no target figures yet</td></tr>");
    }
    for (label, _, q) in &v.targets {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(label),
            q.copies,
            q.refusals.values().sum::<u64>(),
            q.slippage_bps.map_or_else(|| "–".to_owned(), |b| format!("{b} bps")),
            q.detection_ms.map_or_else(|| "–".to_owned(), |ms| format!("{} s", format_micros(ms * 1_000))),
            q.our_realized_usdc,
            q.target_realized_usdc
        );
    }
    h.push_str("</table>");
}

fn trades(h: &mut String, v: &View) {
    h.push_str(
        "<h2>Latest copies and refusals</h2><table id=\"trades\"><tr><th class=\"l\">target</th><th>side</th>\
                <th class=\"l\">market</th><th>target</th><th>ours</th><th class=\"l\">outcome</th></tr>",
    );
    for r in &v.trades {
        let ours = match (&r.shares, &r.price) {
            (Some(s), Some(p)) => format!("{s} at {p}"),
            _ => "–".to_owned(),
        };
        let outcome = match &r.reason {
            Some(reason) if r.status == "rejected" => format!("refused: {reason}"),
            _ => r.status.clone(),
        };
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{} at {}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            escape(&who(v, &r.wallet)),
            escape(&r.side),
            escape(r.market.as_deref().unwrap_or(&format!("token {}", r.token_id))),
            escape(&r.target_shares),
            escape(&r.target_price),
            escape(&ours),
            escape(&outcome)
        );
    }
    h.push_str("</table>");
}

/// A target's label, else its shortened address (the operator's own closes: "close").
fn who(v: &View, wallet: &str) -> String {
    if wallet == crate::domain::addr_lower(&crate::domain::OPERATOR) {
        return "close".into();
    }
    v.targets.iter().find(|(_, a, _)| a == wallet).map_or_else(|| short(wallet), |(l, _, _)| l.clone())
}

fn short(a: &str) -> String {
    if a.len() > 12 { format!("{}…{}", &a[..6], &a[a.len() - 4..]) } else { a.to_owned() }
}

/// An inline SVG line of cumulative realized P&L, with the zero line.
#[must_use]
pub fn pnl_chart(days: &[(i64, i64)]) -> String {
    let (w, hgt, pad) = (640.0_f64, 160.0_f64, 24.0_f64);
    if days.is_empty() {
        return "<p class=\"muted\" id=\"pnl\">no realized P&amp;L yet</p>".into();
    }
    let mut cum = Vec::with_capacity(days.len());
    let mut acc = 0i64;
    for (_, p) in days {
        acc += p;
        cum.push(acc);
    }
    let lo = cum.iter().copied().min().unwrap_or(0).min(0);
    let hi = cum.iter().copied().max().unwrap_or(0).max(0);
    let span = (hi - lo).max(1) as f64;
    let x = |i: usize| pad + (w - 2.0 * pad) * (i as f64) / ((cum.len().max(2) - 1) as f64);
    let y = |v: i64| hgt - pad - (hgt - 2.0 * pad) * ((v - lo) as f64) / span;
    let points: Vec<String> = cum.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
    format!(
        "<svg id=\"pnl\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{hgt}\" viewBox=\"0 0 {w} {hgt}\" \
         role=\"img\" aria-label=\"cumulative realized P&amp;L\"><line x1=\"{pad}\" y1=\"{z:.1}\" x2=\"{x2}\" y2=\"{z:.1}\" \
         stroke=\"#999\"/><polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{pad}\" y=\"14\" font-size=\"12\">{} USDC</text></svg>",
        points.join(" "),
        format_micros(acc),
        z = y(0),
        x2 = w - pad
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_is_escaped() {
        assert_eq!(escape("<script>\"a\" & b</script>"), "&lt;script&gt;&quot;a&quot; &amp; b&lt;/script&gt;");
    }

    #[test]
    fn chart_draws_every_day_and_the_total() {
        let svg = pnl_chart(&[(0, 1_000_000), (1, -3_000_000), (2, 500_000)]);
        assert_eq!(svg.matches(',').count(), 3, "three points: {svg}");
        assert!(svg.contains("-1.5 USDC"), "{svg}");
        assert!(pnl_chart(&[]).contains("no realized"));
    }
}
