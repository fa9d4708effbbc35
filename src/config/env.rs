//! Endpoints and secrets from the environment (and `.env`). Secrets never appear in `Debug`, logs or
//! messages: [`Env`]'s `Debug` redacts them and URLs are shown by [`redact_url`].

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

use crate::config::Problem;

/// The public Polygon endpoint used when `POLYGON_RPC_URL` is not set (fine for paper trading).
pub const DEFAULT_RPC_URL: &str = "https://polygon-rpc.com";
/// Telegram's Bot API.
pub const DEFAULT_TELEGRAM_API: &str = "https://api.telegram.org";
/// Polymarket's Gamma API (market metadata).
pub const DEFAULT_GAMMA_URL: &str = "https://gamma-api.polymarket.com";
/// Polymarket's Data API (positions as the exchange sees them), unless `DATA_API_URL` says otherwise.
pub const DEFAULT_DATA_API_URL: &str = "https://data-api.polymarket.com";
/// Polymarket's CLOB.
pub const DEFAULT_CLOB_HOST: &str = "https://clob.polymarket.com";

/// Endpoints and secrets.
#[derive(Clone)]
pub struct Env {
    /// HTTP JSON-RPC endpoints, primary first, then fallbacks.
    pub rpc_urls: Vec<String>,
    /// Websocket endpoint; when set, heads arrive by subscription.
    pub ws_url: Option<String>,
    /// Signing key for live trading.
    pub private_key: Option<SecretString>,
    /// CLOB base URL.
    pub clob_host: String,
    /// Telegram bot token.
    pub telegram_bot_token: Option<SecretString>,
    /// Authorized Telegram chats.
    pub telegram_chat_ids: Vec<i64>,
    /// The Bot API server (Telegram's own unless `TELEGRAM_API_URL` says otherwise).
    pub telegram_api_url: String,
    /// `PAPER_TRADING` as set (`None`: unset). The settings' `mode` decides; this may only confirm it
    /// ([`crate::config::mode::check_mode`]).
    pub paper_trading: Option<bool>,
    /// Where the region check asks (Polymarket's own site unless set).
    pub geoblock_url: Option<String>,
    /// The Gamma API (market metadata).
    pub gamma_url: String,
    /// The Data API (our positions as Polymarket reports them, for `reconcile`).
    pub data_api_url: String,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("rpc_urls", &self.rpc_urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
            .field("ws_url", &self.ws_url.as_deref().map(redact_url))
            .field("private_key", &self.private_key.as_ref().map(|_| "<redacted>"))
            .field("clob_host", &redact_url(&self.clob_host))
            .field("telegram_bot_token", &self.telegram_bot_token.as_ref().map(|_| "<redacted>"))
            .field("telegram_chat_ids", &self.telegram_chat_ids)
            .field("telegram_api_url", &redact_url(&self.telegram_api_url))
            .field("paper_trading", &self.paper_trading)
            .field("geoblock_url", &self.geoblock_url.as_deref().map(redact_url))
            .field("gamma_url", &redact_url(&self.gamma_url))
            .finish()
    }
}

/// Shows only the scheme and host of a URL: paths and queries of RPC URLs often carry API keys. A
/// value with no scheme is not a URL at all (a bare provider key, a bot token pasted into the
/// wrong variable): only its length is shown.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("a value of {} characters with no scheme (not shown)", url.chars().count());
    };
    let (_, host, tail) = authority(rest);
    let tail = if tail.is_empty() { "" } else { "/…" };
    format!("{scheme}://{host}{tail}")
}

/// Splits what follows a URL's `://` into credentials, host and the rest (path, query). A
/// password pasted as the provider gave it may hold `/`, `?` or `#` unescaped: everything before
/// the last `@` counts as credentials, wherever the host would otherwise seem to end, so no part
/// of a password is ever taken for the host. (An `@` in a path or query hides more than needed,
/// never less.)
fn authority(rest: &str) -> (Option<&str>, &str, &str) {
    let (userinfo, after) = rest.rsplit_once('@').map_or((None, rest), |(u, a)| (Some(u), a));
    let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    (userinfo, &after[..host_end], &after[host_end..])
}

/// Replaces every occurrence of each secret in `text` (for error texts that embed URLs).
#[must_use]
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        out = out.replace(s, "<redacted>");
    }
    out
}

/// An API base URL with a path ends in `/`: the SDK appends its routes to the text, so
/// `https://proxy/gamma` would otherwise ask `https://proxy/gammamarkets`.
fn api_base(url: String) -> String {
    let has_path = url.split_once("://").is_some_and(|(_, rest)| rest.trim_end_matches('/').contains('/'));
    if has_path && !url.ends_with('/') { format!("{url}/") } else { url }
}

/// An http(s) URL variable, or its default; checked either way.
fn url_or(get: &dyn Fn(&str) -> Option<String>, p: &mut Vec<Problem>, name: &str, default: &str) -> String {
    let url = var(get, name).unwrap_or_else(|| default.to_owned());
    check_url(p, name, &url, &["http", "https"]);
    url
}

/// A URL variable with no default, checked when set.
fn optional_url(
    get: &dyn Fn(&str) -> Option<String>,
    p: &mut Vec<Problem>,
    name: &str,
    schemes: &[&str],
) -> Option<String> {
    let url = var(get, name);
    if let Some(u) = &url {
        check_url(p, name, u, schemes);
    }
    url
}

/// The primary RPC URL (or the public default), then the fallbacks in the order listed.
fn rpc_urls(get: &dyn Fn(&str) -> Option<String>, p: &mut Vec<Problem>) -> Vec<String> {
    const WHAT: &str = "the chain data we trade on (and any key in the URL)";
    let mut urls = vec![url_or(get, p, "POLYGON_RPC_URL", DEFAULT_RPC_URL)];
    check_encrypted(p, "POLYGON_RPC_URL", &urls[0], WHAT);
    if let Some(list) = var(get, "POLYGON_RPC_FALLBACK_URLS") {
        for u in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            check_url(p, "POLYGON_RPC_FALLBACK_URLS", u, &["http", "https"]);
            check_encrypted(p, "POLYGON_RPC_FALLBACK_URLS", u, WHAT);
            urls.push(u.to_owned());
        }
    }
    urls
}

/// `PAPER_TRADING`, when set: true/1/yes or false/0/no.
fn paper_trading(get: &dyn Fn(&str) -> Option<String>, p: &mut Vec<Problem>) -> Option<bool> {
    match var(get, "PAPER_TRADING").map(|v| v.to_ascii_lowercase()) {
        None => None,
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Some(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Some(false),
        Some(v) => {
            p.push(Problem::new(
                "environment",
                "PAPER_TRADING",
                format!("must be true or false, got {}", crate::config::problem::quoted(&v)),
            ));
            None
        }
    }
}

/// `PRIVATE_KEY`, when set; a malformed one is a problem whose text never shows the value.
fn private_key(get: &dyn Fn(&str) -> Option<String>, p: &mut Vec<Problem>) -> Option<String> {
    let key = var(get, "PRIVATE_KEY");
    if let Some(k) = &key {
        let hex = k.strip_prefix("0x").unwrap_or(k);
        // All zeros is not a key: no signer exists for it (and it is the classic placeholder).
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) || hex.chars().all(|c| c == '0') {
            p.push(Problem::new(
                "environment",
                "PRIVATE_KEY",
                "must be 32 bytes of hex (64 hex digits, 0x optional); the value is not shown",
            ));
        }
    }
    key
}

/// The authorized Telegram chats: comma-separated numeric ids.
fn chat_ids(get: &dyn Fn(&str) -> Option<String>, p: &mut Vec<Problem>) -> Vec<i64> {
    let mut ids = Vec::new();
    if let Some(list) = var(get, "TELEGRAM_CHAT_ID") {
        for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match id.parse::<i64>() {
                // No chat has id 0 (a placeholder left in): nobody would be authorized by it.
                Ok(0) => p.push(Problem::new("environment", "TELEGRAM_CHAT_ID", "0 is not a chat id")),
                // Listed twice (`123,+123`): one chat, which must get each message once.
                Ok(n) if ids.contains(&n) => {}
                Ok(n) => ids.push(n),
                // Echoed only when it looks like a mistyped number: a bot token pasted here
                // (its digits, a colon and the secret) must not be printed.
                Err(_) if id.len() <= 24 && id.chars().all(|c| c.is_ascii_digit() || c == '-' || c == ' ') => p.push(
                    Problem::new("environment", "TELEGRAM_CHAT_ID", format!("must be comma-separated numeric chat ids, got {id:?}")),
                ),
                Err(_) => p.push(Problem::new(
                    "environment",
                    "TELEGRAM_CHAT_ID",
                    format!(
                        "must be comma-separated numeric chat ids; one is a value of {} characters that is not a number (not shown: it may be a token)",
                        id.chars().count()
                    ),
                )),
            }
        }
    }
    ids
}

/// What reaching Telegram takes, read on its own.
#[derive(Debug)]
pub struct TelegramReach {
    /// The bot's token.
    pub token: SecretString,
    /// The authorized chats, every one told.
    pub chats: Vec<i64>,
    /// Telegram's Bot API.
    pub api_url: String,
}

/// Reads only the Telegram variables: a report that the daemon stopped must go out even when
/// another variable is what stopped it.
///
/// # Errors
/// Telegram not configured, or its variables wrong (named, values not shown).
pub fn telegram_reach(get: &dyn Fn(&str) -> Option<String>) -> Result<TelegramReach, Vec<Problem>> {
    let mut p = Vec::new();
    let token = var(get, "TELEGRAM_BOT_TOKEN");
    let chats = chat_ids(get, &mut p);
    let api_url = url_or(get, &mut p, "TELEGRAM_API_URL", DEFAULT_TELEGRAM_API);
    check_encrypted(&mut p, "TELEGRAM_API_URL", &api_url, "the bot token");
    if token.is_none() {
        p.push(Problem::new("environment", "TELEGRAM_BOT_TOKEN", "is not set: Telegram is off"));
    }
    if chats.is_empty() {
        p.push(Problem::new("environment", "TELEGRAM_CHAT_ID", "no chat is authorized"));
    }
    match token {
        Some(t) if p.is_empty() => Ok(TelegramReach { token: SecretString::from(t), chats, api_url }),
        _ => Err(p),
    }
}

fn var(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Whether `url`'s host is this machine or on a private network (a private or link-local
/// address, a name of one label, or a local-only domain): the only places plain `http`/`ws` is
/// taken for an endpoint that carries a secret.
fn private_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => private_v4(ip),
        Some(url::Host::Ipv6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(private_v4)
        }
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            !d.contains('.')
                || [".localhost", ".local", ".lan", ".internal", ".home.arpa", ".ts.net"].iter().any(|s| d.ends_with(s))
        }
        None => false,
    }
}

/// A private, loopback, link-local or unspecified IPv4 address. Not the shared space
/// (100.64.0.0/10): Tailscale's, but also carrier-grade NAT's, where traffic crosses the ISP in
/// clear (a Tailscale node is reached by its `.ts.net` name).
fn private_v4(ip: std::net::Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
}

/// Refuses plain `http`/`ws` to a public host for an endpoint that carries `what` (the bot token,
/// our API credentials, a node's key; and the chain itself: anyone on the way could forge the
/// target fills we copy), so that nothing on the way can read or change it.
fn check_encrypted(p: &mut Vec<Problem>, name: &str, url: &str, what: &str) {
    let Ok(u) = url::Url::parse(url) else { return };
    let secure = match u.scheme() {
        "http" => "https",
        "ws" => "wss",
        _ => return,
    };
    if !private_host(&u) {
        p.push(Problem::new(
            "environment",
            name,
            format!(
                "sends {what} unencrypted to a public host ({}): use {secure}:// (plain {}:// is taken only for this \
                 machine or a private network)",
                redact_url(url),
                u.scheme()
            ),
        ));
    }
}

fn check_url(p: &mut Vec<Problem>, name: &str, url: &str, schemes: &[&str]) {
    let ok = schemes.iter().any(|s| url.starts_with(&format!("{s}://")) && url.len() > s.len() + 3);
    if !ok {
        p.push(Problem::new(
            "environment",
            name,
            format!("must be a {} URL, got {}", schemes.join(" or "), redact_url(url)),
        ));
    } else if let Err(e) = url::Url::parse(url) {
        // A URL that cannot be used fails here, not later in a client that may only log it
        // (Telegram's would leave the daemon with no alerts and no commands). The parser's
        // words name the fault, never the value.
        p.push(Problem::new("environment", name, format!("is not a usable URL ({e}): {}", redact_url(url))));
    }
}

impl Env {
    /// Reads the process environment (after `.env` was loaded).
    ///
    /// # Errors
    /// Every bad variable, named, without its secret value.
    pub fn from_process() -> Result<Self, Vec<Problem>> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads variables through `get`; see [`Env::from_process`].
    ///
    /// # Errors
    /// Every bad variable, named.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<Problem>> {
        let mut p = Vec::new();
        let rpc_urls = rpc_urls(get, &mut p);
        let ws_url = optional_url(get, &mut p, "POLYGON_WS_URL", &["ws", "wss"]);
        if let Some(u) = &ws_url {
            check_encrypted(&mut p, "POLYGON_WS_URL", u, "the chain data we trade on (and any key in the URL)");
        }
        let clob_host = url_or(get, &mut p, "CLOB_HOST", DEFAULT_CLOB_HOST);
        check_encrypted(&mut p, "CLOB_HOST", &clob_host, "our API credentials and signed orders");
        let paper_trading = paper_trading(get, &mut p);
        let private_key = private_key(get, &mut p);
        let gamma_url = api_base(var(get, "GAMMA_URL").unwrap_or_else(|| DEFAULT_GAMMA_URL.to_owned()));
        check_url(&mut p, "GAMMA_URL", &gamma_url, &["http", "https"]);
        let data_api_url = api_base(var(get, "DATA_API_URL").unwrap_or_else(|| DEFAULT_DATA_API_URL.to_owned()));
        check_url(&mut p, "DATA_API_URL", &data_api_url, &["http", "https"]);
        let geoblock_url = optional_url(get, &mut p, "GEOBLOCK_URL", &["http", "https"]);
        let telegram_bot_token = var(get, "TELEGRAM_BOT_TOKEN");
        let telegram_chat_ids = chat_ids(get, &mut p);
        let telegram_api_url = url_or(get, &mut p, "TELEGRAM_API_URL", DEFAULT_TELEGRAM_API);
        check_encrypted(&mut p, "TELEGRAM_API_URL", &telegram_api_url, "the bot token");
        if telegram_bot_token.is_some() && telegram_chat_ids.is_empty() {
            p.push(Problem::new(
                "environment",
                "TELEGRAM_CHAT_ID",
                "TELEGRAM_BOT_TOKEN is set but no chat is authorized: list your chat id(s) here",
            ));
        }
        p.extend(crate::config::mode::legacy_env_problems(get));
        if p.is_empty() {
            Ok(Self {
                rpc_urls,
                ws_url,
                private_key: private_key.map(SecretString::from),
                clob_host,
                telegram_bot_token: telegram_bot_token.map(SecretString::from),
                telegram_chat_ids,
                telegram_api_url,
                paper_trading,
                geoblock_url,
                gamma_url,
                data_api_url,
            })
        } else {
            Err(p)
        }
    }

    /// Every secret value, for [`scrub`]bing error texts.
    #[must_use]
    pub fn secrets(&self) -> Vec<&str> {
        let mut v: Vec<&str> =
            self.private_key.iter().chain(&self.telegram_bot_token).map(|s| s.expose_secret()).collect();
        // URL paths and queries (API keys), and credentials before the host, are secrets too.
        let urls = self.rpc_urls.iter().chain(&self.ws_url).chain(&self.geoblock_url).chain([
            &self.gamma_url,
            &self.data_api_url,
            &self.clob_host,
            &self.telegram_api_url,
        ]);
        for u in urls {
            v.extend(url_secrets(u));
        }
        v.retain(|s| s.len() > 1);
        v
    }
}

/// The secret parts of a URL: credentials before the host, and a path or query that looks like a key.
fn url_secrets(u: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let Some((_, rest)) = u.split_once("://") else { return v };
    let (userinfo, _, tail) = authority(rest);
    v.extend(userinfo);
    if !tail.is_empty() && key_like(tail) {
        v.push(tail);
    }
    v
}

/// Variables whose values are or hold secrets (URLs: their credentials and key-like paths).
const SECRET_VARS: [&str; 2] = ["PRIVATE_KEY", "TELEGRAM_BOT_TOKEN"];
const URL_VARS: [&str; 8] = [
    "POLYGON_RPC_URL",
    "POLYGON_RPC_FALLBACK_URLS",
    "POLYGON_WS_URL",
    "GEOBLOCK_URL",
    "GAMMA_URL",
    "DATA_API_URL",
    "CLOB_HOST",
    "TELEGRAM_API_URL",
];

/// The secrets in the environment `get` reads, each variable on its own, whatever else is wrong
/// with it: a command that fails on one bad variable (a malformed chat id, often the reason an
/// operator runs `incident`) must still scrub the key and the token it holds.
#[must_use]
pub fn secrets_each(get: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let value = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut out: Vec<String> = SECRET_VARS.iter().filter_map(|k| value(k)).collect();
    // A key is often pasted without (or with) its 0x.
    let bare: Vec<String> = out.iter().filter_map(|v| v.strip_prefix("0x").map(str::to_owned)).collect();
    out.extend(bare);
    for k in URL_VARS {
        let Some(v) = value(k) else { continue };
        for u in v.split(',').map(str::trim) {
            out.extend(url_secrets(u).into_iter().filter(|s| s.len() > 1).map(str::to_owned));
        }
    }
    out
}

/// Registers the process environment's secrets for [`redact`]: all of them when the environment
/// is valid, else each that can be read ([`secrets_each`]).
pub fn register_process_secrets() {
    match Env::from_process() {
        Ok(env) => register_secrets(env.secrets()),
        Err(_) => {
            let found = secrets_each(&|k| std::env::var(k).ok());
            register_secrets(found.iter().map(String::as_str));
        }
    }
}

/// Whether a URL's path and query carry something that looks like a key: a query, or a run of
/// letters and digits that mixes both (8 or more) or is long (20 or more). A plain path such as
/// `/polygon` is a network's name, not a secret: taken for one, every `polygonscan.com` link in a
/// message would lose its middle.
fn key_like(tail: &str) -> bool {
    tail.contains(['?', '='])
        || tail.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).any(|run| {
            let mixed = run.chars().any(|c| c.is_ascii_digit()) && run.chars().any(|c| c.is_ascii_alphabetic());
            (mixed && run.len() >= 8) || run.len() >= 20
        })
}

/// The secrets this process knows (key, bot token, RPC URL paths, the alert token), registered once
/// at start so text an operator typed (a halt reason, an alert) can be cleaned before it is stored,
/// logged or sent.
static KNOWN_SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Adds secrets to the registry used by [`redact`].
pub fn register_secrets<'a>(secrets: impl IntoIterator<Item = &'a str>) {
    if let Ok(mut known) = KNOWN_SECRETS.write() {
        for s in secrets {
            let s = s.trim();
            if s.len() >= 6 && !known.iter().any(|k| k == s) {
                known.push(s.to_owned());
                // A key is often pasted without (or with) its 0x.
                if let Some(bare) = s.strip_prefix("0x").filter(|b| b.len() >= 6) {
                    known.push(bare.to_owned());
                }
            }
        }
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// The registered secrets, longest first (the order [`redact`] replaces them in), for cleaning
/// text already stored.
#[must_use]
pub fn known_secrets() -> Vec<String> {
    KNOWN_SECRETS.read().map(|k| k.clone()).unwrap_or_default()
}

/// `text` with every registered secret replaced by `<redacted>`.
#[must_use]
pub fn redact(text: &str) -> String {
    match KNOWN_SECRETS.read() {
        Ok(known) => {
            let refs: Vec<&str> = known.iter().map(String::as_str).collect();
            scrub(text, &refs)
        }
        Err(_) => text.to_owned(),
    }
}

/// [`redact`] for text already escaped as HTML (Telegram's messages): each secret is looked for
/// as the escaping wrote it too (a key after `&` in a query reads `&amp;` there), and the marker is
/// escaped so that the message still parses.
#[must_use]
pub fn redact_html(text: &str) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let Ok(known) = KNOWN_SECRETS.read() else { return text.to_owned() };
    let escaped: Vec<String> = known.iter().map(|k| escape(k)).collect();
    let mut all: Vec<&str> = known.iter().chain(&escaped).map(String::as_str).collect();
    all.sort_by_key(|k| std::cmp::Reverse(k.len()));
    scrub(text, &all).replace("<redacted>", "&lt;redacted&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn secrets_are_found_one_by_one_in_an_environment_that_is_not_valid() {
        let m: HashMap<&str, &str> = [
            ("PRIVATE_KEY", " 0xabcdef0123456789 "),
            ("TELEGRAM_BOT_TOKEN", "123:tok-en"),
            ("TELEGRAM_CHAT_ID", "not a number"),
            ("POLYGON_RPC_FALLBACK_URLS", "https://a.example/v2/k3y0123456789, https://user:pw@b.example/"),
            ("GAMMA_URL", "https://gamma-api.polymarket.com"),
        ]
        .into_iter()
        .collect();
        let get = |k: &str| m.get(k).map(|v| (*v).to_owned());
        assert!(Env::from_lookup(&get).is_err());
        let found = secrets_each(&get);
        for want in ["0xabcdef0123456789", "abcdef0123456789", "123:tok-en", "/v2/k3y0123456789", "user:pw"] {
            assert!(found.iter().any(|f| f == want), "{want} in {found:?}");
        }
        assert!(!found.iter().any(|f| f.contains("gamma-api")), "{found:?}");
    }

    fn env(pairs: &[(&str, &str)]) -> Result<Env, Vec<Problem>> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Env::from_lookup(&move |k| m.get(k).cloned())
    }

    #[test]
    fn paper_by_default_with_no_keys() {
        let e = env(&[]).unwrap();
        assert_eq!(e.paper_trading, None);
        assert_eq!(e.rpc_urls, vec![DEFAULT_RPC_URL.to_owned()]);
    }

    #[test]
    fn names_every_bad_variable_without_leaking_secrets() {
        let errs = env(&[
            ("POLYGON_RPC_URL", "ftp://x"),
            ("PAPER_TRADING", "maybe"),
            ("PRIVATE_KEY", "0xdeadbeefsecret"),
            ("TELEGRAM_CHAT_ID", "12,abc"),
            ("POLYGON_WS_URL", "http://nope"),
        ])
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["POLYGON_RPC_URL", "POLYGON_WS_URL", "PAPER_TRADING", "PRIVATE_KEY", "TELEGRAM_CHAT_ID"]);
        assert!(!format!("{errs:?}").contains("deadbeefsecret"));
    }

    /// Plain http or ws carrying a secret is taken only for this machine or a private network.
    #[test]
    fn a_secret_never_goes_unencrypted_to_a_public_host() {
        // (variable, value, refused)
        let cases = [
            ("CLOB_HOST", "http://clob.polymarket.com", true),
            ("CLOB_HOST", "https://clob.polymarket.com", false),
            ("CLOB_HOST", "http://127.0.0.1:8080", false),
            ("TELEGRAM_API_URL", "http://api.telegram.org", true),
            ("TELEGRAM_API_URL", "http://[::1]:9000", false),
            ("POLYGON_RPC_URL", "http://polygon-mainnet.example.com/v2/SECRETKEY0123", true),
            ("POLYGON_RPC_URL", "http://10.0.0.5:8545", false),
            ("POLYGON_RPC_URL", "http://192.168.1.20:8545", false),
            // No key in its URL, but the chain data we trade on could be forged on the way.
            ("POLYGON_RPC_URL", "http://8.8.8.8:8545", true),
            ("POLYGON_RPC_URL", "http://8.8.8.8:8545/SECRETKEY0123456789abcdef", true),
            ("POLYGON_RPC_URL", "http://user:SECRETKEY@rpc.example.com", true),
            // Shared space: carrier-grade NAT as much as Tailscale.
            ("CLOB_HOST", "http://100.101.102.103:8080", true),
            ("CLOB_HOST", "http://[::ffff:127.0.0.1]:8080", false),
            ("CLOB_HOST", "http://clob-proxy.tail1234.ts.net", false),
            ("CLOB_HOST", "http://100.128.0.1:8080", true),
            ("POLYGON_RPC_URL", "http://bor:8545", false),
            ("POLYGON_RPC_URL", "http://node.internal:8545", false),
            ("POLYGON_RPC_URL", "http://[fd00::5]:8545", false),
            ("POLYGON_RPC_FALLBACK_URLS", "https://a.example, http://b.example/SECRETKEY0123", true),
            ("POLYGON_WS_URL", "ws://polygon.example.com/SECRETKEY0123", true),
            ("POLYGON_WS_URL", "ws://localhost:8546", false),
            // Carries nothing secret: plain http is the operator's choice.
            ("GAMMA_URL", "http://gamma.example.com", false),
        ];
        for (name, value, refused) in cases {
            let got = env(&[(name, value)]);
            let said: Vec<_> = got.as_ref().err().into_iter().flatten().filter(|p| p.field == name).collect();
            assert_eq!(!said.is_empty(), refused, "{name}={value}: {got:?}");
            assert!(!format!("{said:?}").contains("SECRETKEY"), "{said:?}");
        }
    }

    #[test]
    fn a_url_with_the_right_scheme_that_cannot_be_used_is_refused_without_its_secrets() {
        let cases = [
            ("TELEGRAM_API_URL", "https://api.telegram.org:abc"),
            ("TELEGRAM_API_URL", "https://api telegram.org"),
            ("CLOB_HOST", "https://clob.example:99999"),
            ("POLYGON_RPC_URL", "https://user:s3cretpw@no de.example/v2/KEYKEYKEY"),
        ];
        for (name, url) in cases {
            let errs =
                env(&[(name, url), ("TELEGRAM_BOT_TOKEN", "123:ABCDEFGH"), ("TELEGRAM_CHAT_ID", "42")]).expect_err(url);
            assert_eq!(errs.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), [name], "{url}");
            let shown = format!("{errs:?}");
            assert!(shown.contains("not a usable URL"), "{shown}");
            assert!(!shown.contains("s3cretpw") && !shown.contains("KEYKEYKEY"), "{shown}");
        }
        assert!(env(&[("TELEGRAM_API_URL", "http://127.0.0.1:8081")]).is_ok());
    }

    #[test]
    fn a_chat_listed_twice_is_one_chat_and_zero_is_no_chat() {
        let e = env(&[("TELEGRAM_CHAT_ID", "123, +123,-100200,123")]).unwrap();
        assert_eq!(e.telegram_chat_ids, [123, -100_200]);
        let errs = env(&[("TELEGRAM_CHAT_ID", "0,123")]).unwrap_err();
        assert_eq!(errs.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["TELEGRAM_CHAT_ID"]);
    }

    #[test]
    fn a_token_or_key_in_the_wrong_variable_is_never_echoed() {
        let token = "123456789:AAHsecretsecretsecret";
        let key = "8f3a9c0d4e5b6a7f8e9d0c1b2a3f4e5d";
        // (variable, value, a word the error must still say)
        for (name, value, says) in [
            ("TELEGRAM_CHAT_ID", token, "not a number"),
            ("TELEGRAM_CHAT_ID", "12,abc-def-ghij-klmn-opqr-stuv-wx", "not a number"),
            ("TELEGRAM_API_URL", token, "no scheme"),
            ("POLYGON_RPC_URL", key, "no scheme"),
            ("POLYGON_WS_URL", key, "no scheme"),
            ("CLOB_HOST", key, "no scheme"),
        ] {
            let errs = env(&[(name, value), ("TELEGRAM_BOT_TOKEN", token)]).unwrap_err();
            let text = format!("{errs:?}");
            assert!(!text.contains("AAHsecret") && !text.contains("8f3a9c0d4e5b"), "{name}: {text}");
            assert!(errs.iter().any(|p| p.field == name && p.message.contains(says)), "{name}: {text}");
        }
        let errs = env(&[("TELEGRAM_CHAT_ID", "12,4-2")]).unwrap_err();
        assert!(errs[0].message.contains("\"4-2\""), "a short mistyped id is still shown: {errs:?}");
    }

    #[test]
    fn legacy_names_are_refused() {
        let errs = env(&[("MAX_DAILY_LOSS", "50")]).unwrap_err();
        assert_eq!(errs[0].field, "MAX_DAILY_LOSS");
    }

    #[test]
    fn redacts_urls_and_debug() {
        assert_eq!(
            redact_url("https://polygon-mainnet.g.alchemy.com/v2/SECRETKEY"),
            "https://polygon-mainnet.g.alchemy.com/…"
        );
        assert_eq!(redact_url("wss://user:pw@node.example:8546"), "wss://node.example:8546");
        // A password holding '/', '?' or '#' unescaped: no part of it is shown.
        for (url, shown) in [
            ("https://user:pa/ss@host.example/v2/abc", "https://host.example/…"),
            ("https://user:pa?ss@host.example", "https://host.example"),
            ("https://user:pa#ss@host.example:8545", "https://host.example:8545"),
            ("https://u:a/b@c@host.example/", "https://host.example/…"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let secrets = url_secrets(url);
            let scrubbed = scrub(&format!("GET {url} failed"), &secrets);
            assert!(!scrubbed.contains("pa") && !scrubbed.contains("ss@") && !scrubbed.contains("a/b"), "{scrubbed}");
        }
        let e = env(&[
            ("POLYGON_RPC_URL", "https://n.example/key123456"),
            ("TELEGRAM_BOT_TOKEN", "123:ABCDEFGH"),
            ("TELEGRAM_CHAT_ID", "42"),
        ])
        .unwrap();
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("key123456") && !dbg.contains("ABCDEFGH"), "{dbg}");
        assert_eq!(
            scrub("GET https://n.example/key123456 failed", &e.secrets()),
            "GET https://n.example<redacted> failed"
        );
        // Escaped as HTML, a secret is still found, and the marker leaves the markup valid.
        register_secrets(["?network=polygon&dkey=K3Y4567890"]);
        assert_eq!(
            redact_html("<b>rpc</b> https://x.example/?network=polygon&amp;dkey=K3Y4567890 down"),
            "<b>rpc</b> https://x.example/&lt;redacted&gt; down"
        );
        // A path that names a network is not a key: links in messages stay whole.
        let e = env(&[("POLYGON_RPC_URL", "https://rpc.ankr.com/polygon")]).unwrap();
        let link = "https://polygonscan.com/tx/0xabc";
        assert_eq!(scrub(link, &e.secrets()), link);
        for (tail, key) in [
            ("/polygon", false),
            ("/polygon-mainnet/", false),
            ("/v2/abc123def456", true),
            ("/polygon/0123456789abcdef0123", true),
            ("/ABCDEFGHIJKLMNOPQRSTUVWX", true),
            ("/?apikey=x", true),
        ] {
            assert_eq!(key_like(tail), key, "{tail}");
        }
        // Credentials before the host, in any URL the daemon calls.
        let e = env(&[
            ("GAMMA_URL", "https://me:hunter22@proxy.example"),
            ("CLOB_HOST", "https://clob:s3cr3tpw@p.example"),
        ])
        .unwrap();
        assert_eq!(
            scrub(
                "error for url (https://me:hunter22@proxy.example/markets) and https://clob:s3cr3tpw@p.example",
                &e.secrets()
            ),
            "error for url (https://<redacted>@proxy.example/markets) and https://<redacted>@p.example"
        );
    }
}
