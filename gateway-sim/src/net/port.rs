//! [`Port`]: a smoltcp device that is two packet queues. The switch fills `rx` and empties
//! `tx`; the interface does the opposite.

use std::collections::VecDeque;

use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::time::Instant;

use super::{Packet, capabilities};

/// Packets a port queues per direction before it drops new ones (tail drop, like a NIC ring).
pub const MAX_PORT_QUEUE: usize = 512;

/// A switch port: a queue of packets to deliver to the interface (`rx`) and of packets the
/// interface sent (`tx`).
#[derive(Debug, Default)]
pub struct Port {
    rx: VecDeque<Packet>,
    tx: VecDeque<Packet>,
    dropped: u64,
}

impl Port {
    /// An empty port.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue a packet for the interface; `false` (and the packet is dropped) when the queue
    /// holds [`MAX_PORT_QUEUE`] packets.
    pub fn deliver(&mut self, packet: Packet) -> bool {
        push_bounded(&mut self.rx, packet, &mut self.dropped)
    }

    /// Queue a packet as if the interface had sent it (for packets made outside it).
    pub fn send(&mut self, packet: Packet) -> bool {
        push_bounded(&mut self.tx, packet, &mut self.dropped)
    }

    /// The next packet the interface sent.
    pub fn take_sent(&mut self) -> Option<Packet> {
        self.tx.pop_front()
    }

    /// Whether packets wait in either direction.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        !self.rx.is_empty() || !self.tx.is_empty()
    }

    /// Packets waiting for the interface.
    #[must_use]
    pub fn pending_rx(&self) -> usize {
        self.rx.len()
    }

    /// The packets waiting for the interface (the uplink inspects them before its poll).
    pub(crate) fn rx_queue_mut(&mut self) -> &mut VecDeque<Packet> {
        &mut self.rx
    }

    /// Packets dropped because a queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

fn push_bounded(q: &mut VecDeque<Packet>, packet: Packet, dropped: &mut u64) -> bool {
    if q.len() >= MAX_PORT_QUEUE {
        *dropped += 1;
        false
    } else {
        q.push_back(packet);
        true
    }
}

/// A received packet.
#[derive(Debug)]
pub struct PortRx(Packet);

impl phy::RxToken for PortRx {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(&self.0)
    }
}

/// Room to send one packet.
#[derive(Debug)]
pub struct PortTx<'a> {
    tx: &'a mut VecDeque<Packet>,
    dropped: &'a mut u64,
}

impl phy::TxToken for PortTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut buf = vec![0; len];
        let r = f(&mut buf);
        push_bounded(self.tx, buf, self.dropped);
        r
    }
}

impl Device for Port {
    type RxToken<'a> = PortRx;
    type TxToken<'a> = PortTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((
            PortRx(p),
            PortTx {
                tx: &mut self.tx,
                dropped: &mut self.dropped,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        Some(PortTx {
            tx: &mut self.tx,
            dropped: &mut self.dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken, TxToken};

    #[test]
    fn queue_limit_at_below_above() {
        let mut p = Port::new();
        for i in 0..MAX_PORT_QUEUE {
            assert!(p.deliver(vec![i as u8]), "{i}");
        }
        assert!(!p.deliver(vec![0]));
        assert_eq!(p.dropped(), 1);
        assert_eq!(p.pending_rx(), MAX_PORT_QUEUE);
    }

    #[test]
    fn packets_flow_through() {
        let mut p = Port::new();
        p.deliver(vec![1, 2, 3]);
        let (rx, _) = p.receive(Instant::ZERO).unwrap();
        assert_eq!(rx.consume(|b| b.to_vec()), vec![1, 2, 3]);
        let tx = p.transmit(Instant::ZERO).unwrap();
        tx.consume(2, |b| b.copy_from_slice(&[9, 9]));
        assert_eq!(p.take_sent(), Some(vec![9, 9]));
        assert!(!p.is_busy());
    }
}
