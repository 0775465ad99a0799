//! The processes an example trains on: this one alone, or (`--distributed`, feature `mpi`)
//! every rank of the MPI job that `mpirun` started. One type, so that the training loops
//! read the same either way.

use std::borrow::Cow;
use std::error::Error;
use tapegrad::data::{Dataset, Shard};
use tapegrad::nn::{ParamGrads, ParamStore};

#[cfg(feature = "mpi")]
use tapegrad::dist::Dist;

/// This process's place among the processes training one model.
pub struct Ranks {
    #[cfg(feature = "mpi")]
    dist: Option<Dist>,
}

impl Ranks {
    /// One process on its own.
    pub fn single() -> Ranks {
        Ranks {
            #[cfg(feature = "mpi")]
            dist: None,
        }
    }

    /// One process, or with `distributed` the ranks of the MPI job (an error in a build
    /// without the `mpi` feature).
    pub fn new(distributed: bool) -> Result<Ranks, String> {
        if !distributed {
            return Ok(Ranks::single());
        }
        #[cfg(feature = "mpi")]
        {
            let dist = Dist::init().map_err(|e| format!("--distributed: {e}"))?;
            Ok(Ranks { dist: Some(dist) })
        }
        #[cfg(not(feature = "mpi"))]
        Err(
            "--distributed: this build has no MPI; build with `--features mpi` (Debian: apt-get \
             install libopenmpi-dev openmpi-bin clang libclang-dev) and start it with \
             `mpirun -np N`"
                .into(),
        )
    }

    /// This process's rank, 0 alone.
    pub fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            return d.rank();
        }
        0
    }

    /// The number of ranks, 1 alone.
    pub fn size(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            return d.size();
        }
        1
    }

    /// True on the rank that prints, draws and writes files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// This rank's part of each global batch and of the test set.
    pub fn shard(&self) -> Shard {
        Shard::new(self.rank(), self.size()).expect("a rank is below the size")
    }

    /// This rank's part of `ds` (for evaluation) and where it starts: the whole of `ds`,
    /// not copied, in one process.
    pub fn part<'a>(&self, ds: &'a Dataset<f32>) -> (usize, Cow<'a, Dataset<f32>>) {
        if self.size() == 1 {
            return (0, Cow::Borrowed(ds));
        }
        let part = self.shard().range(ds.len());
        (part.start, Cow::Owned(ds.subset(&part.collect::<Vec<_>>())))
    }

    /// The whole set's figures from every rank's part: `sums` added over the ranks, and
    /// each rank's `predictions` (of its part, which starts at `offset` of `whole` images)
    /// put in their places. One collective for both.
    pub fn gather(
        &self,
        sums: &[f64],
        predictions: &[usize],
        offset: usize,
        whole: usize,
    ) -> (Vec<f64>, Vec<usize>) {
        let mut values = vec![0.0; sums.len() + whole];
        values[..sums.len()].copy_from_slice(sums);
        for (i, &p) in predictions.iter().enumerate() {
            values[sums.len() + offset + i] = p as f64;
        }
        let all = self.sum(&values);
        let (sums, predictions) = all.split_at(sums.len());
        (
            sums.to_vec(),
            predictions.iter().map(|&p| p as usize).collect(),
        )
    }

    /// Every rank starts from rank 0's parameters (after checking that all hold the same
    /// model).
    pub fn broadcast(&self, _store: &mut ParamStore<f32>) -> Result<(), Box<dyn Error>> {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            d.broadcast_store(_store)?;
        }
        Ok(())
    }

    /// The mean of the gradients over the global batch, from each rank's mean over its
    /// `local` samples.
    pub fn average(
        &self,
        _grads: &mut ParamGrads<f32>,
        _local: usize,
    ) -> Result<(), Box<dyn Error>> {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            d.average_gradients(_grads, _local)?;
        }
        Ok(())
    }

    /// `values` summed over the ranks.
    pub fn sum(&self, values: &[f64]) -> Vec<f64> {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            return d.sum(values);
        }
        values.to_vec()
    }

    /// Seconds spent in collectives since the last call.
    pub fn take_comm_seconds(&self) -> f64 {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            return d.take_comm_time().as_secs_f64();
        }
        0.0
    }

    /// Prints `e` (with the rank when there are several) and ends every rank: exit status 1.
    pub fn fail(&self, program: &str, e: impl std::fmt::Display) -> ! {
        #[cfg(feature = "mpi")]
        if let Some(d) = &self.dist {
            d.abort(format!("{program}: {e}"));
        }
        eprintln!("{program}: {e}");
        std::process::exit(1)
    }
}
