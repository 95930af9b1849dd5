//! One domain's event-channel port table.
//!
//! Ports run from 0 to the domain's limit; port 0 is reserved. The table
//! grows lazily, so a port below the limit that was never used reads as
//! [`Channel::Free`]. Cross-domain rules (who may bind, what close does to
//! the peer) live in [`crate::Hub`], which owns every domain's table.

use alloc::vec::Vec;

use crate::abi::{evtchnop, virq, DomId, Port};
use crate::error::XenError;

/// The state of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Not in use.
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Allocated, waiting for `remote` to bind to it.
    Unbound {
        /// The only domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote`.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// Bound to a virtual IRQ.
    Virq {
        /// The VIRQ number.
        virq: u32,
    },
}

/// A port's state and the vCPU it notifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortEntry {
    /// The channel state.
    pub chan: Channel,
    /// The vCPU whose `vcpu_info` receives the port's upcalls.
    pub vcpu: u32,
}

const FREE: PortEntry = PortEntry {
    chan: Channel::Free,
    vcpu: 0,
};

/// What `EVTCHNOP_status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelStatus {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    /// The notified vCPU.
    pub vcpu: u32,
    /// The union: unbound → remote dom; interdomain → (dom, port); virq → virq.
    pub detail: StatusDetail,
}

/// The `u` union of `evtchn_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusDetail {
    /// Nothing (closed).
    None,
    /// `u.unbound.dom`.
    Unbound(DomId),
    /// `u.interdomain.{dom, port}`.
    Interdomain(DomId, Port),
    /// `u.virq`.
    Virq(u32),
}

impl ChannelStatus {
    /// The 24-byte `evtchn_status` OUT part: bytes 8..24 (status, vcpu, union).
    pub fn encode_out(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        let mut put = |off: usize, v: &[u8]| {
            if let Some(d) = off.checked_add(v.len()).and_then(|e| b.get_mut(off..e)) {
                d.copy_from_slice(v);
            }
        };
        put(0, &self.status.to_le_bytes());
        put(4, &self.vcpu.to_le_bytes());
        match self.detail {
            StatusDetail::None => {}
            StatusDetail::Unbound(d) => put(8, &d.to_le_bytes()),
            StatusDetail::Interdomain(d, p) => {
                put(8, &d.to_le_bytes());
                put(12, &p.to_le_bytes());
            }
            StatusDetail::Virq(v) => put(8, &v.to_le_bytes()),
        }
        b
    }
}

impl PortEntry {
    /// The status this entry reports.
    pub fn status(&self) -> ChannelStatus {
        let (status, detail) = match self.chan {
            Channel::Free | Channel::Reserved => (evtchnop::STAT_CLOSED, StatusDetail::None),
            Channel::Unbound { remote } => (evtchnop::STAT_UNBOUND, StatusDetail::Unbound(remote)),
            Channel::Interdomain {
                remote,
                remote_port,
            } => (
                evtchnop::STAT_INTERDOMAIN,
                StatusDetail::Interdomain(remote, remote_port),
            ),
            Channel::Virq { virq } => (evtchnop::STAT_VIRQ, StatusDetail::Virq(virq)),
        };
        ChannelStatus {
            status,
            vcpu: self.vcpu,
            detail,
        }
    }
}

/// A domain's ports and VIRQ bindings.
#[derive(Clone, Debug)]
pub struct PortTable {
    entries: Vec<PortEntry>,
    max: u32,
    /// `virq_to_port[vcpu][virq]`; 0 = unbound.
    virq_to_port: Vec<[Port; virq::NR_VIRQS as usize]>,
}

impl PortTable {
    /// A table allowing ports `0..max` for `nr_vcpus` vCPUs.
    pub fn new(max: u32, nr_vcpus: u32) -> PortTable {
        PortTable {
            entries: alloc::vec![PortEntry {
                chan: Channel::Reserved,
                vcpu: 0,
            }],
            max,
            virq_to_port: (0..nr_vcpus)
                .map(|_| [0; virq::NR_VIRQS as usize])
                .collect(),
        }
    }

    /// The port limit: valid ports are `0..max`.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Whether `port` names a port of this table (it may be free).
    pub fn valid(&self, port: Port) -> bool {
        port < self.max
    }

    /// The entry for `port`, `Free` if never used; `None` if invalid.
    pub fn get(&self, port: Port) -> Option<PortEntry> {
        if !self.valid(port) {
            return None;
        }
        Some(
            usize::try_from(port)
                .ok()
                .and_then(|i| self.entries.get(i))
                .copied()
                .unwrap_or(FREE),
        )
    }

    /// Replaces the entry for a valid `port`.
    pub(crate) fn set(&mut self, port: Port, e: PortEntry) -> Result<(), XenError> {
        if !self.valid(port) {
            return Err(XenError::Inval);
        }
        let i = usize::try_from(port).map_err(|_| XenError::Inval)?;
        while self.entries.len() <= i {
            self.entries.try_reserve(1).map_err(|_| XenError::NoMem)?;
            self.entries.push(FREE);
        }
        if let Some(slot) = self.entries.get_mut(i) {
            *slot = e;
        }
        Ok(())
    }

    /// The lowest free port, or `-ENOSPC`.
    pub fn find_free(&self) -> Result<Port, XenError> {
        if let Some(i) = self.entries.iter().position(|e| e.chan == Channel::Free) {
            return Port::try_from(i).map_err(|_| XenError::NoSpc);
        }
        let next = Port::try_from(self.entries.len()).map_err(|_| XenError::NoSpc)?;
        if next < self.max {
            Ok(next)
        } else {
            Err(XenError::NoSpc)
        }
    }

    /// The port bound to `virq` on `vcpu` (0 if none); `None` if out of range.
    pub fn virq_port(&self, vcpu: u32, virq: u32) -> Option<Port> {
        let row = self.virq_to_port.get(usize::try_from(vcpu).ok()?)?;
        row.get(usize::try_from(virq).ok()?).copied()
    }

    pub(crate) fn set_virq_port(&mut self, vcpu: u32, virq: u32, port: Port) {
        let slot = usize::try_from(vcpu)
            .ok()
            .and_then(|v| self.virq_to_port.get_mut(v))
            .and_then(|row| usize::try_from(virq).ok().and_then(|q| row.get_mut(q)));
        if let Some(s) = slot {
            *s = port;
        }
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> u32 {
        u32::try_from(self.virq_to_port.len()).unwrap_or(u32::MAX)
    }

    /// Every port that is not free or reserved, with its entry.
    pub fn in_use(&self) -> impl Iterator<Item = (Port, PortEntry)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !matches!(e.chan, Channel::Free | Channel::Reserved))
            .filter_map(|(i, e)| Port::try_from(i).ok().map(|p| (p, *e)))
    }
}
