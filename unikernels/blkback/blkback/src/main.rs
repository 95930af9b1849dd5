//! `blkback`: the block backend unikernel. It builds an AppVM's root disk
//! from a read-only template and a copy-on-write overlay
//! ([`blkback_engine::CowDisk`]), and passes a private volume through
//! ([`blkback_engine::PrivateDisk`]), each on a virtio-blk device; then it
//! checks itself and exits 0 (`blkback: ok`) or 1 (`blkback: FAILED: <why>`).
//!
//! It finds two or three virtio-blk functions and tells them apart by their
//! serial (`GET_ID`), not by PCI slot order: `blkback-template` (must be
//! read-only: QEMU `readonly=on`), `blkback-overlay` and, optionally,
//! `blkback-private` (QEMU: `-device virtio-blk-pci,drive=...,serial=...`).
//! Other virtio-blk functions are listed and left alone; a role found twice
//! is an error. Each device is a [`virtio_disk::VirtioDisk`], which checks every
//! transfer against the device's capacity before sending it. The command
//! line (`seed=`, `ops=`, `chunk=`) is described in the `blkback` library.
//!
//! Output, one line per step:
//!
//! ```text
//! blkback: seed=0x2a ops=3000 chunk=4096
//! blkback: virtio-blk at 00:02.0: serial "blkback-template", 16384 sectors, read-only: template
//! blkback: virtio-blk at 00:03.0: serial "blkback-overlay", 16384 sectors, writable: overlay
//! blkback: virtio-blk at 00:04.0: serial "blkback-private", 2048 sectors, writable: private
//! blkback: template: read-only, the device refused a probe write (I/O error)
//! blkback: template: fnv1a64=0xafcd93f3cc67845b before
//! blkback: workload: 3000 writes (25557 sectors), 3000 reads checked against the model, 0 mismatches: verified
//! blkback: overlay: 1931 of 2048 chunks of 4096 bytes used, disk fnv1a64=0x30f406f705aa4505: differs from the template
//! blkback: discard: chunk 0 (sectors 0+8): 1930 chunks used, reads as the template again: ok
//! blkback: reset (VM gone): 0 chunks used, disk fnv1a64=0xafcd93f3cc67845b: the template again: ok
//! blkback: template: fnv1a64=0xafcd93f3cc67845b after: unchanged
//! blkback: private: 2048 sectors: wrote sectors 0+8 and 2040+8, flushed, read back: ok; write past the end refused (sectors 2041+8 lie outside a device of 2048 sectors); fnv1a64=0x64e6967e1351aaf7
//! blkback: footprint: used 990 KiB of 64983 KiB RAM: image 276 KiB (stack 64 KiB, deepest 26 KiB), heap high-water 714 KiB of 64068 KiB (DMA 24 KiB of it)
//! blkback: ok
//! ```
//!
//! A device that fails validation is listed as `unusable, skipped`; one
//! without a serial shows `serial (none)`. Without a private device the
//! private line reads `blkback: private: absent, skipped`. The footprint line
//! is printed on failure too, before `blkback: FAILED: <why>`.
//!
//! The workload is [`blkback_engine::workload_check`]: random writes of 1–16
//! sectors through the copy-on-write disk, each followed by a random read
//! checked against a model of what was written (the template elsewhere).
//! The checksums are FNV-1a-64 over every sector ([`blkback_engine::checksum`]).
//! Built for the host, it only says what it is.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod unikernel {
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;

    use blkback::{fill_pattern, Role, Settings};
    use blkback_engine::{
        checksum, workload_check, BlkError, MemDisk, Overlay, PrivateDisk, ReadBlocks, VirtualDisk,
        MIN_CHUNK_SIZE, SECTOR_SIZE, SECTOR_SIZE_U64,
    };
    use rt::pci::Bdf;
    use rt::println;
    use virtio_disk::{DiskError, VirtioDisk};

    rt::entry!(main, stack = 64 * 1024);

    /// Sectors the private-volume check writes at each end of the volume.
    const PRIVATE_SECTORS: u64 = 8;

    /// The devices, by role.
    struct Devices {
        template: VirtioDisk,
        overlay: VirtioDisk,
        private: Option<VirtioDisk>,
    }

    /// Finds the virtio-blk functions and sorts them by serial.
    fn find_devices() -> Result<Devices, String> {
        let found = virtio_disk::enumerate().map_err(|e| format!("{e}"))?;
        let count = found.len();
        let mut by_role: [Option<(Bdf, VirtioDisk)>; 3] = [None, None, None];
        for dev in found {
            let dev = match dev {
                Ok(d) => d,
                Err(u) => {
                    println!(
                        "blkback: virtio-blk at {}: unusable, skipped: {}",
                        u.bdf, u.error
                    );
                    continue;
                }
            };
            let role = dev
                .serial
                .as_deref()
                .and_then(|s| Role::from_serial(s.as_bytes()));
            println!(
                "blkback: virtio-blk at {}: serial {}, {} sectors, {}: {}",
                dev.bdf,
                dev.serial
                    .as_deref()
                    .map_or(String::from("(none)"), |s| format!("{s:?}")),
                dev.sectors,
                if dev.read_only {
                    "read-only"
                } else {
                    "writable"
                },
                role.map_or("not ours, left alone", Role::name)
            );
            let Some(role) = role else { continue };
            let slot = by_role
                .get_mut(role as usize)
                .ok_or("role table too small")?;
            if let Some((first, _)) = slot {
                return Err(format!(
                    "two {} devices ({first} and {}): serial {:?} must be unique",
                    role.name(),
                    dev.bdf,
                    role.serial()
                ));
            }
            *slot = Some((dev.bdf, dev.disk));
        }
        let [template, overlay, private] = by_role;
        let missing = |role: Role| {
            format!(
                "no {} device: a virtio-blk device with serial {:?} (found {} virtio-blk functions)",
                role.name(),
                role.serial(),
                count
            )
        };
        Ok(Devices {
            template: template.ok_or_else(|| missing(Role::Template))?.1,
            overlay: overlay.ok_or_else(|| missing(Role::Overlay))?.1,
            private: private.map(|(_, d)| d),
        })
    }

    /// Checks that the template is read-only in the device itself, not
    /// only in our wrapper: it must have negotiated `VIRTIO_BLK_F_RO` and
    /// must refuse a write of sector 0 with its own contents (so that a
    /// device that wrongly accepted it would still hold the same bytes).
    fn check_read_only(template: &mut VirtioDisk) -> Result<String, String> {
        if !template.read_only() {
            return Err(String::from(
                "the template device is writable: attach it read-only (QEMU: readonly=on)",
            ));
        }
        let mut sector = [0u8; SECTOR_SIZE];
        template
            .read_sectors(0, &mut sector)
            .map_err(|e| format!("reading template sector 0: {e}"))?;
        // Deliberately past the wrapper's read-only refusal.
        match template.probe_write(0, &sector) {
            Ok(()) => Err(String::from(
                "the template device accepted a write although it says it is read-only",
            )),
            Err(DiskError::Device(e)) => Ok(format!("{e}")),
            Err(e) => Err(format!("probe write to template sector 0: {e}")),
        }
    }

    /// FNV-1a-64 of the template, read as a VM sees it before writing:
    /// through an overlay with no slots at all, which cannot take a write.
    fn template_checksum(template: &mut VirtioDisk) -> Result<u64, String> {
        let mut none = Overlay::new(MemDisk::default(), MIN_CHUNK_SIZE)
            .map_err(|e| format!("empty overlay: {e}"))?;
        checksum(&mut none.disk(template)).map_err(|e| format!("template checksum: {e}"))
    }

    /// Discards the first chunk the workload wrote and checks that the
    /// overlay frees it and the disk reads the template's bytes there.
    fn check_discard(
        template: &mut VirtioDisk,
        overlay: &mut Overlay<VirtioDisk>,
    ) -> Result<(), String> {
        let cap = template.sector_count();
        let chunk_sectors = (overlay.chunk_size() / SECTOR_SIZE) as u64;
        let chunks = cap.div_ceil(chunk_sectors.max(1));
        let Some(chunk) = (0..chunks).find(|&c| overlay.is_mapped(c)) else {
            println!("blkback: discard: no chunk written, skipped");
            return Ok(());
        };
        let lba = chunk.saturating_mul(chunk_sectors);
        let n = cap.saturating_sub(lba).min(chunk_sectors);
        let used = overlay.used_chunks();
        let mut disk = overlay.disk(template);
        disk.discard(lba, n)
            .map_err(|e| format!("discard of chunk {chunk}: {e}"))?;
        let len = usize::try_from(n.saturating_mul(SECTOR_SIZE_U64))
            .map_err(|_| String::from("chunk too large"))?;
        let mut seen = vec![0u8; len];
        disk.read(lba, &mut seen)
            .map_err(|e| format!("reading discarded chunk {chunk}: {e}"))?;
        let mut want = vec![0u8; len];
        template
            .read_sectors(lba, &mut want)
            .map_err(|e| format!("reading template chunk {chunk}: {e}"))?;
        let now = overlay.used_chunks();
        if now.saturating_add(1) != used || overlay.is_mapped(chunk) {
            return Err(format!(
                "discard of chunk {chunk} left {now} chunks used (was {used})"
            ));
        }
        if seen != want {
            return Err(format!(
                "discarded chunk {chunk} does not read as the template"
            ));
        }
        println!(
            "blkback: discard: chunk {chunk} (sectors {lba}+{n}): {now} chunks used, reads as \
             the template again: ok"
        );
        Ok(())
    }

    /// Writes a seeded pattern at both ends of the private volume, flushes,
    /// reads it back, checks that a write past the end is refused, and
    /// returns the line to print.
    fn check_private(dev: VirtioDisk, seed: u64) -> Result<String, String> {
        let mut disk = PrivateDisk::new(dev);
        let cap = disk.capacity();
        if cap < 2 * PRIVATE_SECTORS {
            return Err(format!(
                "private volume of {cap} sectors is too small (at least {})",
                2 * PRIVATE_SECTORS
            ));
        }
        let last = cap - PRIVATE_SECTORS;
        let pattern = |lba: u64| {
            let mut buf = vec![0u8; PRIVATE_SECTORS as usize * SECTOR_SIZE];
            for (k, sector) in (0u64..).zip(buf.chunks_mut(SECTOR_SIZE)) {
                fill_pattern(seed, lba + k, sector);
            }
            buf
        };
        for lba in [0, last] {
            disk.write(lba, &pattern(lba))
                .map_err(|e| format!("private write at {lba}: {e}"))?;
        }
        disk.flush().map_err(|e| format!("private flush: {e}"))?;
        for lba in [0, last] {
            let mut back = vec![0u8; PRIVATE_SECTORS as usize * SECTOR_SIZE];
            disk.read(lba, &mut back)
                .map_err(|e| format!("private read at {lba}: {e}"))?;
            if back != pattern(lba) {
                return Err(format!(
                    "private volume: sectors {lba}+{PRIVATE_SECTORS} read back differ from what was written"
                ));
            }
        }
        let refused = match disk.write(last + 1, &pattern(last + 1)) {
            Err(BlkError::Range(e)) => format!("{e}"),
            Err(e) => return Err(format!("private write past the end: unexpected error: {e}")),
            Ok(()) => return Err(String::from("private volume accepted a write past its end")),
        };
        let sum = checksum(&mut disk).map_err(|e| format!("private checksum: {e}"))?;
        Ok(format!(
            "{cap} sectors: wrote sectors 0+{PRIVATE_SECTORS} and {last}+{PRIVATE_SECTORS}, \
             flushed, read back: ok; write past the end refused ({refused}); fnv1a64={sum:#018x}"
        ))
    }

    fn run() -> Result<(), String> {
        let settings = Settings::parse(rt::cmdline()).map_err(|e| format!("{e}"))?;
        println!(
            "blkback: seed={:#x} ops={} chunk={}",
            settings.seed, settings.ops, settings.chunk
        );
        let Devices {
            mut template,
            overlay,
            private,
        } = find_devices()?;
        let refusal = check_read_only(&mut template)?;
        println!("blkback: template: read-only, the device refused a probe write ({refusal})");
        let before = template_checksum(&mut template)?;
        println!("blkback: template: fnv1a64={before:#018x} before");

        let mut overlay = Overlay::new(overlay, settings.chunk).map_err(|e| format!("{e}"))?;
        let report = workload_check(&mut template, &mut overlay, settings.seed, settings.ops)
            .map_err(|e| format!("workload: {e}"))?;
        if report.mismatches != 0 || report.writes != settings.ops || report.reads != settings.ops {
            return Err(format!(
                "workload: {} writes, {} reads, {} sectors read back differ from the model",
                report.writes, report.reads, report.mismatches
            ));
        }
        println!(
            "blkback: workload: {} writes ({} sectors), {} reads checked against the model, 0 \
             mismatches: verified",
            report.writes, report.sectors_written, report.reads
        );
        let written = checksum(&mut overlay.disk(&mut template))
            .map_err(|e| format!("disk checksum: {e}"))?;
        if report.writes > 0 && written == before {
            return Err(String::from(
                "after the workload the disk still reads as the template",
            ));
        }
        println!(
            "blkback: overlay: {} of {} chunks of {} bytes used, disk fnv1a64={written:#018x}: {}",
            overlay.used_chunks(),
            overlay.capacity_chunks(),
            overlay.chunk_size(),
            if written == before {
                "the template (nothing written)"
            } else {
                "differs from the template"
            }
        );
        check_discard(&mut template, &mut overlay)?;

        // The VM goes away: its overlay is dropped, the next boot starts
        // from the template.
        overlay.reset();
        let reset = checksum(&mut overlay.disk(&mut template))
            .map_err(|e| format!("disk checksum after reset: {e}"))?;
        if reset != before || overlay.used_chunks() != 0 {
            return Err(format!(
                "after reset the disk reads fnv1a64={reset:#018x} with {} chunks used, the \
                 template is {before:#018x}",
                overlay.used_chunks()
            ));
        }
        println!(
            "blkback: reset (VM gone): 0 chunks used, disk fnv1a64={reset:#018x}: the template \
             again: ok"
        );
        let after = template_checksum(&mut template)?;
        if after != before {
            return Err(format!(
                "the template changed: fnv1a64={before:#018x} before, {after:#018x} after"
            ));
        }
        println!("blkback: template: fnv1a64={after:#018x} after: unchanged");

        match private {
            Some(dev) => println!("blkback: private: {}", check_private(dev, settings.seed)?),
            None => println!("blkback: private: absent, skipped"),
        }
        Ok(())
    }

    fn main() -> u8 {
        let result = run();
        println!("blkback: footprint: {}", rt::footprint());
        match result {
            Ok(()) => {
                println!("blkback: ok");
                rt::exit::SUCCESS
            }
            Err(why) => {
                println!("blkback: FAILED: {why}");
                rt::exit::FAILURE
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "blkback is a cloister unikernel: build it with `--target x86_64-unknown-none` and boot \
         the ELF with QEMU (-kernel) next to virtio-blk devices with serials blkback-template \
         (readonly=on), blkback-overlay and optionally blkback-private"
    );
}
