//! The wire: frame layout, limits, the handshake and the message enums
//! shared by every peer.

pub mod codec;
pub mod messages;
pub mod security;
pub mod transport;

pub use codec::{FrameLimits, WireError};
pub use security::{Security, SecurityError, TlsFiles};
