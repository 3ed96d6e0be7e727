//! One module per `mdfh` subcommand.

pub mod book;
pub mod convert;
pub mod export;
pub mod generate;
pub mod inspect;
pub mod record;
pub mod replay;
pub mod run;
pub mod sim;
pub mod subscribe;
