//! kiss-auth: authentication for self-storage operators. PMS servers push units and tenancies with
//! company API tokens; white-label apps log tenants in by phone and SMS code; administrators
//! manage companies and tokens.
//!
//! The modules are layers; each uses only the ones below it (`docs/architecture.md`, checked by
//! the `architecture` test):
//!
//! | layer | modules |
//! | --- | --- |
//! | command line | `cli` |
//! | assembly | `app` |
//! | features | `features` |
//! | HTTP plumbing | `http` |
//! | shared services | `services` |
//! | leaves | `infra` |
//! | domain | `domain` |

pub mod app;
pub mod cli;
pub mod domain;
pub mod features;
pub mod http;
pub mod infra;
pub mod services;
