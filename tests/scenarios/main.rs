//! polycopy's integration scenarios, one module per area, built as one test binary. One binary
//! links the dependency tree once instead of once per file: on a two-core CI machine that is
//! minutes of linking and gigabytes of disk saved, and nextest still runs every test in its own
//! process. Run one area with `scripts/test.sh <module>::` (for example `scripts/test.sh live::`).

mod support;

mod backups;
mod chaos;
mod copy_e2e;
mod dashboard;
mod demo;
mod detection;
mod engine;
mod fuzz_config;
mod hardening;
mod install;
mod installed;
mod live;
mod monitoring;
mod operations;
mod operator;
mod ops_scripts;
mod reconcile;
mod redeem;
mod resilience;
mod rtds;
mod service;
mod stopped;
mod stuck_node;
mod targets;
mod telegram;
mod telegram_limits;
mod telegram_quirks;
mod valuation;
mod vet;
mod warnings;
