//! Unit and property tests, by model.

mod ioapic;
mod lapic;
mod legacy;
mod pit;
mod platform;
mod props;
mod rtc;
