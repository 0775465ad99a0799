//! Data-parallel training over MPI (`tapegrad::dist`), run for real under
//! `mpirun --allow-run-as-root --oversubscribe -np N`.
//!
//! Each test starts `mpirun` on this very test binary, whose ignored test `worker` plays
//! one rank of the scenario that `TAPEGRAD_DIST_SCENARIO` names, and checks what the ranks
//! wrote and printed. Needs Open MPI (Debian: `libopenmpi-dev openmpi-bin`); `.ci/run`
//! installs it.

#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tapegrad::data::Dataset;
use tapegrad::dist::{Dist, Equivalence};
use tapegrad::nn::{BatchNorm2d, Init, Optimizer, ParamGrads, ParamId, ParamStore, Sgd};
use tapegrad::prelude::*;

/// The steps of a training scenario.
const STEPS: usize = 20;
/// The global batch: odd, so that two ranks take parts of 6 and 5.
const BATCH: usize = 11;
/// Past this the job counts as hung: the failure tests want it over within seconds.
const DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// The rank's side
// ---------------------------------------------------------------------------------------

/// A small CNN: conv 3x3 (1 → 4 channels, 5 on a rank told to differ), batch norm when
/// asked, ReLU, max-pool 2, linear 64 → 3.
struct Model {
    conv_w: ParamId,
    conv_b: ParamId,
    bn: Option<BatchNorm2d>,
    fc_w: ParamId,
    fc_b: ParamId,
}

impl Model {
    fn new<T: Float>(
        store: &mut ParamStore<T>,
        channels: usize,
        bn: bool,
        rng: &mut StdRng,
    ) -> Self {
        Model {
            conv_w: store.add("conv.weight", [channels, 1, 3, 3], Init::HeNormal, rng),
            conv_b: store.add(
                "conv.bias",
                [channels],
                Init::Uniform { lo: -0.1, hi: 0.1 },
                rng,
            ),
            bn: bn.then(|| BatchNorm2d::new(store, "bn", channels)),
            fc_w: store.add("fc.weight", [channels * 16, 3], Init::GlorotUniform, rng),
            fc_b: store.add("fc.bias", [3], Init::Zeros, rng),
        }
    }

    fn loss<'t, T: Float>(
        &self,
        p: &tapegrad::nn::Bound<'t, T>,
        x: Var<'t, T>,
        labels: &[usize],
    ) -> Result<Var<'t, T>, Error> {
        let mut h = x.conv2d_bias(
            p[self.conv_w],
            p[self.conv_b],
            ConvOptions::new().padding(1),
        );
        if let Some(bn) = &self.bn {
            h = bn.try_forward(p, h)?;
        }
        let h = h.relu().max_pool2d(2).flatten();
        let logits = h.matmul(p[self.fc_w]) + p[self.fc_b];
        Ok(logits.try_cross_entropy(labels)?.mean())
    }
}

/// 8x8 images of 3 classes, the same on every rank (seeded).
fn data<T: Float>() -> Dataset<T> {
    let n = STEPS * BATCH;
    let mut rng = StdRng::seed_from_u64(7);
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..3)).collect();
    let pixels: Vec<T> = (0..n * 64)
        .map(|i| T::from_f64(rng.random::<f64>() + 0.3 * labels[i / 64] as f64))
        .collect();
    let names = (0..3).map(|c| format!("class {c}")).collect();
    Dataset::new(Tensor::from_vec(pixels, [n, 1, 8, 8]), labels, names)
}

/// One rank's run: `STEPS` steps of SGD with momentum on its part of each global batch,
/// then its store written to `out/rank{r}-of-{n}.safetensors`.
fn train<T: Float + Equivalence>(dist: &Dist, scenario: &str, out: &Path) -> Result<(), Error> {
    let differ = scenario == "mismatch" && dist.rank() == 1;
    let mut rng = StdRng::seed_from_u64(100 + dist.rank() as u64); // ranks start apart
    let mut store = ParamStore::<T>::new();
    let model = Model::new(
        &mut store,
        if differ { 5 } else { 4 },
        scenario == "bn",
        &mut rng,
    );
    dist.broadcast_store(&mut store)?;
    let ds = data::<T>();
    let mut opt = Sgd::new(0.05).momentum(0.9);
    let mut shuffle = StdRng::seed_from_u64(1);
    let mut tape = Tape::new();
    for (step, batch) in ds
        .batches_sharded(BATCH, dist.shard(), Some(&mut shuffle))
        .enumerate()
    {
        println!("rank {}: step {}", dist.rank(), step + 1);
        let mut labels = batch.labels.clone();
        if scenario == "fail" && dist.rank() == 1 && step == 4 {
            labels[0] = 7; // a corrupt label: the cross-entropy refuses it
        }
        if scenario == "panic" && dist.rank() == 1 && step == 4 {
            panic!("a bug in rank 1's own code");
        }
        let n = batch.len();
        let p = store.bind(&tape);
        let loss = model.loss(&p, tape.input(batch.images), &labels)?;
        let mut grads = p.grads(&tape.backward(loss));
        dist.average_gradients(&mut grads, n)?;
        tape.clear();
        opt.step(&mut store, &grads);
    }
    let file = out.join(format!(
        "rank{}-of-{}.safetensors",
        dist.rank(),
        dist.size()
    ));
    store
        .save(&file)
        .map_err(|e| Error::bad_argument("save", e.to_string()))
}

/// The short `mnist` run of [`mnist_distributed_prints_the_result_of_one_process`].
fn mnist_options() -> mnist::Options {
    mnist::Options {
        limit: Some(6000),
        test_limit: Some(1000),
        epochs: Some(1),
        threads: Some(1),
        distributed: true,
        ..Default::default()
    }
}

/// One rank of the scenario in `TAPEGRAD_DIST_SCENARIO` (`f32`, `f64`, `bn`, `fail`,
/// `panic`, `mismatch`, `mnist`), writing to `TAPEGRAD_DIST_OUT`. Started by the tests
/// below through `mpirun`; ignored in a plain `cargo test`.
#[test]
#[ignore = "one rank of an MPI job: the tests below start it under mpirun"]
fn worker() {
    let scenario = std::env::var("TAPEGRAD_DIST_SCENARIO").expect("TAPEGRAD_DIST_SCENARIO");
    let out = PathBuf::from(std::env::var("TAPEGRAD_DIST_OUT").expect("TAPEGRAD_DIST_OUT"));
    if scenario == "errors" {
        refusals(&Dist::init().expect("MPI initialises once"));
        return;
    }
    if scenario == "mnist" {
        let ranks = mnist::Ranks::new(true).unwrap();
        match mnist::run_on(&mnist_options(), &ranks) {
            Ok(s) if ranks.is_root() => println!("{}", s.result_line()),
            Ok(_) => {}
            Err(e) => ranks.fail("mnist", e),
        }
        return;
    }
    let dist = Dist::init().expect("MPI initialises once");
    let result = match scenario.as_str() {
        "f64" => train::<f64>(&dist, &scenario, &out),
        _ => train::<f32>(&dist, &scenario, &out),
    };
    if let Err(e) = result {
        dist.abort(e);
    }
}

// ---------------------------------------------------------------------------------------
// The launcher's side
// ---------------------------------------------------------------------------------------

/// What an `mpirun` job did.
struct Job {
    output: Output,
    seconds: f64,
    dir: PathBuf,
}

impl Job {
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
}

/// Runs `scenario` on `ranks` ranks under mpirun, one kernel thread each, killing the job
/// past [`DEADLINE`].
fn mpirun(scenario: &str, ranks: usize) -> Job {
    // A folder per job: tests run side by side, some with the same scenario.
    static JOBS: AtomicUsize = AtomicUsize::new(0);
    let job = JOBS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tapegrad-dist-{scenario}-{ranks}-{}-{job}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let mut child = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            &ranks.to_string(),
        ])
        .args(["-x", "TAPEGRAD_DIST_SCENARIO", "-x", "TAPEGRAD_DIST_OUT"])
        .args(["-x", "TAPEGRAD_THREADS"])
        .arg(&exe)
        .args([
            "worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TAPEGRAD_DIST_SCENARIO", scenario)
        .env("TAPEGRAD_DIST_OUT", &dir)
        .env("TAPEGRAD_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun: install Open MPI (apt-get install -y libopenmpi-dev openmpi-bin)");
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{scenario} on {ranks} ranks hung past {DEADLINE:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    Job {
        output,
        seconds: start.elapsed().as_secs_f64(),
        dir,
    }
}

/// The store a rank wrote, loaded into the model's layout.
fn load<T: Float>(job: &Job, rank: usize, ranks: usize, bn: bool) -> ParamStore<T> {
    let mut store = ParamStore::<T>::new();
    Model::new(&mut store, 4, bn, &mut StdRng::seed_from_u64(0));
    let file = job.dir.join(format!("rank{rank}-of-{ranks}.safetensors"));
    store
        .load_from(&file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), job.text()));
    store
}

/// The largest of, over the entries, max |a − b| / max |a|.
fn relative_difference<T: Float>(a: &ParamStore<T>, b: &ParamStore<T>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|((name, x), (_, y))| {
            let scale = x.data().iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
            let diff = (x.data().iter().zip(y.data()))
                .fold(0.0f64, |m, (p, q)| m.max((p.to_f64() - q.to_f64()).abs()));
            assert!(scale > 0.0, "{name} is all zeros");
            diff / scale
        })
        .fold(0.0, f64::max)
}

fn bits<T: Float>(store: &ParamStore<T>) -> Vec<u64> {
    store
        .iter()
        .flat_map(|(_, t)| t.data().iter().map(|v| v.to_f64().to_bits()))
        .collect()
}

/// After 20 steps, `ranks` ranks hold what 1 rank holds with the same global batch (to
/// `tolerance`: 1e-6 in f32, 1e-12 in f64), and every rank holds the same bits.
fn ranks_train_as_one<T: Float>(scenario: &str, ranks: usize, tolerance: f64) {
    let one = mpirun(scenario, 1);
    let many = mpirun(scenario, ranks);
    for job in [&one, &many] {
        assert!(job.output.status.success(), "{scenario}:\n{}", job.text());
    }
    let single = load::<T>(&one, 0, 1, false);
    let r0 = load::<T>(&many, 0, ranks, false);
    for r in 1..ranks {
        let other = load::<T>(&many, r, ranks, false);
        assert!(
            bits(&r0) == bits(&other),
            "{scenario}: ranks 0 and {r} differ"
        );
    }
    let initial = {
        let mut s = ParamStore::<T>::new();
        Model::new(&mut s, 4, false, &mut StdRng::seed_from_u64(100));
        s
    };
    assert!(
        relative_difference(&single, &initial) > 1e-2,
        "training moved the parameters"
    );
    let diff = relative_difference(&single, &r0);
    println!(
        "{scenario}: after {STEPS} steps of global batch {BATCH}, {ranks} ranks vs 1: max \
         relative difference {diff:.2e} (tolerance {tolerance:.0e}); all ranks bit-identical"
    );
    assert!(diff <= tolerance, "{scenario}: {diff:e} > {tolerance:e}");
    for job in [one, many] {
        std::fs::remove_dir_all(job.dir).ok();
    }
}

#[test]
fn two_ranks_train_as_one_in_f32() {
    ranks_train_as_one::<f32>("f32", 2, 1e-6);
}

#[test]
fn two_ranks_train_as_one_in_f64() {
    ranks_train_as_one::<f64>("f64", 2, 1e-12);
}

/// Three ranks (parts of 4, 4 and 3): past two, the sum's order could differ between
/// ranks if MPI added in a different order on each; it must not.
#[test]
fn three_ranks_train_as_one_in_f32() {
    ranks_train_as_one::<f32>("f32", 3, 1e-6);
}

/// With batch norm each rank normalises its own part, so 2 ranks are not 1; but the
/// running statistics are averaged with the gradients and both ranks stay bit-identical.
#[test]
fn batch_norm_buffers_stay_identical_across_ranks() {
    let job = mpirun("bn", 2);
    assert!(job.output.status.success(), "{}", job.text());
    let (r0, r1) = (load::<f32>(&job, 0, 2, true), load::<f32>(&job, 1, 2, true));
    assert!(
        bits(&r0) == bits(&r1),
        "the ranks' parameters or buffers differ"
    );
    let mean = r0.by_name("bn.running_mean").unwrap();
    assert!(
        r0[mean].data().iter().any(|&m| m != 0.0),
        "the running mean moved"
    );
    std::fs::remove_dir_all(job.dir).ok();
}

/// Checks that `scenario`, in which rank 1 fails at step 5 while rank 0 waits for it in
/// the all-reduce, ends the whole job within seconds, non-zero, with rank 1's message
/// (`says`), no partial result and nothing left running.
fn ends_the_job(scenario: &str, says: &[&str]) {
    let job = mpirun(scenario, 2);
    let text = job.text();
    println!(
        "{scenario}: the job ended in {:.1} s; it printed:\n{text}",
        job.seconds
    );
    assert!(!job.output.status.success(), "{text}");
    for s in says {
        assert!(text.contains(s), "{s:?} in: {text}");
    }
    let partial = job.dir.join("rank0-of-2.safetensors");
    assert!(!partial.exists(), "no partial result");
    assert!(job.seconds < 30.0, "ended in {:.1} s", job.seconds);
    std::fs::remove_dir_all(job.dir).ok();
}

/// Rank 1 meets a corrupt label: the error names the rank and the data's fault.
#[test]
fn a_failing_rank_ends_the_job_with_its_error() {
    ends_the_job(
        "fail",
        &[
            "tapegrad::dist: rank 1 of 2 failed: cross_entropy: targets[0] = 7 is not a class index",
            "ending the whole job",
        ],
    );
}

/// A panic on rank 1 ends the job the same way, through the `Dist` it unwinds past.
#[test]
fn a_panicking_rank_ends_the_job() {
    ends_the_job(
        "panic",
        &[
            "a bug in rank 1's own code",
            "tapegrad::dist: rank 1 of 2 failed: panicked",
        ],
    );
}

/// Rank 1 builds 5 channels where rank 0 builds 4: every rank is told the first mismatch,
/// before any step.
#[test]
fn ranks_with_different_models_are_refused_before_any_step() {
    let job = mpirun("mismatch", 2);
    let text = job.text();
    println!("different models: it printed:\n{text}");
    assert!(!job.output.status.success(), "{text}");
    assert!(
        text.contains(
            "the ranks hold different models: entry 0 is \"conv.weight\" [4, 1, 3, 3] \
             (parameter) on rank 0 but \"conv.weight\" [5, 1, 3, 3] (parameter) on rank 1"
        ),
        "{text}"
    );
    assert!(!text.contains("step 1"), "no step was taken: {text}");
    std::fs::remove_dir_all(job.dir).ok();
}

/// One rank's side of [`misuse_is_refused_on_every_rank_alike`]: each misuse returns the
/// same error on every rank, and the job goes on.
fn refusals(dist: &Dist) {
    let e = Dist::init().unwrap_err();
    assert!(
        e.to_string()
            .starts_with("dist::Dist::init: MPI is initialised already"),
        "{e}"
    );

    // Rank 1 holds one more gradient than rank 0.
    let count = 2 + dist.rank();
    let mut grads = ParamGrads::from_tensors(vec![Tensor::<f32>::ones([3]); count]);
    let e = dist.average_gradients(&mut grads, 1).unwrap_err();
    let want = "dist::average_gradients: rank 0 holds 6 gradient elements and 0 buffer values, \
                rank 1 9 and 0: the ranks' models (or the buffers their forward passes set) differ";
    assert!(e.to_string().starts_with(want), "{e}");
    assert_eq!(
        grads.iter().next().unwrap().to_vec(),
        vec![1.0; 3],
        "nothing was changed"
    );

    let mut grads = ParamGrads::from_tensors(vec![Tensor::<f64>::ones([3])]);
    let e = dist.average_gradients(&mut grads, 0).unwrap_err();
    assert!(
        e.to_string().contains("no rank had a sample in this step"),
        "{e}"
    );

    // One rank with samples, one without (whose mean loss over nothing is NaN): the mean
    // is the first rank's gradients.
    let value = if dist.rank() == 0 { 2.0 } else { f64::NAN };
    let mut grads = ParamGrads::from_tensors(vec![Tensor::<f64>::full([4], value)]);
    let n = usize::from(dist.rank() == 0);
    dist.average_gradients(&mut grads, n).unwrap();
    assert_eq!(grads.iter().next().unwrap().to_vec(), vec![2.0; 4]);
    println!("rank {}: every misuse refused", dist.rank());
}

/// Misuse of `dist` is an error on every rank alike, never a hang: a second `Dist`, ranks
/// whose gradients differ in size, a step without samples.
#[test]
fn misuse_is_refused_on_every_rank_alike() {
    let job = mpirun("errors", 2);
    let text = job.text();
    assert!(job.output.status.success(), "{text}");
    for r in 0..2 {
        assert!(
            text.contains(&format!("rank {r}: every misuse refused")),
            "{text}"
        );
    }
    std::fs::remove_dir_all(job.dir).ok();
}

/// The `result:` fields that do not measure time.
fn untimed(result: &str) -> Vec<String> {
    result
        .split_whitespace()
        .filter(|f| {
            !["seconds=", "images_per_s=", "ms_per_step="]
                .iter()
                .any(|k| f.starts_with(k))
        })
        .map(String::from)
        .collect()
}

/// The one `result:` line a job printed (rank 0's alone).
fn result_line(job: &Job) -> String {
    let text = String::from_utf8_lossy(&job.output.stdout).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("result:")).collect();
    assert_eq!(
        lines.len(),
        1,
        "one result line, from rank 0:\n{}",
        job.text()
    );
    lines[0].to_string()
}

/// The value of `key=` in a result line.
fn field(result: &str, key: &str) -> f64 {
    let v = result
        .split_whitespace()
        .find_map(|f| f.strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} in {result}"));
    v.trim_end_matches('%').parse().unwrap()
}

/// `mnist --distributed` under mpirun: on one rank it prints exactly what one process
/// prints; on two (each on half of every batch of 50) the same line with the same fields,
/// close in value. Needs Fashion-MNIST (which `.ci/run` installs).
#[test]
fn mnist_distributed_prints_the_result_of_one_process() {
    let alone = mnist::run(&mnist::Options {
        distributed: false,
        ..mnist_options()
    })
    .expect("Fashion-MNIST is installed (apt-get install dataset-fashion-mnist)")
    .result_line();
    let (one, two) = (mpirun("mnist", 1), mpirun("mnist", 2));
    let (one, two) = (result_line(&one), result_line(&two));
    println!("one process: {alone}\n1 rank:      {one}\n2 ranks:     {two}");
    assert_eq!(untimed(&one), untimed(&alone));
    let keys = |r: &str| -> Vec<String> {
        r.split_whitespace()
            .map(|f| f.split('=').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&two), keys(&alone));
    let (a, b) = (field(&alone, "accuracy="), field(&two, "accuracy="));
    assert!((a - b).abs() < 3.0, "accuracy {a}% alone, {b}% on 2 ranks");
    let (a, b) = (field(&alone, "loss="), field(&two, "loss="));
    assert!(
        (a - b).abs() < 0.05 * a,
        "test loss {a} alone, {b} on 2 ranks"
    );
}
