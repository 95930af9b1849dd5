//! The NetVM's command line: `key=value` words.
//!
//! | key          | default   | meaning                                                  |
//! |--------------|-----------|----------------------------------------------------------|
//! | `echo`       | `7`       | TCP echo service port (`0`: off)                          |
//! | `exit-after` | (none)    | exit 0 after this many echo connections have closed      |
//! | `irq`        | `auto`    | `auto` (MSI, else IOAPIC, else polling) or `poll`        |
//! | `ping`       | `gateway` | whom to ping once a lease arrives: `gateway`, `none`, or an IPv4 address |
//! | `pings`      | `1`       | how many echo replies to wait for (1..=100)              |
//! | `rx` / `tx`  | `64`      | RX / TX descriptors (multiple of 8, 8..=4096)             |
//! | `tcp-buf`    | `65536`   | echo socket buffer size each way (1024..=1048576)        |
//!
//! Unknown keys and words without `=` are returned for the caller to warn
//! about; a known key with a bad value is an error.

use core::fmt;
use core::str::FromStr;

use smoltcp::wire::Ipv4Address;

/// How the NIC's interrupts are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqMode {
    /// MSI if the device has it, else an IOAPIC line found by probing, else
    /// polling.
    Auto,
    /// Polling only.
    Poll,
}

/// Whom to ping after the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingTarget {
    /// The router the lease names.
    Gateway,
    /// A fixed address.
    Addr(Ipv4Address),
}

/// The parsed command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// TCP echo port (`None`: off).
    pub echo_port: Option<u16>,
    /// Exit after this many echo connections closed.
    pub exit_after: Option<u32>,
    /// Interrupt use.
    pub irq: IrqMode,
    /// Ping target (`None`: no ping).
    pub ping: Option<PingTarget>,
    /// Echo replies to collect.
    pub pings: u8,
    /// RX descriptors.
    pub rx_descs: u16,
    /// TX descriptors.
    pub tx_descs: u16,
    /// Echo socket buffer size each way.
    pub tcp_buffer: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            echo_port: Some(7),
            exit_after: None,
            irq: IrqMode::Auto,
            ping: Some(PingTarget::Gateway),
            pings: 1,
            rx_descs: 64,
            tx_descs: 64,
            tcp_buffer: 64 * 1024,
        }
    }
}

/// A known key with a value it cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsError<'a> {
    /// The key.
    pub key: &'a str,
    /// The value.
    pub value: &'a str,
    /// What it should be.
    pub expected: &'static str,
}

impl fmt::Display for SettingsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad value `{}` for `{}`: expected {}",
            self.value, self.key, self.expected
        )
    }
}

fn number<'a, T: FromStr + PartialOrd>(
    key: &'a str,
    value: &'a str,
    range: core::ops::RangeInclusive<T>,
    expected: &'static str,
) -> Result<T, SettingsError<'a>> {
    value
        .parse::<T>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or(SettingsError {
            key,
            value,
            expected,
        })
}

fn ring<'a>(key: &'a str, value: &'a str) -> Result<u16, SettingsError<'a>> {
    let n = number(key, value, 8..=4096u16, "a multiple of 8 in 8..=4096")?;
    if n.is_multiple_of(8) {
        Ok(n)
    } else {
        Err(SettingsError {
            key,
            value,
            expected: "a multiple of 8 in 8..=4096",
        })
    }
}

impl Settings {
    /// Parses `cmdline`; calls `unknown` with every word it does not know.
    pub fn parse<'a>(
        cmdline: &'a str,
        mut unknown: impl FnMut(&'a str),
    ) -> Result<Settings, SettingsError<'a>> {
        let mut s = Settings::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                unknown(word);
                continue;
            };
            match key {
                "echo" => {
                    let port = number(key, value, 0..=u16::MAX, "a TCP port (0: off)")?;
                    s.echo_port = (port != 0).then_some(port);
                }
                "exit-after" => {
                    s.exit_after = Some(number(key, value, 1..=u32::MAX, "a count >= 1")?);
                }
                "irq" => {
                    s.irq = match value {
                        "auto" => IrqMode::Auto,
                        "poll" => IrqMode::Poll,
                        _ => {
                            return Err(SettingsError {
                                key,
                                value,
                                expected: "`auto` or `poll`",
                            })
                        }
                    }
                }
                "ping" => {
                    s.ping = match value {
                        "gateway" => Some(PingTarget::Gateway),
                        "none" => None,
                        _ => Some(PingTarget::Addr(value.parse().map_err(|_| {
                            SettingsError {
                                key,
                                value,
                                expected: "`gateway`, `none` or an IPv4 address",
                            }
                        })?)),
                    }
                }
                "pings" => s.pings = number(key, value, 1..=100u8, "a count in 1..=100")?,
                "rx" => s.rx_descs = ring(key, value)?,
                "tx" => s.tx_descs = ring(key, value)?,
                "tcp-buf" => {
                    s.tcp_buffer = number(key, value, 1024..=1 << 20, "bytes in 1024..=1048576")?;
                }
                _ => unknown(word),
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        let mut unknown = std::vec::Vec::new();
        let s = Settings::parse("", |w| unknown.push(w)).unwrap();
        assert_eq!(s, Settings::default());
        let s = Settings::parse(
            "console=ttyS0 echo=7777 exit-after=2 irq=poll ping=10.0.2.3 pings=3 rx=128 tx=32 tcp-buf=4096 quiet",
            |w| unknown.push(w),
        )
        .unwrap();
        assert_eq!(unknown, ["console=ttyS0", "quiet"]);
        assert_eq!(
            s,
            Settings {
                echo_port: Some(7777),
                exit_after: Some(2),
                irq: IrqMode::Poll,
                ping: Some(PingTarget::Addr(Ipv4Address::new(10, 0, 2, 3))),
                pings: 3,
                rx_descs: 128,
                tx_descs: 32,
                tcp_buffer: 4096,
            }
        );
        let s = Settings::parse("echo=0 ping=none", |_| {}).unwrap();
        assert_eq!((s.echo_port, s.ping), (None, None));
    }

    #[test]
    fn bad_values() {
        for (line, key) in [
            ("echo=70000", "echo"),
            ("echo=x", "echo"),
            ("exit-after=0", "exit-after"),
            ("irq=msi", "irq"),
            ("ping=10.0.2", "ping"),
            ("pings=0", "pings"),
            ("rx=12", "rx"),
            ("tx=8192", "tx"),
            ("tcp-buf=10", "tcp-buf"),
        ] {
            let e = Settings::parse(line, |_| {}).unwrap_err();
            assert_eq!(e.key, key, "{line}");
            assert!(std::format!("{e}").contains("expected"));
        }
    }
}
