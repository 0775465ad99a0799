//! Data-parallel training over MPI (feature `mpi`): several processes (ranks), on one machine
//! or many, train one model on one global batch, each on its own part of it.
//!
//! The recipe, as in PyTorch's `DistributedDataParallel`:
//! 1. [`Dist::init`] joins the job that `mpirun` started;
//! 2. every rank builds the same model, and [`Dist::broadcast_store`] checks that the ranks
//!    agree on it (names, shapes, element type) and copies rank 0's parameters and buffers
//!    to the others, so that every rank starts identical;
//! 3. each rank takes its part of every global batch
//!    ([`Dataset::batches_sharded`](crate::data::Dataset::batches_sharded) with
//!    [`Dist::shard`]), computes its gradients, and [`Dist::average_gradients`] replaces
//!    them with the mean over the whole global batch, the same bits on every rank;
//! 4. every rank takes the same optimiser step, so the models stay identical;
//! 5. evaluation runs on each rank's part of the test set and [`Dist::sum`] adds the
//!    counts; only rank 0 ([`Dist::is_root`]) writes files and draws progress bars.
//!
//! ```no_run
//! use tapegrad::dist::Dist;
//! use tapegrad::nn::{Init, ParamStore, Sgd, Optimizer};
//! use tapegrad::prelude::*;
//! use rand::SeedableRng;
//!
//! let dist = Dist::init().expect("run under mpirun");
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut store = ParamStore::<f32>::new();
//! let w = store.add("w", [3, 1], Init::GlorotUniform, &mut rng);
//! dist.broadcast_store(&mut store).unwrap_or_else(|e| dist.abort(e));
//! let mut opt = Sgd::new(0.1);
//! let mut tape = Tape::new();
//! for _ in 0..10 {
//!     // this rank's part of the global batch: two rows here
//!     let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
//!     let p = store.bind(&tape);
//!     let loss = tape.input(x).matmul(p[w]).square().mean();
//!     let mut grads = p.grads(&tape.backward(loss));
//!     dist.average_gradients(&mut grads, 2).unwrap_or_else(|e| dist.abort(e));
//!     tape.clear();
//!     opt.step(&mut store, &grads);
//! }
//! if dist.is_root() {
//!     println!("trained on {} ranks", dist.size());
//! }
//! ```
//!
//! Run it with `mpirun -np 2 target/release/examples/NAME`, on several machines with
//! `mpirun -np 8 --hostfile hosts ...`.
//!
//! # When a rank fails
//! A rank that stops while the others wait in a collective would leave them waiting for
//! ever. [`Dist::abort`] prints the rank and the error and ends the whole job (MPI_Abort):
//! call it with every error a rank cannot recover from. A panic that unwinds through the
//! frame owning the [`Dist`] (the main thread, or any thread whose panic reaches it) ends the
//! job the same way when the `Dist` drops.
//!
//! # Batch norm
//! Each rank normalises with the statistics of its own part of the batch (as
//! `DistributedDataParallel` without `SyncBatchNorm`); the running statistics' new values
//! are averaged across ranks with the gradients, so they too stay identical everywhere.

mod reduce;
mod store;

use crate::error::Error;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;
use std::cell::Cell;
use std::fmt::Display;
use std::io::Write;
use std::time::{Duration, Instant};

pub use mpi;
pub use mpi::datatype::Equivalence;

/// Buckets of this many bytes at most go into one all-reduce: PyTorch DDP's default, 25 MiB.
pub const DEFAULT_BUCKET_BYTES: usize = 25 << 20;

/// This process's place in an MPI job: its rank, the number of ranks, and the collectives
/// of data-parallel training. One per process, made by [`Dist::init`]; MPI is finalised
/// when it drops.
pub struct Dist {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    bucket_bytes: usize,
    /// Time spent in collectives since [`Dist::take_comm_time`] last read it.
    comm_time: Cell<Duration>,
    // Dropped after `world`: finalises MPI.
    _universe: Universe,
}

impl Dist {
    /// Initialises MPI and joins the job: under `mpirun -np N` each of the N processes
    /// gets its rank; started on its own a process is rank 0 of 1.
    ///
    /// Errors: MPI was initialised already in this process (a second `Dist`).
    #[track_caller]
    pub fn init() -> Result<Dist, Error> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::bad_argument(
                "dist::Dist::init",
                "MPI is initialised already in this process: make one Dist and share it",
            )
        })?;
        let world = universe.world();
        // MPI ranks and sizes are non-negative C ints.
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Dist {
            world,
            rank,
            size,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
            comm_time: Cell::new(Duration::ZERO),
            _universe: universe,
        })
    }

    /// This process's rank, `0..size()`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks in the job.
    pub fn size(&self) -> usize {
        self.size
    }

    /// True on rank 0, the one that writes files, prints results and draws progress bars.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// This rank's part of the data (see
    /// [`Dataset::batches_sharded`](crate::data::Dataset::batches_sharded)).
    #[cfg(feature = "data")]
    pub fn shard(&self) -> crate::data::Shard {
        crate::data::Shard::new(self.rank, self.size).expect("an MPI rank is below the size")
    }

    /// The largest all-reduce [`Dist::average_gradients`] sends at once, in bytes
    /// (default [`DEFAULT_BUCKET_BYTES`]); larger gradients go in several buckets.
    pub fn with_bucket_bytes(mut self, bytes: usize) -> Dist {
        self.bucket_bytes = bytes.max(1);
        self
    }

    /// The MPI communicator of every rank, for collectives of your own.
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) {
        self.timed(|| self.world.barrier());
    }

    /// The element-wise sum of `values` over the ranks, the same on every rank: each rank's
    /// values are gathered and added in rank order, so the bits do not depend on how MPI
    /// reduces. For evaluation counts and losses. Every rank must pass as many values.
    pub fn sum(&self, values: &[f64]) -> Vec<f64> {
        let mut all = vec![0.0f64; values.len() * self.size];
        self.timed(|| self.world.all_gather_into(values, &mut all[..]));
        let mut sum = vec![0.0f64; values.len()];
        for part in all.chunks_exact(values.len().max(1)) {
            for (s, v) in sum.iter_mut().zip(part) {
                *s += v;
            }
        }
        sum
    }

    /// The time this rank spent in collectives (all-reduces, broadcasts, gathers, barriers)
    /// since the last call, and restarts the count.
    pub fn take_comm_time(&self) -> Duration {
        self.comm_time.replace(Duration::ZERO)
    }

    /// Prints `why` with this rank's number to stderr and ends the whole job: every rank,
    /// on every machine (MPI_Abort, exit code 1). The way out of an error that one rank
    /// cannot recover from, since the other ranks would otherwise wait for it for ever.
    pub fn abort(&self, why: impl Display) -> ! {
        eprintln!(
            "tapegrad::dist: rank {} of {} failed: {why}\ntapegrad::dist: ending the whole job",
            self.rank, self.size
        );
        let _ = std::io::stderr().flush();
        mpi::traits::Communicator::abort(&self.world, 1)
    }

    /// Runs a collective, adding its time to the count.
    fn timed<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = f();
        self.comm_time.set(self.comm_time.get() + start.elapsed());
        r
    }
}

impl Drop for Dist {
    /// A panic unwinding through the owner of the `Dist` ends the whole job rather than
    /// leaving the other ranks waiting in a collective for this one.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.abort("panicked (the message is above)");
        }
    }
}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dist")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("bucket_bytes", &self.bucket_bytes)
            .finish()
    }
}
