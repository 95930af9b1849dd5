//! Host tests: the copy-on-write disk and the private volume against a
//! reference model (a plain byte vector) under random workloads.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use crate::*;

const S: usize = SECTOR_SIZE;

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A read-only view of a memory disk that counts reads; it has no write
/// method at all, like the template the backend gets.
struct Template {
    disk: MemDisk,
    reads: usize,
}

impl ReadBlocks for Template {
    type Error = RangeError;
    fn sector_count(&self) -> u64 {
        self.disk.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), RangeError> {
        self.reads += 1;
        self.disk.read_sectors(lba, buf)
    }
}

fn template(sectors: usize, seed: u64) -> Template {
    Template {
        disk: MemDisk::from_bytes(pattern(sectors * S, seed)),
        reads: 0,
    }
}

fn read_all<V: VirtualDisk>(d: &mut V) -> Vec<u8> {
    let mut buf = vec![0u8; d.capacity() as usize * S];
    d.read(0, &mut buf).unwrap();
    buf
}

#[test]
fn reads_come_from_the_template_until_written() {
    let mut t = template(64, 1);
    let original = t.disk.as_bytes().to_vec();
    let mut ov = Overlay::new(MemDisk::zeroed(64), 4096).unwrap();
    assert_eq!(ov.capacity_chunks(), 8);
    let mut d = ov.disk(&mut t);
    assert_eq!(d.capacity(), 64);
    assert_eq!(read_all(&mut d), original);
    // A one-sector write in chunk 1 copies the rest of that chunk.
    d.write(9, &[0xaa; S]).unwrap();
    let mut want = original.clone();
    want[9 * S..10 * S].fill(0xaa);
    assert_eq!(read_all(&mut d), want);
    assert_eq!(ov.used_chunks(), 1);
    assert!(ov.is_mapped(1));
    // A write spanning chunks 1..=3 needs two new ones.
    let mut d = ov.disk(&mut t);
    d.write(15, &[0xbb; 10 * S]).unwrap();
    want[15 * S..25 * S].fill(0xbb);
    assert_eq!(read_all(&mut d), want);
    assert_eq!(ov.used_chunks(), 3);
    // The template never changed.
    assert_eq!(t.disk.as_bytes(), &original[..]);
}

#[test]
fn whole_chunk_writes_do_not_read_the_template() {
    let mut t = template(64, 2);
    let mut ov = Overlay::new(MemDisk::zeroed(64), 4096).unwrap();
    let mut d = ov.disk(&mut t);
    d.write(8, &[1; 8 * S]).unwrap();
    assert_eq!(t.reads, 0);
    let mut d = ov.disk(&mut t);
    d.write(17, &[1; S]).unwrap();
    assert_eq!(t.reads, 1);
}

#[test]
fn overlay_full_is_a_clear_error_and_changes_nothing() {
    let mut t = template(64, 3);
    let mut ov = Overlay::new(MemDisk::zeroed(16), 4096).unwrap();
    assert_eq!(ov.capacity_chunks(), 2);
    let mut d = ov.disk(&mut t);
    d.write(0, &[1; S]).unwrap();
    let before = read_all(&mut d);
    // Chunks 0 (mapped), 1 and 2 (new): two new, one free.
    let e = d.write(7, &[2; 10 * S]).unwrap_err();
    assert_eq!(
        e,
        BlkError::OverlayFull {
            needed: 2,
            available: 1
        }
    );
    assert_eq!(
        alloc::format!("{e}"),
        "overlay full: the write needs 2 new chunks, 1 are free"
    );
    assert_eq!(read_all(&mut d), before);
    // Writes to mapped chunks still work; discards free space.
    d.write(3, &[4; S]).unwrap();
    d.write(8, &[5; S]).unwrap();
    assert!(matches!(
        d.write(16, &[6; S]),
        Err(BlkError::OverlayFull { .. })
    ));
    d.discard(0, 8).unwrap();
    d.write(16, &[6; S]).unwrap();
}

#[test]
fn discard_and_reset_return_to_the_template() {
    let mut t = template(40, 4); // the last chunk is partial (8 sectors of 16)
    let original = t.disk.as_bytes().to_vec();
    let mut ov = Overlay::new(MemDisk::zeroed(64), 8192).unwrap();
    let mut d = ov.disk(&mut t);
    d.write(0, &vec![9; 40 * S]).unwrap();
    assert_eq!(read_all(&mut d), vec![9; 40 * S]);
    // Partial discards keep the data.
    d.discard(1, 20).unwrap();
    assert_eq!(read_all(&mut d), vec![9; 40 * S]);
    // A whole chunk, and the partial last chunk, revert.
    d.discard(16, 16).unwrap();
    d.discard(32, 8).unwrap();
    let mut want = vec![9; 40 * S];
    want[16 * S..].copy_from_slice(&original[16 * S..]);
    assert_eq!(read_all(&mut d), want);
    assert_eq!(ov.used_chunks(), 1);
    // The VM goes away.
    ov.reset();
    assert_eq!(ov.used_chunks(), 0);
    assert_eq!(read_all(&mut ov.disk(&mut t)), original);
    assert_eq!(t.disk.as_bytes(), &original[..]);
}

#[test]
fn bad_requests_are_errors() {
    let mut t = template(16, 5);
    assert_eq!(
        Overlay::new(MemDisk::zeroed(8), 1000).unwrap_err(),
        BlkError::BadChunkSize(1000)
    );
    assert!(Overlay::new(MemDisk::zeroed(8), 256).is_err());
    assert!(Overlay::new(MemDisk::zeroed(8), 2 << 20).is_err());
    let mut ov = Overlay::new(MemDisk::zeroed(8), 512).unwrap();
    let mut d = ov.disk(&mut t);
    assert!(matches!(d.read(16, &mut [0; S]), Err(BlkError::Range(_))));
    assert!(matches!(
        d.read(15, &mut [0; 2 * S]),
        Err(BlkError::Range(_))
    ));
    assert!(matches!(
        d.read(u64::MAX, &mut [0; S]),
        Err(BlkError::Range(_))
    ));
    assert!(matches!(d.write(0, &[0; 100]), Err(BlkError::Range(_))));
    assert!(matches!(d.discard(10, 7), Err(BlkError::Range(_))));
    assert!(matches!(
        d.discard(u64::MAX, u64::MAX),
        Err(BlkError::Range(_))
    ));
    // The virtio-shaped entry point.
    assert_eq!(
        serve(&mut d, Request::Read { lba: 0, sectors: 2 }).0,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(
        serve(
            &mut d,
            Request::Read {
                lba: 15,
                sectors: 2
            }
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        serve(
            &mut d,
            Request::Read {
                lba: 0,
                sectors: u32::MAX
            }
        )
        .0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        serve(
            &mut d,
            Request::Write {
                lba: 1,
                data: &[3; S]
            }
        )
        .0,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(
        serve(&mut d, Request::Read { lba: 1, sectors: 1 }).1,
        vec![3; S]
    );
    assert_eq!(serve(&mut d, Request::Flush).0, VIRTIO_BLK_S_OK);
    assert_eq!(
        serve(&mut d, Request::Discard { lba: 1, sectors: 1 }).0,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(
        serve(&mut d, Request::Read { lba: 1, sectors: 1 }).1,
        t.disk.as_bytes()[S..2 * S]
    );
}

#[test]
fn overlays_of_two_vms_share_one_template() {
    let mut t = template(32, 6);
    let original = t.disk.as_bytes().to_vec();
    let mut a = Overlay::new(MemDisk::zeroed(32), 4096).unwrap();
    let mut b = Overlay::new(MemDisk::zeroed(32), 4096).unwrap();
    a.disk(&mut t).write(0, &[0xa; S]).unwrap();
    b.disk(&mut t).write(0, &[0xb; S]).unwrap();
    let ra = read_all(&mut a.disk(&mut t));
    let rb = read_all(&mut b.disk(&mut t));
    assert_eq!(&ra[..S], &[0xa; S]);
    assert_eq!(&rb[..S], &[0xb; S]);
    assert_eq!(&ra[S..], &original[S..]);
    assert_eq!(&rb[S..], &original[S..]);
}

#[test]
fn workload_self_check_reads_back_exactly() {
    let mut t = template(2048, 7);
    let before = fnv(t.disk.as_bytes());
    let mut ov = Overlay::new(MemDisk::zeroed(2048), DEFAULT_CHUNK_SIZE).unwrap();
    let r = workload_check(&mut t, &mut ov, 42, 300).unwrap();
    assert_eq!(r.mismatches, 0);
    assert_eq!((r.writes, r.reads), (300, 300));
    assert!(r.chunks_used > 0 && r.chunks_used <= 16);
    assert_eq!(fnv(t.disk.as_bytes()), before, "template unchanged");
    // The whole-disk checksum differs from the template's until reset.
    let cow = checksum(&mut ov.disk(&mut t)).unwrap();
    let mut plain = PrivateDisk::new(t.disk.clone());
    let tsum = checksum(&mut plain).unwrap();
    assert_eq!(tsum, fnv(t.disk.as_bytes()));
    assert_ne!(cow, tsum);
    ov.reset();
    assert_eq!(checksum(&mut ov.disk(&mut t)).unwrap(), tsum);
    // A too-small overlay reports OverlayFull rather than misbehaving.
    let mut tiny = Overlay::new(MemDisk::zeroed(128), DEFAULT_CHUNK_SIZE).unwrap();
    assert!(matches!(
        workload_check(&mut t, &mut tiny, 1, 300),
        Err(BlkError::OverlayFull { .. })
    ));
}

#[test]
fn private_disk_passes_through() {
    let mut p = PrivateDisk::new(MemDisk::zeroed(8));
    p.write(2, &[7; 2 * S]).unwrap();
    let mut buf = [0u8; 4 * S];
    p.read(1, &mut buf).unwrap();
    assert_eq!(&buf[..S], &[0; S]);
    assert_eq!(&buf[S..3 * S], &[7; 2 * S]);
    assert!(p.write(7, &[0; 2 * S]).is_err());
    assert!(p.discard(7, 2).is_err());
    p.discard(0, 8).unwrap();
    p.flush().unwrap();
    assert_eq!(p.into_device().as_bytes()[2 * S], 7);
}

#[derive(Clone, Debug)]
enum Op {
    Write { lba: u64, sectors: u64, seed: u64 },
    Read { lba: u64, sectors: u64 },
    Discard { lba: u64, sectors: u64 },
    Reset,
}

fn ops(disk: u64) -> impl Strategy<Value = Vec<Op>> {
    let lba = 0..disk + 4;
    let n = 0u64..24;
    proptest::collection::vec(
        prop_oneof![
            6 => (lba.clone(), n.clone(), any::<u64>()).prop_map(|(lba, sectors, seed)| Op::Write { lba, sectors, seed }),
            3 => (lba.clone(), n.clone()).prop_map(|(lba, sectors)| Op::Read { lba, sectors }),
            2 => (lba, n).prop_map(|(lba, sectors)| Op::Discard { lba, sectors }),
            1 => Just(Op::Reset),
        ],
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The CoW disk reads back exactly what a plain byte vector would,
    /// runs out of overlay exactly when the model says, and never changes
    /// the template.
    #[test]
    fn cow_disk_matches_the_model(
        disk_sectors in 1u64..70,
        chunk_pow in 0u32..5,
        overlay_chunks in 0u64..12,
        ops in ops(70),
        seed in any::<u64>(),
    ) {
        let chunk = 512usize << chunk_pow;
        let cs = (chunk / S) as u64;
        let mut t = template(disk_sectors as usize, seed);
        let original = t.disk.as_bytes().to_vec();
        let sum = fnv(&original);
        let mut ov = Overlay::new(MemDisk::zeroed((overlay_chunks * cs) as usize), chunk).unwrap();
        let mut model = original.clone();
        let mut mapped: BTreeSet<u64> = BTreeSet::new();
        let in_range = |lba: u64, n: u64| lba + n <= disk_sectors;
        for op in ops {
            let mut d = ov.disk(&mut t);
            match op {
                Op::Write { lba, sectors, seed } => {
                    let data = pattern(sectors as usize * S, seed);
                    let r = d.write(lba, &data);
                    if !in_range(lba, sectors) {
                        prop_assert!(matches!(r, Err(BlkError::Range(_))));
                        continue;
                    }
                    let chunks: BTreeSet<u64> = (lba..lba + sectors).map(|s| s / cs).collect();
                    let new = chunks.difference(&mapped).count() as u64;
                    if new > overlay_chunks - mapped.len() as u64 {
                        prop_assert_eq!(r, Err(BlkError::OverlayFull { needed: new, available: overlay_chunks - mapped.len() as u64 }));
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        model[lba as usize * S..(lba + sectors) as usize * S].copy_from_slice(&data);
                        mapped.extend(chunks);
                    }
                }
                Op::Read { lba, sectors } => {
                    let mut buf = vec![0u8; sectors as usize * S];
                    let r = d.read(lba, &mut buf);
                    if in_range(lba, sectors) {
                        prop_assert_eq!(r, Ok(()));
                        prop_assert_eq!(&buf[..], &model[lba as usize * S..(lba + sectors) as usize * S]);
                    } else {
                        prop_assert!(r.is_err());
                    }
                }
                Op::Discard { lba, sectors } => {
                    let r = d.discard(lba, sectors);
                    if !in_range(lba, sectors) {
                        prop_assert!(r.is_err());
                        continue;
                    }
                    prop_assert_eq!(r, Ok(()));
                    // Whole chunks (the last one may be short) revert.
                    let first = lba.div_ceil(cs);
                    let mut c = first;
                    while c * cs < disk_sectors {
                        let start = c * cs;
                        let end = (start + cs).min(disk_sectors);
                        if start >= lba && end <= lba + sectors && end > start {
                            mapped.remove(&c);
                            model[start as usize * S..end as usize * S]
                                .copy_from_slice(&original[start as usize * S..end as usize * S]);
                        }
                        if start >= lba + sectors { break; }
                        c += 1;
                    }
                }
                Op::Reset => {
                    ov.reset();
                    mapped.clear();
                    model.copy_from_slice(&original);
                }
            }
            prop_assert_eq!(ov.used_chunks(), mapped.len() as u64);
            prop_assert_eq!(read_all(&mut ov.disk(&mut t)), model.clone());
            prop_assert_eq!(fnv(t.disk.as_bytes()), sum);
        }
    }

    /// The private volume is a plain disk.
    #[test]
    fn private_disk_matches_the_model(ops in ops(40)) {
        let mut p = PrivateDisk::new(MemDisk::zeroed(40));
        let mut model = vec![0u8; 40 * S];
        for op in ops {
            match op {
                Op::Write { lba, sectors, seed } => {
                    let data = pattern(sectors as usize * S, seed);
                    let ok = lba + sectors <= 40;
                    prop_assert_eq!(p.write(lba, &data).is_ok(), ok);
                    if ok {
                        model[lba as usize * S..(lba + sectors) as usize * S].copy_from_slice(&data);
                    }
                }
                Op::Read { lba, sectors } => {
                    let mut buf = vec![0u8; sectors as usize * S];
                    let ok = lba + sectors <= 40;
                    prop_assert_eq!(p.read(lba, &mut buf).is_ok(), ok);
                    if ok {
                        prop_assert_eq!(&buf[..], &model[lba as usize * S..(lba + sectors) as usize * S]);
                    }
                }
                Op::Discard { lba, sectors } => {
                    prop_assert_eq!(p.discard(lba, sectors).is_ok(), lba + sectors <= 40);
                }
                Op::Reset => {}
            }
        }
        prop_assert_eq!(read_all(&mut p), model);
    }
}
