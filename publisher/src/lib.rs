//! Subscriber protocol and fan-out for mdfh.

pub mod envelope;

pub use envelope::Envelope;
