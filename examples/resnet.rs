//! A residual network with batch norm on Fashion-MNIST, trained with augmentation and a
//! one-cycle schedule, built from `tapegrad::nn`'s layers.
//!
//! ```sh
//! cargo run --release --example resnet
//! ```
//!
//! Network (a ResNet-8): conv 3x3 1→16, batch norm, relu; three stages of one basic block
//! each (two conv 3x3 with batch norm, an identity shortcut, or a 1x1 stride-2 conv with
//! batch norm where the shape changes), 16, 32 and 64 channels at 28, 14 and 7 pixels;
//! global average pooling; linear 64→10. PyTorch's default initialisation (the layers').
//! Pixels standardised with the training set's mean and standard deviation; each training
//! image flipped left to right with probability ½ (random crops, `--crop`, cost accuracy in
//! ten epochs: the network underfits). SGD with Nesterov momentum 0.9, weight decay 5e-4,
//! batch 128, a one-cycle learning rate (PyTorch's cosine form, peak 0.2 at 25% of the
//! steps). Evaluation averages the logits of each test image and its mirror.
//! `scripts/torch_recipes.py --recipe resnet` is
//! the same recipe in PyTorch.
//!
//! Shows a progress bar, prints a line per epoch, writes the loss and accuracy curves and
//! the test confusion matrix as PNG to `--out` (default `resnet-out/`), and ends with
//! `result: epochs=.. train=N test=N accuracy=..% loss=.. seconds=.. images_per_s=..`.
//! Flags: `--help`.
//!
//! Data-parallel over MPI (feature `mpi`): `--batch` is then the global batch, each rank
//! trains on its part (batch norm normalising with that part's statistics, as PyTorch's
//! DistributedDataParallel without SyncBatchNorm) and evaluates its part of the test set;
//! rank 0 prints and draws.
//!
//! ```sh
//! cargo build --release --features mpi --example resnet
//! mpirun -np 2 target/release/examples/resnet --distributed --threads 1
//! ```

#[path = "common/args.rs"]
mod args;
#[path = "common/ranks.rs"]
mod ranks;
use ranks::Ranks;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::data::{Augment, Batch, Dataset, FASHION_MNIST_CLASSES, load_mnist_dir};
use tapegrad::metrics::ConfusionMatrix;
use tapegrad::nn::{
    BatchNorm2d, Bound, Conv2d, Linear, OneCycleLr, Optimizer, ParamStore, Schedule, Sgd,
};
use tapegrad::prelude::*;
use tapegrad::viz::{Progress, Series, plot_confusion, plot_curves};

/// What to run; `Default` is the recipe above.
#[derive(Clone, Debug)]
pub struct Options {
    /// The folder of the IDX files.
    pub data: String,
    /// Passes over the training images.
    pub epochs: usize,
    /// Training images used (the first ones).
    pub limit: usize,
    /// Test images used (the first ones).
    pub test_limit: usize,
    /// Images per training batch.
    pub batch: usize,
    /// The one-cycle schedule's peak learning rate.
    pub lr: f64,
    /// Channels of the first stage (doubled at each of the next two).
    pub width: usize,
    /// The training loss's label smoothing (PyTorch's `label_smoothing`).
    pub label_smoothing: f64,
    /// Zeros around each training image for a random crop of its size (0: no crop).
    pub crop: usize,
    /// Seeds the weights, the batch order and the augmentation.
    pub seed: u64,
    /// Kernel threads (default: `TAPEGRAD_THREADS` or every core).
    pub threads: Option<usize>,
    /// Where the PNGs go; `None` writes none.
    pub out: Option<PathBuf>,
    /// Draw the progress bar.
    pub progress: bool,
    /// Train as one rank of an MPI job (feature `mpi`, under mpirun).
    pub distributed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: "/usr/share/datasets/fashion-mnist".into(),
            epochs: 10,
            limit: 60_000,
            test_limit: 10_000,
            batch: 128,
            lr: 0.2,
            width: 16,
            label_smoothing: 0.0,
            crop: 0,
            seed: 0,
            threads: None,
            out: Some("resnet-out".into()),
            progress: true,
            distributed: false,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Test accuracy after the last epoch, in percent.
    pub accuracy: f64,
    /// Mean test cross-entropy after the last epoch.
    pub loss: f64,
    /// Test accuracy after each epoch, in percent.
    pub accuracies: Vec<f64>,
    /// Mean training loss of each epoch.
    pub train_losses: Vec<f64>,
    /// The test confusion matrix after the last epoch.
    pub confusion: ConfusionMatrix,
    /// Wall time of training and the per-epoch evaluations.
    pub seconds: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Mean wall time of a training step, in milliseconds.
    pub ms_per_step: f64,
    /// The part of the training time spent averaging gradients across ranks (0 alone).
    pub allreduce_share: f64,
}

const USAGE: &str = "\
usage: cargo run --release --example resnet -- [flags]
  --data DIR        folder of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
  --epochs N        passes over the training images (default 10)
  --limit N         training images used (default 60000)
  --test-limit N    test images used (default 10000)
  --batch N         images per training batch (default 128)
  --lr X            peak learning rate of the one-cycle schedule (default 0.2)
  --width N         channels of the first stage, doubled twice (default 16)
  --label-smoothing X  the training loss's label smoothing, 0 to 1 (default 0)
  --crop N          random crops of each training image padded by N (default 0: none)
  --seed S          seed of the weights, batch order and augmentation (default 0)
  --threads N       kernel threads (default: TAPEGRAD_THREADS or every core)
  --out DIR         where the PNGs go (default resnet-out)
  --no-progress     no progress bar
  --distributed     one rank of an MPI job (build with --features mpi; start with
                    mpirun -np N ... --distributed --threads 1); --batch is global
";

/// [`parse_args`] over any list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--data" => o.data = next.value()?,
            "--epochs" => o.epochs = next.value()?,
            "--limit" => o.limit = next.value()?,
            "--test-limit" => o.test_limit = next.value()?,
            "--batch" => o.batch = next.value()?,
            "--lr" => o.lr = next.value()?,
            "--width" => o.width = next.value()?,
            "--label-smoothing" => o.label_smoothing = next.value()?,
            "--crop" => o.crop = next.value()?,
            "--seed" => o.seed = next.value()?,
            "--threads" => o.threads = Some(next.value()?),
            "--out" => o.out = Some(next.value::<String>()?.into()),
            "--no-progress" => o.progress = false,
            "--distributed" => o.distributed = true,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if o.batch == 0 || o.epochs == 0 || o.width == 0 || o.limit == 0 || o.test_limit == 0 {
        return Err(
            "--batch, --epochs, --width, --limit and --test-limit must be at least 1".into(),
        );
    }
    Ok(o)
}

fn parse_args() -> Options {
    args::parse_or_exit("resnet", USAGE, parse)
}

/// Two 3x3 convolutions with batch norm, and the shortcut: identity, or a strided 1x1
/// convolution with batch norm where the shape changes.
struct Block {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl Block {
    fn new(
        store: &mut ParamStore<f32>,
        name: &str,
        inp: usize,
        out: usize,
        stride: usize,
        rng: &mut StdRng,
    ) -> Self {
        let k3 = ConvOptions::new().stride(stride).padding(1);
        let shortcut = (stride != 1 || inp != out).then(|| {
            let down = ConvOptions::new().stride(stride);
            (
                Conv2d::no_bias(store, &format!("{name}.shortcut.0"), inp, out, 1, down, rng),
                BatchNorm2d::new(store, &format!("{name}.shortcut.1"), out),
            )
        });
        Block {
            conv1: Conv2d::no_bias(store, &format!("{name}.conv1"), inp, out, 3, k3, rng),
            bn1: BatchNorm2d::new(store, &format!("{name}.bn1"), out),
            conv2: Conv2d::no_bias(
                store,
                &format!("{name}.conv2"),
                out,
                out,
                3,
                ConvOptions::new().padding(1),
                rng,
            ),
            bn2: BatchNorm2d::new(store, &format!("{name}.bn2"), out),
            shortcut,
        }
    }

    fn forward<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> Var<'t, f32> {
        let h = self.bn1.forward(p, self.conv1.forward(p, x)).relu();
        let h = self.bn2.forward(p, self.conv2.forward(p, h));
        let skip = match &self.shortcut {
            Some((conv, bn)) => bn.forward(p, conv.forward(p, x)),
            None => x,
        };
        (h + skip).relu()
    }
}

/// The network, its parameters named as PyTorch's `state_dict` of the same model.
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    blocks: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    /// A ResNet-8 of `width`, `2 · width` and `4 · width` channels into `store`.
    pub fn new(
        store: &mut ParamStore<f32>,
        width: usize,
        classes: usize,
        rng: &mut StdRng,
    ) -> Self {
        let w = [width, 2 * width, 4 * width];
        ResNet {
            conv1: Conv2d::no_bias(
                store,
                "conv1",
                1,
                w[0],
                3,
                ConvOptions::new().padding(1),
                rng,
            ),
            bn1: BatchNorm2d::new(store, "bn1", w[0]),
            blocks: vec![
                Block::new(store, "layer1", w[0], w[0], 1, rng),
                Block::new(store, "layer2", w[0], w[1], 2, rng),
                Block::new(store, "layer3", w[1], w[2], 2, rng),
            ],
            fc: Linear::new(store, "fc", w[2], classes, rng),
        }
    }

    /// Logits `[N, classes]` of images `[N, 1, H, W]`.
    pub fn forward<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> Var<'t, f32> {
        let mut h = self.bn1.forward(p, self.conv1.forward(p, x)).relu();
        for block in &self.blocks {
            h = block.forward(p, h);
        }
        self.fc.forward(p, h.adaptive_avg_pool2d(1).flatten())
    }
}

/// The images mirrored left to right.
fn mirrored(images: &Tensor<f32>) -> Tensor<f32> {
    let w = images.shape()[3];
    Tensor::from_fn(images.shape().clone(), |i| {
        images.data()[i - i % w + (w - 1 - i % w)]
    })
}

/// Mean cross-entropy and predictions over `test`, each image's logits averaged with its
/// mirror's; each rank evaluates its part, and the figures are the whole set's.
fn evaluate(
    net: &ResNet,
    store: &ParamStore<f32>,
    test: &Dataset<f32>,
    ranks: &Ranks,
) -> (f64, Vec<usize>) {
    let whole = test.len();
    let (offset, test) = ranks.part(test);
    let (mut loss, mut predicted) = (0.0, Vec::with_capacity(test.len()));
    for b in test.batches(500, None) {
        let tape = Tape::inference();
        let p = store.bind(&tape);
        let logits = net.forward(&p, tape.input(b.images.clone()));
        let logits = (logits + net.forward(&p, tape.input(mirrored(&b.images)))) * 0.5;
        loss += logits.cross_entropy(&b.labels).sum().value().item() as f64;
        predicted.extend(logits.argmax(1));
    }
    let (sums, predicted) = ranks.gather(&[loss], &predicted, offset, whole);
    (sums[0] / whole as f64, predicted)
}

/// Trains and evaluates as `o` says, in one process.
pub fn run(o: &Options) -> Result<Summary, Box<dyn Error>> {
    run_on(o, &Ranks::single())
}

/// [`run`] as one of `ranks`; the figures returned are the whole job's.
pub fn run_on(o: &Options, ranks: &Ranks) -> Result<Summary, Box<dyn Error>> {
    if let Some(n) = o.threads {
        tapegrad::threads::set_num_threads(n);
    }
    let (train, test) = load_mnist_dir::<f32>(&o.data)?;
    let (train, test) = (
        train.take(o.limit.min(train.len())),
        test.take(o.test_limit.min(test.len())),
    );
    let (mean, std) = train.pixel_stats();
    let (train, test) = (train.normalized(mean, std), test.normalized(mean, std));
    let names: Vec<String> = FASHION_MNIST_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();

    let mut rng = StdRng::seed_from_u64(o.seed);
    let mut store = ParamStore::new();
    let net = ResNet::new(&mut store, o.width, 10, &mut rng);
    ranks.broadcast(&mut store)?;
    // One process draws batch order and augmentation from one stream. Ranks must all draw
    // the same batch order, and each augments its own part: there the augmentation has a
    // stream per rank.
    let mut rank_rng = StdRng::seed_from_u64(o.seed ^ ((ranks.rank() as u64 + 1) << 32));
    let steps_per_epoch = train.len().div_ceil(o.batch);
    let schedule = OneCycleLr::new(o.lr, o.epochs * steps_per_epoch).pct_start(0.25);
    let mut opt = Sgd::new(o.lr)
        .momentum(0.9)
        .nesterov(true)
        .weight_decay(5e-4);
    let augment = Augment::new().random_crop(o.crop).horizontal_flip(true);

    let bar = match o.progress && ranks.is_root() {
        true => Progress::new((o.epochs * train.len()) as u64, "resnet"),
        false => Progress::hidden((o.epochs * train.len()) as u64, "resnet"),
    };
    let (mut accuracies, mut train_losses, mut test_losses) = (vec![], vec![], vec![]);
    let mut confusion = ConfusionMatrix::new(10);
    let (start, mut train_seconds, mut step) = (Instant::now(), 0.0, 0);
    let mut comm_seconds = 0.0;
    let mut tape = Tape::new();
    for epoch in 1..=o.epochs {
        ranks.take_comm_seconds();
        let t0 = Instant::now();
        let mut sum = 0.0;
        for batch in train.batches_sharded(o.batch, ranks.shard(), Some(&mut rng)) {
            let augment_rng = match ranks.size() {
                1 => &mut rng,
                _ => &mut rank_rng,
            };
            let Batch { images, labels } = augment.apply(&batch, augment_rng);
            opt.set_lr(schedule.lr(step));
            let p = store.bind(&tape);
            let loss = net
                .forward(&p, tape.input(images))
                .try_cross_entropy_smoothed(&labels, o.label_smoothing)?
                .mean();
            let value = loss.value().item() as f64;
            let mut grads = p.grads(&tape.backward(loss));
            ranks.average(&mut grads, labels.len())?;
            tape.clear();
            opt.step(&mut store, &grads);
            sum += value * labels.len() as f64;
            step += 1;
            bar.inc((labels.len() * ranks.size()) as u64);
        }
        train_seconds += t0.elapsed().as_secs_f64();
        comm_seconds += ranks.take_comm_seconds();
        let sum = ranks.sum(&[sum])[0];
        let (loss, predicted) = evaluate(&net, &store, &test, ranks);
        confusion = ConfusionMatrix::new(10);
        confusion.add(&predicted, test.labels());
        let acc = 100.0 * confusion.accuracy();
        bar.set_metrics(loss, acc);
        if ranks.is_root() {
            bar.println(&format!(
                "epoch {epoch:>2}: train loss {:.4}  test loss {loss:.4}  test accuracy {acc:.2}%  ({:.1} s)",
                sum / train.len() as f64,
                t0.elapsed().as_secs_f64()
            ));
        }
        train_losses.push(sum / train.len() as f64);
        test_losses.push(loss);
        accuracies.push(acc);
    }
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    if let (Some(dir), true) = (&o.out, ranks.is_root()) {
        plot_curves(
            dir.join("curves.png"),
            "ResNet-8 on Fashion-MNIST",
            &[
                Series::left("train loss", train_losses.clone()),
                Series::left("test loss", test_losses.clone()),
                Series::right("test acc %", accuracies.clone()),
            ],
        )?;
        plot_confusion(dir.join("confusion.png"), &confusion, &names)?;
    }
    Ok(Summary {
        accuracy: *accuracies.last().expect("at least one epoch"),
        loss: *test_losses.last().expect("at least one epoch"),
        accuracies,
        train_losses,
        confusion,
        seconds,
        images_per_s: (o.epochs * train.len()) as f64 / train_seconds,
        ms_per_step: 1000.0 * train_seconds / step.max(1) as f64,
        allreduce_share: comm_seconds / train_seconds,
    })
}

fn main() {
    let o = parse_args();
    let ranks = Ranks::new(o.distributed).unwrap_or_else(|e| {
        eprintln!("resnet: {e}");
        std::process::exit(2)
    });
    match run_on(&o, &ranks) {
        Ok(s) if ranks.is_root() => {
            if ranks.size() > 1 {
                eprintln!(
                    "{} ranks: {:.1} ms per step, {:.0}% of it averaging gradients",
                    ranks.size(),
                    s.ms_per_step,
                    100.0 * s.allreduce_share
                );
            }
            println!(
                "result: epochs={} train={} test={} accuracy={:.2}% loss={:.4} seconds={:.1} images_per_s={:.0}",
                o.epochs,
                o.limit.min(60_000),
                s.confusion.total(),
                s.accuracy,
                s.loss,
                s.seconds,
                s.images_per_s
            );
        }
        Ok(_) => {}
        Err(e) => ranks.fail("resnet", e),
    }
}
