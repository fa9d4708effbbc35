//! The monitoring files under `deploy/` (deploy/README.md): the Prometheus rules pass `promtool`
//! (syntax and their unit tests), the example scrape configuration is valid, every alert says how
//! bad it is and which RUNBOOK section to open, the Grafana dashboard is valid JSON whose queries
//! parse, and every metric the rules and the dashboard name is one a real paper daemon serves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::http::http_get;
use crate::support::*;
use alloy::primitives::{Address, address};
use serde_json::Value;

const A: Address = address!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");

const RULES: &str = "deploy/prometheus/polycopy.rules.yml";
const RULES_TEST: &str = "deploy/prometheus/polycopy.rules.test.yml";
const SCRAPE: &str = "deploy/prometheus/scrape.example.yml";
const DASHBOARD: &str = "deploy/grafana/polycopy.json";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Runs `promtool ARGS` from the repository root and returns its stdout; fails with what to install
/// when promtool is missing, and with promtool's own output when it refuses.
fn promtool(args: &[&str]) -> String {
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let out = Command::new(&bin).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{bin}` ({e}): promtool checks deploy/prometheus; install Debian's prometheus \
             package (`apt-get install prometheus`, as .ci/run does) or point PROMTOOL at the binary"
        )
    });
    let (code, stdout, stderr) = output(out);
    assert_eq!(code, 0, "`promtool {}` failed (exit {code}):\n{stdout}\n{stderr}", args.join(" "));
    stdout
}

/// The `expr` of every rule: on one line, or a `|`/`>` block indented under `expr:`.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some(rest) = line.trim_start().strip_prefix("expr:") else { continue };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let mut block = Vec::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line)) {
                block.push(lines[i].trim());
                i += 1;
            }
            out.push(block.join("\n"));
        } else {
            let unquoted = rest
                .strip_prefix('"')
                .and_then(|r| r.strip_suffix('"'))
                .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
                .unwrap_or(rest);
            out.push(unquoted.to_owned());
        }
    }
    out
}

/// Each alerting rule's name and its lines (from `- alert:` to the next rule or group).
fn alert_blocks(yaml: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in yaml.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.extend(current.take());
            current = Some((name.trim().to_owned(), Vec::new()));
        } else if t.starts_with("- record:") || t.starts_with("- name:") {
            out.extend(current.take());
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(t.to_owned());
        }
    }
    out.extend(current);
    out
}

/// Identifiers in a query that name a metric polycopy serves itself: `polycopy_*` and `process_*`.
/// Any such identifier counts (not only those before `{`, `[`, a space or `)`): stricter.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let starts = |c: u8| c.is_ascii_alphabetic() || c == b'_' || c == b':';
    let part = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        if starts(b[i]) && (i == 0 || !(part(b[i - 1]) || b[i - 1] == b'$' || b[i - 1] == b'.')) {
            let s = i;
            while i < b.len() && part(b[i]) {
                i += 1;
            }
            let id = &expr[s..i];
            if id.starts_with("polycopy_") || id.starts_with("process_") {
                names.insert(id.to_owned());
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every panel, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Every panel query (`targets[].expr`) of the dashboard, with the panel's title.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    panels(dash)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_owned();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| t["expr"].as_str().map(|e| (title.clone(), e.to_owned())))
        })
        .collect()
}

/// A dashboard query made plain PromQL: Grafana's variables replaced by values of the right kind.
fn plain_promql(expr: &str) -> String {
    let mut e = expr.to_owned();
    for (var, value) in
        [("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h"), ("$job", ".*"), ("$instance", ".*")]
    {
        e = e.replace(var, value);
    }
    assert!(!e.contains('$'), "a Grafana variable this test does not know in {expr:?}");
    e
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `promtool check rules` accepts the rules, `promtool test rules` passes their unit tests (alerts
/// firing, and not firing, on synthetic series), and `promtool check config` accepts the example
/// scrape configuration with the rule file beside it.
#[test]
fn test_rules_when_checked_by_promtool_then_valid_and_unit_tests_pass() {
    promtool(&["check", "rules", RULES]);
    let out = promtool(&["test", "rules", RULES_TEST]);
    assert!(out.contains("SUCCESS"), "{out}");
    promtool(&["check", "config", SCRAPE]);
}

/// Every alert has a `for`, a severity of critical or warning, a summary, a description, and a
/// runbook annotation pointing at a heading that docs/RUNBOOK.md has.
#[test]
fn test_alerts_when_read_then_each_has_severity_annotations_and_existing_runbook_section() {
    let rules = read(RULES);
    let headings: BTreeSet<String> =
        read("docs/RUNBOOK.md").lines().filter(|l| l.starts_with('#')).map(anchor).collect();
    let alerts = alert_blocks(&rules);
    assert!(alerts.len() >= 10, "only {} alerts in {RULES}", alerts.len());
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    for must in [
        "PolycopyDown",
        "PolycopyTradingHalted",
        "PolycopyChainFeedStalled",
        "PolycopyOrderErrors",
        "PolycopyTelegramDeliveryFailing",
        "PolycopyWarning",
        "PolycopyWarningChecksStalled",
    ] {
        assert!(names.contains(must), "{must} missing from {RULES}: {names:?}");
    }
    for (name, lines) in &alerts {
        let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
        for key in ["expr:", "for:", "summary:", "description:", "runbook:"] {
            assert!(has(key), "alert {name} has no `{key}`");
        }
        assert!(
            has("severity: critical") || has("severity: warning"),
            "alert {name}: severity must be critical or warning"
        );
        for l in lines.iter().filter(|l| l.starts_with("runbook:")) {
            let target = l.trim_start_matches("runbook:").trim().trim_matches('"');
            let section = target
                .strip_prefix("docs/RUNBOOK.md#")
                .unwrap_or_else(|| panic!("alert {name}: runbook {target:?} is not docs/RUNBOOK.md#section"));
            assert!(headings.contains(section), "alert {name}: docs/RUNBOOK.md has no section #{section}");
        }
    }
}

/// The dashboard is valid JSON with a Prometheus data source input, unique panel ids, and queries
/// that Prometheus parses (each made a recording rule for `promtool check rules`).
#[test]
fn test_dashboard_when_loaded_then_valid_json_unique_ids_and_queries_parse() {
    let dash: Value = serde_json::from_str(&read(DASHBOARD)).expect("deploy/grafana/polycopy.json is valid JSON");
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "schemaVersion: {}", dash["schemaVersion"]);
    assert!(
        dash["__inputs"].as_array().into_iter().flatten().any(|i| i["name"] == "DS_PROMETHEUS"),
        "no DS_PROMETHEUS input"
    );
    let all = panels(&dash);
    let mut ids = BTreeSet::new();
    for p in &all {
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("panel {} has no numeric id", p["title"]));
        assert!(ids.insert(id), "panel id {id} is used twice (panel {})", p["title"]);
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "panel {} data source", p["title"]);
        }
    }
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() >= 20, "only {} queries", exprs.len());

    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&plain_promql(e)).unwrap(); // a JSON string is a YAML scalar
        writeln!(rules, "      - record: dashboard:query_{i}\n        expr: {quoted}").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()]);
}

/// A real paper daemon's `/metrics` declares (`# TYPE`) every metric that the rules' expressions
/// and the dashboard's queries and variables name: a renamed or removed metric breaks this test,
/// not the operator's alerts. Histogram series (`_bucket`, `_sum`, `_count`) count under their
/// histogram. Counters by label are declared before their first increment, so no traffic is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_monitoring_files_when_daemon_scraped_then_every_metric_named_exists() {
    let r = running(&wallets(&[(A, "a", true)], 0.1)).await;
    let base = r.d.http_base().await;
    let (code, body) = http_get(&base, "/metrics").await;
    assert_eq!(code, 200, "{body}");
    let types: BTreeMap<String, String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect();
    assert!(types.contains_key("polycopy_up"), "no # TYPE lines in\n{body}");
    let served = |name: &str| {
        types.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix).is_some_and(|base| types.get(base).is_some_and(|k| k == "histogram"))
            })
    };

    // (where, metric) for every name the monitoring files use.
    let mut used: Vec<(String, String)> = Vec::new();
    for e in rule_exprs(&read(RULES)) {
        used.extend(metric_names(&e).into_iter().map(|n| (format!("{RULES}: {e}"), n)));
    }
    let dash: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    for (title, e) in dashboard_exprs(&dash) {
        used.extend(metric_names(&e).into_iter().map(|n| (format!("{DASHBOARD} panel {title:?}: {e}"), n)));
    }
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let q = v["definition"].as_str().unwrap_or_default();
        used.extend(metric_names(q).into_iter().map(|n| (format!("{DASHBOARD} variable {}: {q}", v["name"]), n)));
    }
    let distinct: BTreeSet<&str> = used.iter().map(|(_, n)| n.as_str()).collect();
    assert!(distinct.len() >= 15, "the files name only {distinct:?}");
    // process_* come from /proc: Linux only.
    let missing: Vec<String> = used
        .iter()
        .filter(|(_, n)| cfg!(target_os = "linux") || n.starts_with("polycopy_"))
        .filter(|(_, n)| !served(n.as_str()))
        .map(|(at, n)| format!("{n} (in {at})"))
        .collect();
    assert!(missing.is_empty(), "metrics the daemon does not serve:\n{}\n\nits /metrics:\n{body}", missing.join("\n"));
}

/// The parsers above, on the shapes the files use.
#[test]
fn test_monitoring_parsers_when_given_known_shapes_then_find_exprs_names_and_anchors() {
    let yaml = "rules:\n  - alert: X\n    expr: |\n      rate(polycopy_a_total[5m])\n        > 1\n    for: 1m\n  \
                - record: r\n    expr: \"polycopy_b{x=\\\"polycopy\\\"}\"\n  - alert: Y\n    expr: up == 0\n";
    assert_eq!(rule_exprs(yaml), ["rate(polycopy_a_total[5m])\n> 1", "polycopy_b{x=\\\"polycopy\\\"}", "up == 0"]);
    let blocks = alert_blocks(yaml);
    assert_eq!(blocks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["X", "Y"]);
    assert!(blocks[0].1.iter().any(|l| l == "for: 1m"));
    let names = metric_names(
        "histogram_quantile(0.9, sum by (le) (rate(polycopy_x_seconds_bucket{job=~\"$job\"}[$__rate_interval]))) \
         / polycopy:recorded:rate5m + time() - process_start_time_seconds and on (instance) polycopy_up",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["polycopy_up", "polycopy_x_seconds_bucket", "process_start_time_seconds"]
    );
    assert_eq!(anchor("## API errors (401/403/429/5xx)"), "api-errors-4014034295xx");
    assert_eq!(anchor("## The bot won't start"), "the-bot-wont-start");
    assert_eq!(plain_promql("rate(x{i=~\"$instance\"}[$__rate_interval])"), "rate(x{i=~\".*\"}[5m])");
}
