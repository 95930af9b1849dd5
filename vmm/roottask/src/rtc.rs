//! The machine's wall clock, read once from the CMOS RTC at start-up to
//! seed the guests' RTC models.

use crate::kobj::{Context, KError, Kernel, CNODE_DEPTH};
use sel4::sys;

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;

/// Seconds since 1970-01-01 UTC according to the CMOS RTC (assumed UTC).
pub fn unix_time(k: &mut Kernel) -> Result<i64, KError> {
    let cap = k.slot()?;
    k.ipc
        .ioport_issue(
            sys::CAP_IO_PORT_CONTROL,
            INDEX,
            DATA,
            sys::CAP_INIT_THREAD_CNODE,
            cap,
            CNODE_DEPTH,
        )
        .ctx("getting the CMOS RTC's I/O ports")?;
    let read = |reg: u8| -> u8 {
        // Bit 7 of the index keeps NMIs disabled, as firmware leaves it.
        let _ = sel4::ioport_out8(cap, INDEX, 0x80 | reg);
        sel4::ioport_in8(cap, DATA).unwrap_or(0)
    };
    // Wait (bounded) for no update in progress, then read twice until equal.
    let snapshot = || {
        for _ in 0..100_000 {
            if read(0x0a) & 0x80 == 0 {
                break;
            }
        }
        [
            read(0x00),
            read(0x02),
            read(0x04),
            read(0x07),
            read(0x08),
            read(0x09),
            read(0x32),
            read(0x0b),
        ]
    };
    let mut t = snapshot();
    for _ in 0..4 {
        let again = snapshot();
        if again == t {
            break;
        }
        t = again;
    }
    let [sec, min, hour, day, month, year, century, status_b] = t;
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| -> i64 {
        if bcd {
            i64::from((v >> 4) * 10 + (v & 0x0f))
        } else {
            i64::from(v)
        }
    };
    let mut h = conv(hour & 0x7f);
    if status_b & 0x02 == 0 && hour & 0x80 != 0 {
        h = (h % 12) + 12; // 12-hour mode, PM
    }
    let c = conv(century);
    let y = if (19..=21).contains(&c) {
        c * 100 + conv(year)
    } else {
        2000 + conv(year)
    };
    Ok(days_from_civil(y, conv(month), conv(day)) * 86_400 + h * 3600 + conv(min) * 60 + conv(sec))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
