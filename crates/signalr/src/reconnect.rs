//! Stateful reconnect bookkeeping for one connection.
//!
//! Outbound: every trackable message the writer hands to the socket gets the next sequence
//! id and stays buffered until the client acknowledges it; while more than the configured
//! number of bytes is unacknowledged, the writer takes no further trackable message from the
//! connection's queue (so a client that stops acknowledging eventually overflows the queue).
//! After a reconnect the writer first sends `Sequence` with the oldest unacknowledged id and
//! replays the buffer. Inbound: trackable messages are counted, duplicates after a reconnect
//! are dropped, and the highest id processed is acknowledged by the hub's timer.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::protocol::HubMessage;

/// Sequence state of one stateful-reconnect connection.
#[derive(Debug)]
pub struct ReconnectBuffer {
    limit: usize,
    total_sent: u64,
    buffer: VecDeque<(u64, Bytes)>,
    buffered_bytes: usize,
    next_receiving: u64,
    latest_received: u64,
    last_ack_sent: u64,
    wait_for_sequence: bool,
}

impl ReconnectBuffer {
    /// A buffer that holds at most about `limit` unacknowledged bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            total_sent: 0,
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            next_receiving: 1,
            latest_received: 0,
            last_ack_sent: 0,
            wait_for_sequence: false,
        }
    }

    /// Whether another trackable message may be sent now.
    pub fn can_send(&self) -> bool {
        self.buffered_bytes < self.limit
    }

    /// Records a trackable message handed to the socket; returns its sequence id.
    pub fn on_send(&mut self, bytes: &Bytes) -> u64 {
        self.total_sent += 1;
        self.buffered_bytes += bytes.len();
        self.buffer.push_back((self.total_sent, bytes.clone()));
        self.total_sent
    }

    /// Releases every message up to and including `sequence_id`.
    pub fn ack(&mut self, sequence_id: u64) {
        while let Some((id, bytes)) = self.buffer.front() {
            if *id > sequence_id {
                break;
            }
            self.buffered_bytes -= bytes.len();
            self.buffer.pop_front();
        }
    }

    /// Whether a received message should be processed (false for duplicates after a
    /// reconnect and for anything before the client's `Sequence`).
    pub fn should_process(&mut self, message: &HubMessage) -> bool {
        if self.wait_for_sequence {
            if matches!(message, HubMessage::Sequence { .. }) {
                self.wait_for_sequence = false;
                return true;
            }
            return false;
        }
        if !message.is_trackable() {
            return true;
        }
        let current = self.next_receiving;
        self.next_receiving += 1;
        if current <= self.latest_received {
            return false;
        }
        self.latest_received = current;
        true
    }

    /// Applies the client's `Sequence`: the id of the next trackable message it sends.
    pub fn reset_sequence(&mut self, sequence_id: u64) -> Result<(), &'static str> {
        if sequence_id > self.next_receiving {
            return Err("Sequence ID greater than amount of messages we've received.");
        }
        self.next_receiving = sequence_id;
        Ok(())
    }

    /// Starts a reconnect: returns the sequence id to announce and the messages to replay,
    /// and ignores inbound messages until the client's `Sequence` arrives.
    pub fn begin_resend(&mut self) -> (u64, Vec<Bytes>) {
        self.wait_for_sequence = true;
        let first = self
            .buffer
            .front()
            .map(|(id, _)| *id)
            .unwrap_or(self.total_sent + 1);
        (first, self.buffer.iter().map(|(_, b)| b.clone()).collect())
    }

    /// The `Ack` to send, if messages arrived since the last one.
    pub fn take_pending_ack(&mut self) -> Option<u64> {
        if self.latest_received > self.last_ack_sent {
            self.last_ack_sent = self.latest_received;
            Some(self.latest_received)
        } else {
            None
        }
    }

    /// Unacknowledged bytes.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> HubMessage {
        HubMessage::invocation("x", vec![])
    }

    #[test]
    fn sequence_ack_and_limit() {
        let mut b = ReconnectBuffer::new(10);
        assert!(b.can_send());
        assert_eq!(b.on_send(&Bytes::from_static(b"1234")), 1);
        assert_eq!(b.on_send(&Bytes::from_static(b"1234")), 2);
        assert!(b.can_send());
        assert_eq!(b.on_send(&Bytes::from_static(b"1234")), 3);
        assert!(!b.can_send());
        b.ack(1);
        assert_eq!(b.buffered_bytes(), 8);
        assert!(b.can_send());
        b.ack(0);
        assert_eq!(b.buffered_bytes(), 8);
        let (first, replay) = b.begin_resend();
        assert_eq!(first, 2);
        assert_eq!(replay.len(), 2);
        b.ack(99);
        assert_eq!(b.buffered_bytes(), 0);
        let (first, replay) = b.begin_resend();
        assert_eq!((first, replay.len()), (4, 0));
    }

    #[test]
    fn inbound_dedup_after_reconnect() {
        let mut b = ReconnectBuffer::new(100);
        assert!(b.should_process(&inv()));
        assert!(b.should_process(&HubMessage::Ping));
        assert!(b.should_process(&inv()));
        assert_eq!(b.take_pending_ack(), Some(2));
        assert_eq!(b.take_pending_ack(), None);
        // Reconnect: everything waits for Sequence.
        b.begin_resend();
        assert!(!b.should_process(&inv()));
        assert!(!b.should_process(&HubMessage::Ping));
        assert!(b.should_process(&HubMessage::Sequence { sequence_id: 2 }));
        assert!(b.reset_sequence(2).is_ok());
        // Message 2 again is a duplicate, 3 is new.
        assert!(!b.should_process(&inv()));
        assert!(b.should_process(&inv()));
        assert_eq!(b.take_pending_ack(), Some(3));
        assert!(b.reset_sequence(10).is_err());
    }
}
