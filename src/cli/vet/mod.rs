//! `polycopy vet <wallet|label>`: would copying this wallet have paid? Its fills over the period
//! are read from the chain (cached in the journal), replayed through our sizing and limits with a
//! copy delay and a slippage model, settled where Gamma says a market resolved, and reported.
//! Which wallet and rules ([`who`]), and reading and replaying its history ([`source`]).

mod source;
mod who;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use alloy::primitives::Address;
use anyhow::{Context as _, Result};

use crate::cli::{EXIT_USAGE, GlobalArgs, settings_or_bail};
use crate::config::Settings;
use crate::domain::addr_lower;
use crate::vet::render::{self};

pub(crate) use source::{Outcome, Source, analyze};
use who::resolve;

/// The first bytes of every PNG file.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
pub(crate) use who::{Who, defaults_of};

/// `vet`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct VetArgs {
    /// The wallet: an address (0x…) or a label from wallets.json.
    pub wallet: String,
    /// How many days back from the chain's head.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub days: u32,
    /// Copy rules to vet with instead of the wallet's: a JSON object of wallets.json rule fields
    /// (`{"sizing": {...}, "max_order_usdc": 20}`), or a wallets.json-format file.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The copy's delay after the wallet's fill, ms (default: one block plus the confirmations).
    #[arg(long)]
    pub delay_ms: Option<u32>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Write the chart (cumulative P&L and open cost) to this PNG file.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Read everything from the chain; neither read nor write the journal's cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// Runs `vet`; the exit code.
///
/// # Errors
/// When the settings, the chain or the journal fail.
pub fn vet(g: &GlobalArgs, a: &VetArgs) -> Result<i32> {
    let s = settings_or_bail(g)?;
    let env = super::env_for(&s, false)?;
    match resolve(&s, a) {
        Ok((wallet, label, rules, rules_from)) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(run(&s, &env, a, Who { wallet, label, rules, rules_from }))
        }
        Err(e) => {
            eprintln!("Error: {}", crate::config::env::redact(&e.to_string()));
            Ok(EXIT_USAGE)
        }
    }
}

async fn run(s: &Settings, env: &crate::config::Env, a: &VetArgs, who: Who) -> Result<i32> {
    // A chart that cannot be written is said before the chain is read, not after.
    if let Some(p) = &a.chart {
        // Checked without truncating it: a chart is only ever written over an older chart (a
        // mistyped path naming the journal would otherwise empty it before the chain is read).
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .with_context(|| format!("--chart: cannot write {}", p.display()))?;
        let mut head = [0u8; 8];
        let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
        if n > 0 && head[..n] != PNG_SIGNATURE[..n] {
            anyhow::bail!("--chart: {} exists and is not a PNG chart: choose another name", p.display());
        }
    }
    let src = Source::connect(s, env, a.no_cache).await?;
    let wallet = who.wallet;
    let v = match analyze(s, env, &src, who, a.days, a.delay_ms, !a.json && std::io::stderr().is_terminal()).await? {
        Outcome::Vetted(v) => v,
        Outcome::TooOld(why) => return Ok(refuse(a, wallet, "period_too_long", &why, EXIT_USAGE)),
        Outcome::NoFills { from, to } => {
            let why = format!(
                "{} made no fills on the watched exchanges in the last {} days (blocks {from}..={to}): nothing to \
                 vet. Check that it is the wallet's proxy/Safe address shown on its Polymarket profile (not the \
                 signer's), or ask for more --days",
                addr_lower(&wallet),
                a.days
            );
            return Ok(refuse(a, wallet, "no_fills", &why, 1));
        }
    };
    if let Some(p) = &a.chart {
        let png = render::chart(&v).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
        std::fs::write(p, png).with_context(|| format!("writing the chart to {}", p.display()))?;
    }
    if a.json {
        println!("{}", render::json(&v));
    } else {
        print!("{}", render::text(&v));
        if let Some(p) = &a.chart {
            println!("chart        {}", p.display());
        }
    }
    Ok(0)
}

/// Says why nothing was vetted (on stderr; and as JSON on stdout with `--json`, for machines); the
/// exit code.
fn refuse(a: &VetArgs, wallet: Address, code: &str, why: &str, exit: i32) -> i32 {
    eprintln!("Error: {why}");
    if a.json {
        println!("{}", serde_json::json!({"wallet": addr_lower(&wallet), "error": code, "message": why}));
    }
    exit
}
