//! tessera-core: the protocol's data model and rules, with no I/O.
//!
//! Everything here is a plain function of its inputs (time included, through [`clock::Clock`]), so the
//! rules are tested without a server or a database.

pub mod admin;
pub mod authorize;
pub mod bytes;
pub mod claim_names;
pub mod client_ip;
pub mod clock;
pub mod device;
pub mod error;
pub mod grant;
pub mod id;
pub mod lifetimes;
pub mod limits;
pub mod logout;
pub mod model;
pub mod password;
pub mod pkce;
pub mod refresh;
pub mod scope;
pub mod session;
pub mod subject;
pub mod token;
