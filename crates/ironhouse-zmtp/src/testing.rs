//! Helpers for driving two engines against each other in memory, for tests,
//! examples and fuzzing. No I/O, no clock.

use bytes::BytesMut;
use std::time::Instant;

use crate::{Connection, ProtocolError};

/// Moves bytes between `a` and `b` until neither has anything to send.
/// Bounded: gives up after 1,000 exchanges (which no valid handshake needs).
///
/// # Errors
/// The first protocol error either side reports.
pub fn pump(a: &mut Connection, b: &mut Connection, now: Instant) -> Result<(), ProtocolError> {
    let mut a_in = BytesMut::new();
    let mut b_in = BytesMut::new();
    for _ in 0..1000 {
        let to_b = a.transmit().take_all();
        let to_a = b.transmit().take_all();
        if to_a.is_empty() && to_b.is_empty() {
            return Ok(());
        }
        for c in to_b {
            b_in.extend_from_slice(&c);
        }
        for c in to_a {
            a_in.extend_from_slice(&c);
        }
        b.handle_input(&mut b_in, now)?;
        a.handle_input(&mut a_in, now)?;
    }
    Ok(())
}
