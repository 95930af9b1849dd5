//! `hostile`: misbehaves on purpose so the VMM's policies can be observed.
//!
//! Steps (see the library docs for command-line selection), each announced with
//! `hostile: step <name>` before it starts:
//! * `ports`: writes 0xa5 to I/O ports 0x200..=0x20f (unassigned under QEMU and
//!   cloister; 0x510 is avoided because it is QEMU's fw_cfg) and reads them back
//!   as bytes, then 0x200 as a word and 0x208 as a dword;
//! * `msr`: reads IA32_EFER (must work) and the unknown MSRs 0xc0011234 and
//!   0x12345678, then writes 0 to 0x12345678 and 0xfff to VM_HSAVE_PA
//!   (0xc0010117, misaligned). Under cloister unknown MSRs are expected to `#GP`;
//!   QEMU's TCG (7.2) returns 0 and ignores writes for unknown MSRs, but does
//!   raise `#GP` for the misaligned VM_HSAVE_PA write, so that line shows the
//!   recovery path on both;
//! * `xen` (needs `peer=<domid>`: another running domain that grants this
//!   one nothing; not run by default): sets up the Xen ABI (`rt::xen`), makes
//!   the battery of bad hypercalls of [`hostile::xen`] with raw calls, one
//!   line per call with its outcome, then checks that its own channels still
//!   work (an event each way over a channel to itself) and so do its grants
//!   (its own grant mapped, written through and read back), and prints
//!   `hostile: xen: N bad calls refused; own channels still work`. Anything
//!   else is `hostile: xen: FAILED: ...` and exit status 1;
//! * `mem`: reads 32 bits at the first address past low RAM (from the memory
//!   map); then reads, writes 0x5a5a5a5a and reads again at 0xfe000000 and
//!   0x100000000 (each skipped if the memory map says it is RAM);
//! * `triple`: loads an IDT with limit 0 and executes `ud2`; the VM must stop.
//!
//! Without `triple` it prints `hostile: done` and exits 0; a bad command line
//! exits 1.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod unikernel {
    use core::arch::asm;

    use hostile::{parse_steps, peer, Step};
    use rt::println;
    use rt::start_info::MemoryType;
    use x86_64::instructions::port::Port;

    rt::entry!(main);

    fn main() -> u8 {
        let steps = match parse_steps(rt::cmdline()) {
            Ok(s) => s,
            Err(e) => {
                println!("hostile: {e}");
                return rt::exit::FAILURE;
            }
        };
        let peer = match peer(rt::cmdline()) {
            Ok(p) => p,
            Err(e) => {
                println!("hostile: {e}");
                return rt::exit::FAILURE;
            }
        };
        for step in steps.iter() {
            println!("hostile: step {}", step.name());
            match step {
                Step::Ports => ports(),
                Step::Msr => msr(),
                Step::Xen => {
                    let Some(peer) = peer else {
                        println!("hostile: xen: FAILED: the xen step needs peer=<domid>");
                        return rt::exit::FAILURE;
                    };
                    if let Err(e) = super::xen_step::run(peer) {
                        println!("hostile: xen: FAILED: {e}");
                        return rt::exit::FAILURE;
                    }
                }
                Step::Revoke => {
                    if let Err(e) = super::xen_step::revoke() {
                        println!("hostile: revoke: FAILED: {e}");
                        return rt::exit::FAILURE;
                    }
                }
                Step::Mem => mem(),
                Step::Triple => triple(),
            }
        }
        println!("hostile: done");
        rt::exit::SUCCESS
    }

    fn ports() {
        let mut read = [0u8; 16];
        for (port, slot) in (0x200u16..).zip(read.iter_mut()) {
            let mut port: Port<u8> = Port::new(port);
            // SAFETY: port I/O has no memory effects; 0x200..=0x20f are unassigned
            // under QEMU and cloister.
            *slot = unsafe {
                port.write(0xa5);
                port.read()
            };
        }
        println!("hostile: ports: wrote 0xa5 to 0x200..=0x20f, read back {read:02x?}");
        let mut word: Port<u16> = Port::new(0x200);
        let mut dword: Port<u32> = Port::new(0x208);
        // SAFETY: as above.
        let (w, d) = unsafe { (word.read(), dword.read()) };
        println!("hostile: ports: inw 0x200 = {w:#06x}, inl 0x208 = {d:#010x}");
    }

    fn msr() {
        const IA32_EFER: u32 = 0xc000_0080;
        for msr in [IA32_EFER, 0xc001_1234, 0x1234_5678] {
            match rt::msr::read_safe(msr) {
                Some(v) => println!("hostile: msr: rdmsr {msr:#010x} = {v:#x}"),
                None => println!("hostile: msr: rdmsr {msr:#010x} -> #GP"),
            }
        }
        const VM_HSAVE_PA: u32 = 0xc001_0117;
        for (msr, value) in [(0x1234_5678, 0), (VM_HSAVE_PA, 0xfff)] {
            // SAFETY: 0x12345678 is not an architectural MSR, and VM_HSAVE_PA only
            // matters to SVM, which this guest never enables; if a VMM accepts
            // either write, no CPU state the program depends on changes.
            let ok = unsafe { rt::msr::write_safe(msr, value) };
            let result = if ok { "accepted" } else { "-> #GP" };
            println!("hostile: msr: wrmsr {msr:#010x} <- {value:#x} {result}");
        }
    }

    /// Whether the memory map says `addr` is RAM.
    fn is_ram(addr: u64) -> bool {
        rt::boot_info().is_some_and(|info| {
            info.memmap()
                .iter()
                .any(|e| e.kind == MemoryType::Ram && e.addr <= addr && addr < e.end())
        })
    }

    /// First address past the highest RAM range that ends below the MMIO window.
    fn ram_end() -> Option<u64> {
        let info = rt::boot_info()?;
        info.memmap()
            .iter()
            .filter(|e| e.kind == MemoryType::Ram && e.end() <= rt::MMIO_WINDOW.0)
            .map(|e| e.end())
            .max()
    }

    fn mem() {
        if let Some(end) = ram_end().filter(|&a| !is_ram(a)) {
            // SAFETY: `end` is below rt::IDENTITY_MAP_END, so it is mapped, and not
            // RAM per the memory map, so no Rust object lives there. It is only
            // read: under QEMU it holds firmware tables.
            let v = unsafe { core::ptr::read_volatile(end as *const u32) };
            println!("hostile: mem: {end:#x} (end of low RAM): read {v:#010x}");
        }
        for addr in [0xfe00_0000u64, 0x1_0000_0000] {
            if is_ram(addr) {
                println!("hostile: mem: {addr:#x} is RAM in this VM, skipped");
                continue;
            }
            let p = addr as *mut u32;
            // SAFETY: `addr` is below rt::IDENTITY_MAP_END, so it is mapped, and
            // not RAM, so no Rust object lives there. What the VMM does with the
            // access (all-ones, ignore, fault, stop) is what this step shows.
            let (before, after) = unsafe {
                let before = core::ptr::read_volatile(p);
                core::ptr::write_volatile(p, 0x5a5a_5a5a);
                (before, core::ptr::read_volatile(p))
            };
            println!("hostile: mem: {addr:#x}: read {before:#010x}, wrote 0x5a5a5a5a, read {after:#010x}");
        }
    }

    fn triple() -> ! {
        #[repr(C, packed)]
        struct IdtPointer {
            limit: u16,
            base: u64,
        }
        let empty = IdtPointer { limit: 0, base: 0 };
        println!("hostile: triple: lidt limit 0, ud2");
        // SAFETY: deliberately makes every exception unrecoverable; `ud2` then
        // escalates #UD -> #GP -> #DF -> triple fault, which stops the VM.
        unsafe {
            asm!("lidt [{}]", "ud2", in(reg) &empty, options(noreturn, nostack));
        }
    }
}

/// The `xen` step on the guest: the facts of the running system, the
/// battery on the real hypervisor, and the checks that this domain's own
/// channels and grants still work.
#[cfg(target_os = "none")]
mod xen_step {
    extern crate alloc;

    use alloc::format;
    use alloc::string::String;
    use core::cell::UnsafeCell;

    use hostile::xen::{self as battery, Done, Facts, Line, Machine, SCRATCH_LEN};
    use rt::println;
    use rt::start_info::MemoryType;
    use rt::xen::{window, ChannelStatus, GrantTable, OwnedPage, Port, Xen};

    /// The battery's argument structs (the hypervisor writes results here).
    #[repr(C, align(64))]
    struct Scratch(UnsafeCell<[u8; SCRATCH_LEN]>);

    // SAFETY: one vCPU; the buffer is only accessed volatilely, by the
    // battery and by the hypervisor during its calls.
    unsafe impl Sync for Scratch {}

    static SCRATCH: Scratch = Scratch(UnsafeCell::new([0; SCRATCH_LEN]));

    /// This guest as the battery's machine.
    struct Guest {
        xen: &'static Xen,
    }

    impl Machine for Guest {
        fn scratch(&self) -> u64 {
            SCRATCH.0.get() as u64
        }

        fn put_scratch(&mut self, bytes: &[u8; SCRATCH_LEN]) {
            let p = SCRATCH.0.get().cast::<u8>();
            for (i, b) in bytes.iter().enumerate() {
                // SAFETY: inside the static buffer; no reference to it exists.
                unsafe { core::ptr::write_volatile(p.add(i), *b) };
            }
        }

        fn get_scratch(&mut self) -> [u8; SCRATCH_LEN] {
            let p = SCRATCH.0.get().cast::<u8>();
            let mut out = [0u8; SCRATCH_LEN];
            for (i, b) in out.iter_mut().enumerate() {
                // SAFETY: as in `put_scratch`.
                *b = unsafe { core::ptr::read_volatile(p.add(i)) };
            }
            out
        }

        fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64 {
            // SAFETY: the battery's pointer arguments are the scratch buffer
            // (only accessed volatilely, so the hypervisor may write it) or
            // places where Xen's rules let the hypervisor write nothing: not
            // mapped, not canonical, not RAM, or — read as data by calls that
            // fail without writing — the hypercall page and the store ring's
            // last bytes. Its grant operations use this step's own page and
            // a window frame the runtime never maps; none of its calls, as
            // Xen's rules answer them, touches the store's channel,
            // `shared_info`, the grant frames or the upcall. A hypervisor
            // that answered otherwise is what the battery reports.
            unsafe { self.xen.raw_hypercall(nr, args) }
        }

        fn write_hypercall_msr(&mut self, value: u64) -> bool {
            // SAFETY: an accepted write would make the hypervisor fill a page
            // with hypercall stubs; the battery writes only values it must
            // refuse (misaligned, or no page of RAM there) — and one it
            // accepted would name the hypercall page itself or no RAM.
            unsafe { rt::msr::write_safe(self.xen.info().msr, value) }
        }
    }

    /// A failed step, as the reason.
    type Fail = String;

    fn failed(what: &str) -> impl FnOnce(rt::xen::Errno) -> Fail + '_ {
        move |e| format!("{what}: {e}")
    }

    fn grant_failed(what: &str) -> impl FnOnce(rt::xen::GrantError) -> Fail + '_ {
        move |e| format!("{what}: {e}")
    }

    /// The facts of this system; the grants and the page they name are the
    /// step's.
    fn facts(
        xen: &'static Xen,
        peer: u16,
        grants: &GrantTable,
        page: &OwnedPage,
    ) -> Result<Facts, Fail> {
        let me = xen
            .domid()
            .ok_or("CPUID does not report this domain's id")?;
        let (store_pfn, store_port) = xen.store_params();
        let port = Port::try_from(store_port).map_err(|_| format!("store port {store_port}"))?;
        let store = match xen
            .status(port)
            .map_err(failed("status of the store port"))?
        {
            ChannelStatus::Unbound { remote } | ChannelStatus::Interdomain { remote, .. } => remote,
            other => return Err(format!("the store port {port} is {other:?}")),
        };
        // The VMM gives the store ring RAM's last page.
        let ram_end = (store_pfn + 1) * 4096;
        let info = rt::boot_info().ok_or("no boot information")?;
        if info
            .memmap()
            .iter()
            .any(|e| e.kind == MemoryType::Ram && e.end() > ram_end && e.addr < rt::MMIO_WINDOW.0)
        {
            return Err(format!(
                "RAM beyond the store ring's page at {store_pfn:#x}"
            ));
        }
        let w = xen.window();
        let shared_info = w.shared_info();
        let grant = |gfn: u64, readonly: bool| {
            grants
                .grant_access(me, gfn, readonly)
                .map_err(grant_failed("granting to itself"))
        };
        Ok(Facts {
            me,
            peer,
            store,
            ram_end,
            store_ring: store_pfn * 4096,
            shared_info,
            grant_frame: w.grant_frame(0),
            free_frame: w.map_base() + u64::from(window::MAP_SLOTS - 1) * 4096,
            hypercall_page: xen.hypercall_page(),
            own_page: page.gfn() << 12,
            grant_rw: grant(page.gfn(), false)?,
            grant_ro: grant(page.gfn(), true)?,
            grant_not_ram: grant(shared_info >> 12, false)?,
        })
    }

    /// An event each way over a channel from this domain to itself.
    fn own_channel(xen: &Xen, me: u16) -> Result<(), Fail> {
        let p = xen.alloc_unbound(me).map_err(failed("alloc_unbound"))?;
        let q = xen
            .bind_interdomain(me, p)
            .map_err(failed("bind_interdomain"))?;
        // A new binding starts out fired.
        xen.take(q);
        xen.send(q).map_err(failed("send"))?;
        if !xen.take(p) {
            return Err(format!("sent on port {q}; port {p} did not fire"));
        }
        xen.send(p).map_err(failed("send"))?;
        if !xen.take(q) {
            return Err(format!("sent on port {p}; port {q} did not fire"));
        }
        xen.close(q).map_err(failed("close"))?;
        xen.close(p).map_err(failed("close"))?;
        println!("hostile: xen: own channel {p} <-> {q}: an event each way, then closed");
        Ok(())
    }

    /// Its own grant mapped, written through the mapping and read back from
    /// the page; then every grant of the step ended.
    fn own_grant(grants: &GrantTable, f: &Facts, page: &OwnedPage) -> Result<(), Fail> {
        const PATTERN: u64 = 0x686f_7374_696c_6521;
        let mapped = grants
            .map(f.me, f.grant_rw, false)
            .map_err(grant_failed("mapping its own grant"))?;
        let gpa = mapped.gpa();
        mapped.page().store_u64(8, PATTERN);
        let seen = page.page().load_u64(8);
        grants
            .unmap(mapped)
            .map_err(grant_failed("unmapping its own grant"))?;
        if seen != Some(PATTERN) {
            return Err(format!(
                "wrote {PATTERN:#x} through the mapping, the page has {seen:x?}"
            ));
        }
        for gref in [f.grant_rw, f.grant_ro, f.grant_not_ram] {
            grants
                .end_access(gref)
                .map_err(grant_failed("ending a grant"))?;
        }
        println!(
            "hostile: xen: own grant {} mapped at {gpa:#x}, written through and read back; grants ended",
            f.grant_rw
        );
        Ok(())
    }

    /// The `revoke` step: maps a grant of its own page, reads through it,
    /// unmaps it and reads the old address again. Under cloister that read
    /// is an EPT violation and the VMM stops the VM; if the read returns,
    /// the mapping outlived its revocation and the step says so.
    pub fn revoke() -> Result<(), Fail> {
        let xen = rt::xen::init().map_err(|e| format!("{e}"))?;
        let me = xen.domid().ok_or("no domain id from CPUID")?;
        let grants = GrantTable::init(1).map_err(grant_failed("grant table"))?;
        let page = OwnedPage::new().map_err(|e| format!("{e}"))?;
        page.page()
            .store_u32(0, 0xfeed_beef)
            .ok_or("own page not writable")?;
        let gref = grants
            .grant_access(me, page.gfn(), false)
            .map_err(grant_failed("grant"))?;
        let mapped = grants.map(me, gref, false).map_err(grant_failed("map"))?;
        let gpa = mapped.gpa();
        let before = mapped.page().load_u32(0).ok_or("mapped page unreadable")?;
        grants.unmap(mapped).map_err(grant_failed("unmap"))?;
        grants
            .end_access(gref)
            .map_err(grant_failed("end access"))?;
        println!(
            "hostile: revoke: own grant {gref} mapped at {gpa:#x} read {before:#x}; unmapped and \
             ended; reading {gpa:#x} again"
        );
        // SAFETY: `gpa` is in the runtime's identity-mapped Xen window, outside
        // RAM, where nothing of this program lives; after the unmap the VMM
        // must not map anything there, so this read is the probe.
        let after = unsafe { core::ptr::read_volatile(gpa as *const u32) };
        Err(format!(
            "the revoked mapping still answers: read {after:#x} at {gpa:#x}"
        ))
    }

    /// The step.
    pub fn run(peer: u16) -> Result<(), Fail> {
        let xen = rt::xen::init().map_err(|e| format!("{e}"))?;
        let grants = GrantTable::init(1).map_err(grant_failed("grant table"))?;
        let page = OwnedPage::new().map_err(|e| format!("{e}"))?;
        let f = facts(xen, peer, grants, &page)?;
        println!(
            "hostile: xen: domain {}, store {}, peer {}; RAM ends at {:#x}, shared_info at {:#x}, \
             hypercall page at {:#x}, own page at {:#x} (grants {} {} {})",
            f.me,
            f.store,
            f.peer,
            f.ram_end,
            f.shared_info,
            f.hypercall_page,
            f.own_page,
            f.grant_rw,
            f.grant_ro,
            f.grant_not_ram
        );
        let tally = battery::run(&mut Guest { xen }, &f, |case, got| {
            println!("{}", Line { case, got });
        });
        if tally.unexpected != 0 {
            return Err(format!(
                "{} of {} calls did not come out as expected",
                tally.unexpected,
                tally.unexpected + tally.refused + tally.accepted
            ));
        }
        own_channel(xen, f.me)?;
        own_grant(grants, &f, &page)?;
        println!("{}", Done(tally.refused));
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "hostile is a cloister unikernel: build it with `--target x86_64-unknown-none` and boot the ELF \
         with QEMU (-kernel) or cloister"
    );
}
