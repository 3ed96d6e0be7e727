//! The mdfh feed handler: the pipeline, its configuration and the subcommands of the `mdfh` binary.

pub mod cmd;
pub mod lobster;
