//! One module per `mdfh` subcommand.

pub mod book;
pub mod convert;
pub mod inspect;
pub mod run;
pub mod sim;
pub mod subscribe;
