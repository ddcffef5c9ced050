//! The wire: frame layout, limits, the handshake and the message enums
//! shared by every peer.

pub mod address;
pub mod codec;
pub mod listener;
pub mod messages;
pub mod security;
pub mod transport;
pub mod writer;

pub use codec::{FrameLimits, ReadTimeouts, WireError};
pub use security::{Security, SecurityError, TlsFiles};
