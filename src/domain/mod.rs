//! The bottom layer: the domain's error type, validation of client input, and phone numbers.
//! Nothing here knows about HTTP, the database pool or the configuration.

pub mod error;
pub mod phone;
pub mod validation;

pub use error::{Error, Result, ValidationErrors};
