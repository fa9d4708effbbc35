//! `polycopy stats detection`: which source saw the targets' fills first, by how much, and how
//! many pending sightings were never mined, from the journal's sightings.

use anyhow::Result;
use serde_json::{Value, json};

use super::{GlobalArgs, open_store, settings_or_bail};
use crate::domain::format_micros;
use crate::store::DetectionStats;
use crate::store::sightings::percentile;

/// Seconds with millisecond precision, for people and JSON.
fn secs(ms: i64) -> String {
    format_micros(ms * 1_000)
}

fn as_json(d: &DetectionStats, days: u32) -> Value {
    let sources: serde_json::Map<String, Value> = d
        .leads
        .iter()
        .map(|(source, v)| {
            let q = |p| percentile(v, p).map(secs);
            (
                source.clone(),
                json!({"fills": v.len(), "lead_p50_s": q(50), "lead_p90_s": q(90), "lead_p99_s": q(99),
                       "led": v.iter().filter(|l| **l > 0).count()}),
            )
        })
        .collect();
    json!({"days": days, "sources": sources, "orphans": d.orphans, "chain_only": d.chain_only})
}

fn text(d: &DetectionStats, days: u32) -> String {
    use std::fmt::Write as _;
    let mut s = format!("detection over the last {days} days: each source's lead over the mined log\n");
    if d.leads.is_empty() {
        s.push_str(
            "  no fill was seen before its block (is [detection] pending on, and does the node expose its pool?)\n",
        );
    }
    for (source, v) in &d.leads {
        let q = |p| percentile(v, p).map_or_else(|| "-".into(), secs);
        let led = v.iter().filter(|l| **l > 0).count();
        let _ = writeln!(
            s,
            "  {source:<8} {} fills, first on {led}; lead p50 {} s, p90 {} s, p99 {} s",
            v.len(),
            q(50),
            q(90),
            q(99)
        );
    }
    let _ = writeln!(s, "  chain    {} fills seen only in their block", d.chain_only);
    let _ = writeln!(s, "  orphans  {} fills seen pending whose transaction was never mined", d.orphans);
    s
}

/// `stats detection [--days N] [--json]`.
///
/// # Errors
/// When the settings or the journal cannot be read.
pub fn detection(g: &GlobalArgs, days: u32, as_json_out: bool) -> Result<()> {
    let s = settings_or_bail(g)?;
    let store = open_store(&s)?;
    let since = crate::store::now_ms() - i64::from(days) * 86_400_000;
    let d = store.detection_stats(since)?;
    if as_json_out {
        println!("{}", as_json(&d, days));
    } else {
        print!("{}", text(&d, days));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        let cases = [(50, Some(50)), (90, Some(90)), (99, Some(99)), (100, Some(100)), (0, Some(1))];
        for (p, want) in cases {
            assert_eq!(percentile(&v, p), want, "p{p}");
        }
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
    }

    #[test]
    fn the_report_names_each_source_and_the_orphans() {
        let mut d = DetectionStats { orphans: 2, chain_only: 5, ..DetectionStats::default() };
        d.leads.insert("pending".into(), vec![-200, 1_500, 2_000, 4_000]);
        let t = text(&d, 7);
        assert!(t.contains("pending  4 fills, first on 3; lead p50 1.5 s, p90 4 s, p99 4 s"), "{t}");
        assert!(t.contains("orphans  2 fills"), "{t}");
        let j = as_json(&d, 7);
        assert_eq!(j["sources"]["pending"]["lead_p50_s"], "1.5");
        assert_eq!(j["chain_only"], 5);
    }
}
