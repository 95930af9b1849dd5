//! Unit and property tests.

mod insn;
mod paging;
mod prop;
mod support;
