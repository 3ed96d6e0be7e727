//! One module per `mdfh` subcommand.

pub mod book;
pub mod convert;
pub mod inspect;
