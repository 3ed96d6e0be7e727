//! The mdfh feed handler: the pipeline, its configuration, the simulator and the subcommands of
//! the `mdfh` binary.
//!
//! - [`pipeline`]: the three pinned stages and the rings between them.
//! - [`config`]: the TOML configuration of `mdfh run`.
//! - [`latency`], [`counters`], [`stats`]: per-stage histograms, counters, the reporter and the
//!   stats HTTP endpoint.
//! - [`idle`]: idle strategies of the stage loops.
//! - [`sim`]: the MoldUDP64 simulator.
//! - [`record`]: recording of received packets to pcap files.
//! - [`export`]: export of books, trades and orders to Parquet, CSV and DBN.
//! - [`lobster`]: LOBSTER to ITCH 5.0 conversion.
//! - [`synthetic`]: a synthetic order flow for load.
//! - [`cmd`]: one module per subcommand.

pub mod cmd;
pub mod config;
pub mod counters;
pub mod export;
pub mod idle;
pub mod latency;
pub mod lobster;
pub mod pipeline;
pub mod ratelimit;
pub mod record;
pub mod sim;
pub mod stats;
pub mod synthetic;
