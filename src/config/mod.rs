//! Everything an operator configures: settings (TOML, layered), the environment (endpoints and
//! secrets) and `wallets.json` (targets), each validated so that *every* problem is reported at once.

pub mod env;
pub mod env_vars;
pub mod hidden_env;
pub mod location;
pub mod mode;
pub mod problem;
pub mod settings;
pub mod settings_check;
mod settings_load;
mod settings_numbers;
mod settings_rules;
pub use settings_rules::control_socket_clash;
mod settings_telegram;
pub mod strict_json;
pub mod systemd_env;
pub mod wallets;
pub mod wallets_edit;
pub mod wallets_fit;
mod wallets_rules;

pub use env::{Env, redact_url};
pub use location::Location;
pub use mode::Mode;
pub use problem::Problem;
pub use settings::Settings;
pub use wallets::{Target, Wallets};
