//! The wire: frame layout, limits, the handshake and the message enums
//! shared by every peer.

pub mod codec;
pub mod messages;
pub mod transport;

pub use codec::{FrameLimits, WireError};
