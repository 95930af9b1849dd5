//! Random interleavings of both ends' operations against a model: two
//! bounded byte queues plus the four notification requests.

mod common;

use std::collections::VecDeque;

use common::*;
use proptest::prelude::*;
use vchan::{Vchan, VchanError};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Read,
    Write,
    Send,
    Recv,
    DataReady,
    BufferSpace,
}

#[derive(Clone, Copy, Debug)]
struct Op {
    client: bool,
    kind: Kind,
    n: usize,
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(Kind::Read),
        Just(Kind::Write),
        Just(Kind::Send),
        Just(Kind::Recv),
        Just(Kind::DataReady),
        Just(Kind::BufferSpace),
    ];
    let n = prop_oneof![0usize..8, 0usize..3000, Just(1024), Just(2048), Just(4096)];
    (any::<bool>(), kind, n).prop_map(|(client, kind, n)| Op { client, kind, n })
}

/// One direction: queued bytes, the writer's generator, and whether the
/// reader asked to hear about writes / the writer about reads.
struct Model {
    q: VecDeque<u8>,
    cap: usize,
    gen: Stream,
    reader_wants_write: bool,
    writer_wants_read: bool,
}

impl Model {
    fn new(cap: usize, seed: u64) -> Self {
        Model {
            q: VecDeque::new(),
            cap,
            gen: Stream::new(seed),
            // attached_pair starts with both NOTIFY_WRITE requests set, as
            // after a handshake.
            reader_wants_write: true,
            writer_wants_read: false,
        }
    }
    fn space(&self) -> usize {
        self.cap - self.q.len()
    }
}

type Ep = Vchan<Page, Counter>;

fn run(left: u8, right: u8, start: u32, ops: &[Op]) -> Result<(), TestCaseError> {
    let ((mut srv, mut cli), _page, sn, cn) = attached_pair(left, right, start);
    // `l`: client → server; `r`: server → client.
    let mut l = Model::new(1 << left, 11);
    let mut r = Model::new(1 << right, 22);
    let (mut kicks_by_srv, mut kicks_by_cli) = (0usize, 0usize);
    for &op in ops {
        let (ep, out, inp, kicks, counter): (
            &mut Ep,
            &mut Model,
            &mut Model,
            &mut usize,
            &Counter,
        ) = if op.client {
            (&mut cli, &mut l, &mut r, &mut kicks_by_cli, &cn)
        } else {
            (&mut srv, &mut r, &mut l, &mut kicks_by_srv, &sn)
        };
        let n = op.n;
        match op.kind {
            Kind::Write | Kind::Send => {
                let mut data = vec![0u8; n];
                // Generate from a clone: only what is accepted advances.
                out.gen.clone().fill(&mut data);
                let got = if matches!(op.kind, Kind::Write) {
                    ep.write(&data)
                } else {
                    ep.send(&data).map(|()| n)
                };
                let space = out.space();
                let want = match op.kind {
                    Kind::Write if n == 0 => Ok(0),
                    Kind::Send if n > out.cap => Err(VchanError::TooLarge),
                    Kind::Send if n == 0 => Ok(0),
                    Kind::Write if space == 0 => Err(VchanError::WouldBlock),
                    Kind::Send if space < n => Err(VchanError::WouldBlock),
                    _ => Ok(n.min(space)),
                };
                if n > 0 && space < n && !(matches!(op.kind, Kind::Send) && n > out.cap) {
                    out.writer_wants_read = true;
                }
                prop_assert_eq!(got, want, "{:?}", op);
                let accepted = got.unwrap_or(0);
                let mut acc = vec![0u8; accepted];
                out.gen.fill(&mut acc);
                prop_assert_eq!(&acc[..], &data[..accepted]);
                out.q.extend(acc);
                if accepted > 0 && std::mem::take(&mut out.reader_wants_write) {
                    *kicks += 1;
                }
            }
            Kind::Read | Kind::Recv => {
                let mut buf = vec![0u8; n];
                let got = if matches!(op.kind, Kind::Read) {
                    ep.read(&mut buf)
                } else {
                    ep.recv(&mut buf).map(|()| n)
                };
                let len = inp.q.len();
                let want = match op.kind {
                    _ if n == 0 => Ok(0),
                    Kind::Recv if n > inp.cap => Err(VchanError::TooLarge),
                    Kind::Read if len == 0 => Err(VchanError::WouldBlock),
                    Kind::Recv if len < n => Err(VchanError::WouldBlock),
                    _ => Ok(n.min(len)),
                };
                if n > 0 && len < n && !(matches!(op.kind, Kind::Recv) && n > inp.cap) {
                    inp.reader_wants_write = true;
                }
                prop_assert_eq!(got, want, "{:?}", op);
                let taken = got.unwrap_or(0);
                let expect: Vec<u8> = inp.q.drain(..taken).collect();
                prop_assert_eq!(&buf[..taken], &expect[..]);
                if taken > 0 && std::mem::take(&mut inp.writer_wants_read) {
                    *kicks += 1;
                }
            }
            Kind::DataReady => {
                inp.reader_wants_write = true;
                prop_assert_eq!(ep.data_ready(), Ok(inp.q.len()));
            }
            Kind::BufferSpace => {
                out.writer_wants_read = true;
                prop_assert_eq!(ep.buffer_space(), Ok(out.space()));
            }
        }
        prop_assert_eq!(counter.get(), *kicks, "kicks after {:?}", op);
    }
    prop_assert_eq!(sn.get(), kicks_by_srv);
    prop_assert_eq!(cn.get(), kicks_by_cli);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_model(
        geo in prop::sample::select(vec![(10u8, 11u8), (11, 10), (12, 11), (11, 12), (12, 13), (14, 10)]),
        start in prop_oneof![Just(0u32), any::<u32>(), (u32::MAX - 5000)..=u32::MAX],
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run(geo.0, geo.1, start, &ops)?;
    }
}
