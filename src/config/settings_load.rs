//! Loading the settings: the built-in defaults, the system file, `--config`, then `POLYCOPY_`
//! variables, each layer over the one before; every problem is named at its file or variable.

use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};

use super::settings::{DEFAULT_TOML, Settings};
use crate::config::Problem;

/// Top-level settings keys and sections: only `POLYCOPY_*` variables naming one of these are
/// settings. Others (`POLYCOPY_SYSTEM_CONFIG`, the scripts' `POLYCOPY_BIN`, ...) are left alone, while
/// a typo inside a section (`POLYCOPY_RISK__MAX_ORDR_USDC`) still fails as an unknown key.
const SETTINGS_KEYS: [&str; 6] =
    ["mode", "db_path", "control_socket", "wallets_path", "emergency_stop_file", "log_format"];
const SETTINGS_SECTIONS: [&str; 12] = [
    "chain__",
    "copy__",
    "risk__",
    "paper__",
    "http__",
    "health__",
    "telegram__",
    "live__",
    "markets__",
    "alerts__",
    "redeem__",
    "detection__",
];

/// Settings that decide which journal and targets a command acts on, and the stop file an operator
/// touches when the daemon does not answer: never from the environment, which the service sees and
/// an operator's shell does not (a stop file set there would be one the daemon never reads; a
/// targets file there, one that `status`, `vet` and cron's reports never read).
const FILE_ONLY_VARS: [&str; 6] = [
    "POLYCOPY_MODE",
    "POLYCOPY_DB_PATH",
    "POLYCOPY_LIVE__DB_PATH",
    "POLYCOPY_CONTROL_SOCKET",
    "POLYCOPY_EMERGENCY_STOP_FILE",
    "POLYCOPY_WALLETS_PATH",
];

/// A value set by a `POLYCOPY_` variable is blamed on that variable, not on the file.
fn blame_variables(problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|p| {
            let var = format!("POLYCOPY_{}", p.field.replace('.', "__").to_ascii_uppercase());
            if std::env::var_os(&var).is_some() { Problem::new("environment", &var, p.message) } else { p }
        })
        .collect()
}

/// Settings that take one of a few words, with the words.
const CHOICES: [(&str, &[&str]); 6] = [
    ("mode", &["paper", "live"]),
    ("log_format", &["text", "json"]),
    ("risk.daily_loss_action", &["reduce", "halt"]),
    ("paper.fill_model", &["target_price", "order_book"]),
    ("detection.trigger", &["confirmed", "pending"]),
    ("detection.pending_source", &["txpool", "subscription"]),
];

/// How loud each kind of Telegram message is (`[telegram.notify]`).
const NOTIFY_LEVELS: [&str; 3] = ["on", "silent", "off"];

/// Every word-valued setting holding a word it does not take, each at its key with the words it
/// takes. Checked before the settings are typed: typing would stop at the first one and name the
/// program's enum instead of the setting's choices.
fn choice_problems(cfg: &Config, origin: &str) -> Vec<Problem> {
    let mut found: Vec<(String, String, &[&str])> = CHOICES
        .iter()
        .filter_map(|(key, words)| cfg.get_string(key).ok().map(|v| ((*key).to_owned(), v, *words)))
        .collect();
    if let Ok(levels) = cfg.get_table("telegram.notify") {
        for (kind, v) in levels {
            let kind = super::problem::shown_key(&kind);
            found.push((format!("telegram.notify.{kind}"), v.to_string(), &NOTIFY_LEVELS[..]));
        }
    }
    found
        .into_iter()
        .filter(|(_, v, words)| !words.contains(&v.as_str()))
        .map(|(key, v, words)| Problem::new(origin, &key, must_be(words, &v)))
        .collect()
}

/// "must be "a" or "b", got "x"", or with more words, "must be one of …".
fn must_be(words: &[&str], got: &str) -> String {
    match words {
        [a, b] => format!("must be {a:?} or {b:?}, got {}", crate::config::problem::quoted(got)),
        _ => {
            let all: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
            format!("must be one of {}, got {}", all.join(", "), crate::config::problem::quoted(got))
        }
    }
}

/// The settings files layered on the defaults: the system file, then `--config`.
struct Layers {
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    /// The last file read (problems are blamed on it), or the defaults.
    origin: String,
    /// Every file read, in order.
    read: Vec<String>,
}

/// Adds the system settings file and `--config` to `builder`, in that order.
fn files(
    sources: &SettingsSources,
    mut builder: config::ConfigBuilder<config::builder::DefaultState>,
) -> Result<Layers, Vec<Problem>> {
    let mut origin = "built-in defaults".to_owned();
    let mut read = Vec::new();
    // A settings file that exists but cannot be read is an error, never skipped: skipping it would
    // make this command act on another journal than the daemon's (e.g. run without sudo).
    for f in sources.system_file.iter().chain(&sources.config_file) {
        if let Err(e) = std::fs::File::open(f)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(vec![Problem::new(
                f.display().to_string(),
                "(file)",
                format!(
                    "cannot read it: {e}. It holds the mode and journal every command must agree on: run as root (sudo) or as the service user"
                ),
            )]);
        }
    }
    if let Some(sys) = sources.system_file.as_deref().filter(|p| p.exists()) {
        builder = builder.add_source(File::from(sys).format(FileFormat::Toml));
        origin = sys.display().to_string();
        read.push(origin.clone());
    }
    if let Some(p) = &sources.config_file {
        if !p.exists() {
            return Err(vec![Problem::new(p.display().to_string(), "--config", "file not found")]);
        }
        builder = builder.add_source(File::from(p.as_path()).format(FileFormat::Toml));
        origin = p.display().to_string();
        if !read.contains(&origin) {
            read.push(origin.clone());
        }
    }
    Ok(Layers { builder, origin, read })
}

/// The `POLYCOPY_` variables as a settings layer. Refused: a variable polycopy does not know (a
/// typo would otherwise be ignored), and one for a setting only the file may hold.
fn env_source() -> Result<Environment, Vec<Problem>> {
    // `vars_os`: a variable that is not UTF-8 (a shell's PWD in a directory named in Latin-1) made
    // `vars` panic, and `polycopy halt` with it. Only ours must be text.
    let all: Vec<(String, Option<String>)> =
        std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.into_string().ok())).collect();
    let unknown = crate::config::env_vars::unknown_vars(all.iter().map(|(k, _)| k.as_str()));
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let not_text: Vec<Problem> = all
        .iter()
        .filter(|(k, v)| v.is_none() && is_settings_var(k))
        .map(|(k, _)| Problem::new("environment", k.as_str(), "its value is not UTF-8 text"))
        .collect();
    if !not_text.is_empty() {
        return Err(not_text);
    }
    let env: config::Map<String, String> =
        all.into_iter().filter_map(|(k, v)| Some((k, v?))).filter(|(k, _)| is_settings_var(k)).collect();
    let pinned: Vec<Problem> = env
        .keys()
        .filter(|k| FILE_ONLY_VARS.contains(&k.to_ascii_uppercase().as_str()))
        .map(|k| {
            Problem::new(
                "environment",
                k.as_str(),
                "the mode, journals, control socket, targets file and emergency stop file are set only in \
                 the settings file, so that the daemon, the command line and cron always act on the same \
                 journal, targets and stop file: move it there",
            )
        })
        .collect();
    if !pinned.is_empty() {
        return Err(pinned);
    }
    Ok(Environment::with_prefix("POLYCOPY")
        .source(Some(env))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("chain.exchanges")
        .with_list_parse_key("http.allowed_hosts"))
}

fn is_settings_var(name: &str) -> bool {
    name.strip_prefix("POLYCOPY_").is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        SETTINGS_KEYS.contains(&k.as_str()) || SETTINGS_SECTIONS.iter().any(|s| k.starts_with(s))
    })
}

/// Every value of the wrong type in the merged settings, each at its file or variable.
fn type_problems(cfg: &Config) -> Vec<Problem> {
    let defaults = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml)).build();
    let table = |c: &Config| match &c.cache.kind {
        config::ValueKind::Table(t) => t.clone(),
        _ => config::Map::new(),
    };
    match defaults {
        Ok(d) => crate::config::settings_check::check(&table(&d), &table(cfg)),
        Err(e) => vec![Problem::new("built-in defaults", "(settings)", e.to_string())],
    }
}

/// Where settings come from.
#[derive(Debug, Clone, Default)]
pub struct SettingsSources {
    /// `--config PATH`.
    pub config_file: Option<PathBuf>,
    /// The system-wide file, read when present (`None`: not read).
    pub system_file: Option<PathBuf>,
}

impl Settings {
    /// Loads and validates the layered settings.
    ///
    /// # Errors
    /// Every problem found, each naming its file and key.
    pub fn load(sources: &SettingsSources) -> Result<Self, Vec<Problem>> {
        let builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        let Layers { builder, origin, read } = files(sources, builder)?;
        let cfg = builder
            .add_source(env_source()?)
            .build()
            .map_err(|e| vec![Problem::new(origin.clone(), "(file)", without_quoted_source(&e))])?;
        let typed = type_problems(&cfg);
        if !typed.is_empty() {
            return Err(typed);
        }
        let words = blame_variables(choice_problems(&cfg, &origin));
        if !words.is_empty() {
            return Err(words);
        }
        let mut s: Self = cfg
            .try_deserialize()
            .map_err(|e| vec![Problem::new(origin.clone(), "(settings)", without_quoted_source(&e))])?;
        s.origin = if read.is_empty() { "built-in defaults".to_owned() } else { read.join(" + ") };
        let problems = blame_variables(s.validate(&origin));
        if problems.is_empty() { Ok(s) } else { Err(problems) }
    }
}

impl Settings {
    /// What a halt or resume needs when the full load fails: the built-in defaults with the files'
    /// own mode, journals, control socket, stop file, targets file and health server's address
    /// (`check-config` names them to the scripts), read with no other check and without the
    /// environment (which may not set those). A file edited badly while the daemon runs on its old
    /// settings must not keep a halt from reaching it.
    ///
    /// # Errors
    /// When a file cannot be read or is not TOML at all.
    pub fn load_for_control(sources: &SettingsSources) -> Result<Self, Vec<Problem>> {
        let defaults = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize::<Self>);
        let mut s = defaults.map_err(|e| vec![Problem::new("built-in defaults", "(settings)", e.to_string())])?;
        let Layers { builder, origin, read } = files(sources, Config::builder())?;
        let cfg =
            builder.build().map_err(|e| vec![Problem::new(origin.clone(), "(file)", without_quoted_source(&e))])?;
        // The mode picks the journal: one that cannot be read is an error, never paper by default.
        match cfg.get::<crate::config::Mode>("mode") {
            Ok(mode) => s.mode = mode,
            Err(config::ConfigError::NotFound(_)) => {}
            Err(e) => return Err(vec![Problem::new(origin, "mode", format!("must be \"paper\" or \"live\": {e}"))]),
        }
        for (key, field) in [
            ("db_path", &mut s.db_path),
            ("live.db_path", &mut s.live.db_path),
            ("control_socket", &mut s.control_socket),
            ("emergency_stop_file", &mut s.emergency_stop_file),
            ("wallets_path", &mut s.wallets_path),
        ] {
            if let Ok(v) = cfg.get_string(key) {
                *field = PathBuf::from(v);
            }
        }
        // Where the health server listens: the scripts' health check and alert relay find the
        // daemon there.
        if let Ok(v) = cfg.get_string("http.listen") {
            s.http.listen = v;
        }
        s.origin = if read.is_empty() { "built-in defaults".to_owned() } else { read.join(" + ") };
        Ok(s)
    }
}

/// A settings error's text without the source lines a TOML parse error quotes (`3 | …` and its
/// caret). A line pasted into the wrong file (`TELEGRAM_BOT_TOKEN=…` in polycopy.toml, or
/// `--config` pointed at the env file) would otherwise print a secret, and problems are shown,
/// logged and sent. The line and column stay, so the operator still finds it.
/// A value the parser quotes (`invalid type: string "…"`, an element of a list the checks do not
/// type) is shown as [`crate::config::problem::quoted`] does: a token pasted there is not repeated.
fn without_quoted_source(e: &config::ConfigError) -> String {
    redact_strings(&e.to_string())
        .lines()
        .filter(|line| {
            !line.trim_start().trim_start_matches(|c: char| c.is_ascii_digit()).trim_start().starts_with('|')
        })
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The values a parser's message quotes (`string "…"`, Debug-escaped; ``unknown variant `…` ``
/// for a word setting, as written) replaced by what `quoted` shows.
fn redact_strings(msg: &str) -> String {
    redact_variant(&redact_escaped(msg))
}

/// Each `string "…"` (its text Debug-escaped: it ends at the first unescaped quote).
fn redact_escaped(msg: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len() - 1]);
        let body = &rest[at + MARK.len()..];
        let mut escaped = false;
        let end = body.char_indices().find_map(|(i, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes.then_some(i)
        });
        let Some(end) = end else {
            out.push_str("(a string)");
            return out;
        };
        out.push_str(&crate::config::problem::quoted(&body[..end]));
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

/// An ``unknown variant `…` `` (its text as written, so it may hold a backtick: it ends at the
/// last one before the list of variants expected).
fn redact_variant(msg: &str) -> String {
    const MARK: &str = "unknown variant `";
    let Some(at) = msg.find(MARK) else { return msg.to_owned() };
    let (head, body) = (&msg[..at + MARK.len() - 1], &msg[at + MARK.len()..]);
    match body.rfind("`, expected").or_else(|| body.rfind('`')) {
        Some(end) => format!("{head}{}{}", crate::config::problem::quoted(&body[..end]), &body[end + 1..]),
        None => format!("{head}(a string)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_a_parser_quotes_are_shown_only_when_short() {
        let token = "123456789:AAHsecretsecretsecretsecret";
        for (msg, want) in [
            (
                format!("invalid type: string \"{token}\", expected u64"),
                "invalid type: string a string of 37 characters, expected u64",
            ),
            ("invalid type: string \"abc\", expected u64".to_owned(), "invalid type: string \"abc\", expected u64"),
            (
                format!("a string \"x\\\"{token}\" and string \"y\""),
                "a string a string of 40 characters and string \"y\"",
            ),
            (format!("cut string \"{token}"), "cut string (a string)"),
            (
                format!("unknown variant `{token}`, expected `json` or `text`"),
                "unknown variant a string of 37 characters, expected `json` or `text`",
            ),
            (
                format!("unknown variant `a`b{token}`, expected `json` or `text`"),
                "unknown variant a string of 40 characters, expected `json` or `text`",
            ),
        ] {
            assert_eq!(redact_strings(&msg), want, "{msg}");
        }
    }

    #[test]
    fn a_line_that_is_not_toml_is_named_by_its_place_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        for text in [
            "mode = \"paper\"\nTELEGRAM_BOT_TOKEN=123456789:SECRETTOKENvalue\n",
            "POLYGON_RPC_URL=https://polygon.example/v2/SECRETTOKENvalue\n",
            "PRIVATE_KEY = 0xSECRETTOKENvalue\n",
        ] {
            std::fs::write(&f, text).unwrap();
            let sources = SettingsSources { config_file: Some(f.clone()), system_file: None };
            for problems in [Settings::load(&sources).unwrap_err(), Settings::load_for_control(&sources).unwrap_err()] {
                let all = crate::config::problem::render(&problems);
                assert!(!all.contains("SECRETTOKEN"), "{text}: {all}");
                assert!(all.contains("line"), "{text}: {all}");
            }
        }
    }

    #[test]
    fn every_section_of_the_defaults_takes_environment_variables() {
        // A section left out of SETTINGS_SECTIONS would have its POLYCOPY_ variables ignored.
        let c = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .build()
            .unwrap();
        let map = c.try_deserialize::<config::Map<String, config::Value>>().unwrap();
        for (k, v) in &map {
            if matches!(v.kind, config::ValueKind::Table(_)) {
                assert!(SETTINGS_SECTIONS.contains(&format!("{k}__").as_str()), "[{k}] is not in SETTINGS_SECTIONS");
            }
        }
    }

    #[test]
    fn only_variables_naming_settings_are_settings() {
        for (name, is) in [
            ("POLYCOPY_DB_PATH", true),
            ("POLYCOPY_RISK__MAX_ORDER_USDC", true),
            ("POLYCOPY_RISK__MAX_ORDR_USDC", true),
            ("POLYCOPY_BIN", false),
            ("POLYCOPY_SYSTEM_CONFIG", false),
            ("POLYCOPY_FAULT", false),
            ("POLYGON_RPC_URL", false),
        ] {
            assert_eq!(is_settings_var(name), is, "{name}");
        }
    }

    #[test]
    fn a_word_a_setting_does_not_take_is_named_with_the_words_it_takes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        let cases = [
            ("mode = \"lve\"", "mode", "must be \"paper\" or \"live\", got \"lve\""),
            ("log_format = \"xml\"", "log_format", "must be \"text\" or \"json\", got \"xml\""),
            ("[risk]\ndaily_loss_action = \"halts\"", "risk.daily_loss_action", "must be \"reduce\" or \"halt\""),
            ("[paper]\nfill_model = \"book\"", "paper.fill_model", "must be \"target_price\" or \"order_book\""),
            ("[detection]\ntrigger = \"soon\"", "detection.trigger", "must be \"confirmed\" or \"pending\""),
            ("[detection]\npending_source = \"ws\"", "detection.pending_source", "\"txpool\" or \"subscription\""),
            (
                "[telegram.notify]\nexecuted = \"loud\"",
                "telegram.notify.executed",
                "one of \"on\", \"silent\", \"off\"",
            ),
        ];
        for (text, key, says) in cases {
            std::fs::write(&f, text).unwrap();
            let sources = SettingsSources { config_file: Some(f.clone()), system_file: None };
            let problems = Settings::load(&sources).unwrap_err();
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].field, key, "{text}");
            assert!(problems[0].message.contains(says), "{text}: {}", problems[0].message);
        }
        // Every wrong word at once, not only the first.
        std::fs::write(&f, "log_format = \"xml\"\n[paper]\nfill_model = \"book\"\n").unwrap();
        let sources = SettingsSources { config_file: Some(f.clone()), system_file: None };
        assert_eq!(Settings::load(&sources).unwrap_err().len(), 2);
        // And the right words load as their typed values.
        std::fs::write(
            &f,
            "log_format = \"json\"\n[risk]\ndaily_loss_action = \"halt\"\n[paper]\nfill_model = \"order_book\"\n",
        )
        .unwrap();
        let s = Settings::load(&SettingsSources { config_file: Some(f), system_file: None }).unwrap();
        assert_eq!(s.log_format, crate::config::settings::LogFormat::Json);
        assert_eq!(s.risk.daily_loss_action, crate::config::settings::DailyLossAction::Halt);
        assert_eq!(s.paper.fill_model, crate::config::settings::FillModel::OrderBook);
    }
}
