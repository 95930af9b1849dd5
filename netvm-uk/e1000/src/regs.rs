//! Register offsets and bits of the 82540EM (the subset this driver uses).

/// Device control.
pub const CTRL: u32 = 0x0000;
/// Device status.
pub const STATUS: u32 = 0x0008;
/// EEPROM read.
pub const EERD: u32 = 0x0014;
/// Interrupt cause read (clear on read).
pub const ICR: u32 = 0x00c0;
/// Interrupt cause set.
pub const ICS: u32 = 0x00c8;
/// Interrupt mask set.
pub const IMS: u32 = 0x00d0;
/// Interrupt mask clear.
pub const IMC: u32 = 0x00d8;
/// Receive control.
pub const RCTL: u32 = 0x0100;
/// Transmit control.
pub const TCTL: u32 = 0x0400;
/// Transmit inter-packet gap.
pub const TIPG: u32 = 0x0410;
/// RX descriptor base, low 32 bits.
pub const RDBAL: u32 = 0x2800;
/// RX descriptor base, high 32 bits.
pub const RDBAH: u32 = 0x2804;
/// RX descriptor ring length in bytes.
pub const RDLEN: u32 = 0x2808;
/// RX descriptor head.
pub const RDH: u32 = 0x2810;
/// RX descriptor tail.
pub const RDT: u32 = 0x2818;
/// RX interrupt delay timer.
pub const RDTR: u32 = 0x2820;
/// TX descriptor base, low 32 bits.
pub const TDBAL: u32 = 0x3800;
/// TX descriptor base, high 32 bits.
pub const TDBAH: u32 = 0x3804;
/// TX descriptor ring length in bytes.
pub const TDLEN: u32 = 0x3808;
/// TX descriptor head.
pub const TDH: u32 = 0x3810;
/// TX descriptor tail.
pub const TDT: u32 = 0x3818;
/// Missed packets count (statistics, clear on read).
pub const MPC: u32 = 0x4010;
/// RX checksum control.
pub const RXCSUM: u32 = 0x5000;
/// Multicast table array (128 dwords).
pub const MTA: u32 = 0x5200;
/// End of the multicast table array.
pub const MTA_END: u32 = MTA + 128 * 4;
/// Receive address 0, low.
pub const RAL0: u32 = 0x5400;
/// Receive address 0, high (bit 31: address valid).
pub const RAH0: u32 = 0x5404;

/// CTRL: set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// CTRL: auto-speed detection.
pub const CTRL_ASDE: u32 = 1 << 5;
/// CTRL: link reset.
pub const CTRL_LRST: u32 = 1 << 3;
/// CTRL: device reset (self-clearing).
pub const CTRL_RST: u32 = 1 << 26;
/// CTRL: PHY reset.
pub const CTRL_PHY_RST: u32 = 1 << 31;
/// STATUS: link up.
pub const STATUS_LU: u32 = 1 << 1;

/// EERD: start a read.
pub const EERD_START: u32 = 1 << 0;
/// EERD: read done.
pub const EERD_DONE: u32 = 1 << 4;
/// EERD: address shift.
pub const EERD_ADDR_SHIFT: u32 = 8;

/// Interrupt cause: transmit descriptor written back.
pub const INT_TXDW: u32 = 1 << 0;
/// Interrupt cause: link status change.
pub const INT_LSC: u32 = 1 << 2;
/// Interrupt cause: RX descriptor minimum threshold.
pub const INT_RXDMT0: u32 = 1 << 4;
/// Interrupt cause: receiver overrun.
pub const INT_RXO: u32 = 1 << 6;
/// Interrupt cause: receiver timer (a frame arrived).
pub const INT_RXT0: u32 = 1 << 7;
/// The causes the driver enables.
pub const INT_ENABLED: u32 = INT_TXDW | INT_LSC | INT_RXDMT0 | INT_RXO | INT_RXT0;

/// RCTL: receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// RCTL: accept broadcast.
pub const RCTL_BAM: u32 = 1 << 15;
/// RCTL: strip the Ethernet CRC.
pub const RCTL_SECRC: u32 = 1 << 26;
/// RCTL: descriptor minimum threshold 1/2 (bits 9:8 = 00); buffer size 2048
/// (bits 17:16 = 00, BSEX = 0).
pub const RCTL_RDMTS_HALF_BSIZE_2048: u32 = 0;

/// TCTL: transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// TCTL: pad short packets.
pub const TCTL_PSP: u32 = 1 << 3;
/// TCTL: collision threshold 15.
pub const TCTL_CT: u32 = 0x0f << 4;
/// TCTL: collision distance 64 (full duplex).
pub const TCTL_COLD: u32 = 0x40 << 12;
/// TCTL: retransmit on late collision.
pub const TCTL_RTLC: u32 = 1 << 24;
/// TIPG for copper: IPGT 10, IPGR1 8, IPGR2 6.
pub const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

/// RX descriptor status: descriptor done.
pub const RXD_STAT_DD: u8 = 1 << 0;
/// RX descriptor status: end of packet.
pub const RXD_STAT_EOP: u8 = 1 << 1;
/// RX descriptor errors that make a frame unusable: CRC, symbol, sequence,
/// carrier extension, RX data error.
pub const RXD_ERR_FRAME: u8 = 0x01 | 0x02 | 0x04 | 0x10 | 0x80;

/// TX command: end of packet.
pub const TXD_CMD_EOP: u8 = 1 << 0;
/// TX command: insert FCS.
pub const TXD_CMD_IFCS: u8 = 1 << 1;
/// TX command: report status (set DD when done).
pub const TXD_CMD_RS: u8 = 1 << 3;
/// TX status: descriptor done.
pub const TXD_STAT_DD: u8 = 1 << 0;

/// EEPROM words summed by the checksum (0x00..=0x3f).
pub const EEPROM_CHECKSUM_WORDS: u16 = 0x40;
/// What the EEPROM words must sum to.
pub const EEPROM_SUM: u16 = 0xbaba;
