//! # polycopy
//!
//! A Polymarket copy-trading daemon: it watches target wallets' fills on Polygon and mirrors them
//! with its own orders, sized by rules, under hard risk limits. Paper trading is the default.
//!
//! ## Layout
//! - [`config`]: settings, environment and `wallets.json`, validated with every problem reported.
//! - [`domain`]: fills, intents, executions and exact fixed-point amounts.
//! - [`chain`]: Polygon RPC with failover, `OrderFilled` decoding, the feed with backfill and reorgs.
//! - [`risk`]: pure sizing, limits, book and circuit breaker.
//! - [`clob`]: Polymarket CLOB V2 rules for live orders (tick sizes, rounding, minimum size).
//! - [`store`]: the SQLite journal (exactly-once bookkeeping).
//! - [`actors`]: the actix actors wiring it together: watchers, copier, risk supervisor, executor,
//!   store, notifier, and the wallet registry with hot reload.
//! - [`cli`]: the subcommands an operator runs.
//! - [`control`]: the control socket through which commands reach the running daemon.
//! - [`health`], [`metrics`], [`http`]: `/health` and `/metrics` on loopback.
//! - [`service`]: systemd integration (readiness, watchdog, stopping).
//! - [`report`]: the daily/weekly report (text and PNG chart).
//! - [`telegram`]: reports to and commands from the operator's chats.

// Nothing outside tests may panic on what the network, a file or a user sends: errors are values.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod actors;
pub mod alert_gate;
pub mod chain;
pub mod cli;
pub mod clob;
pub mod config;
pub mod control;
pub mod dashboard;
pub mod domain;
pub mod fault;
pub mod health;
pub mod http;
pub mod market;
pub mod metrics;
pub mod metrics_process;
pub mod redeem;
pub mod report;
pub mod risk;
pub mod service;
pub mod store;
pub mod tasks;
pub mod telegram;
pub mod vet;
pub mod warnings;
