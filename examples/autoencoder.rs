//! A convolutional autoencoder on Fashion-MNIST: strided convolutions down to a 32 × 7 × 7
//! code, transposed convolutions back up, trained to reproduce its input.
//!
//! ```sh
//! cargo run --release --example autoencoder
//! ```
//!
//! Encoder: conv 3x3 stride 2 pad 1, 1→16 (28→14), relu; conv 3x3 stride 2 pad 1, 16→32
//! (14→7), relu. Decoder: transposed conv 3x3 stride 2 pad 1 output-padding 1, 32→16
//! (7→14), relu; the same 16→1 (14→28), sigmoid. PyTorch's default initialisation (the
//! layers'). Mean squared error against the input (pixels in 0..1), Adam lr 2e-3, batch
//! 128. `scripts/torch_recipes.py --recipe autoencoder` is the same recipe in PyTorch.
//!
//! Prints a line per epoch, writes 8 test images above their reconstructions as PNG to
//! `--out` (default `autoencoder-out/reconstructions.png`), and ends with
//! `result: epochs=.. train=N test=N mse=.. seconds=..`, `mse` the mean squared error per
//! pixel over the test images. Flags: `--help`.

#[path = "common/args.rs"]
mod args;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;
use tapegrad::data::{Dataset, load_mnist_dir};
use tapegrad::nn::{Adam, Bound, Conv2d, ConvTranspose2d, Optimizer, ParamStore};
use tapegrad::prelude::*;
use tapegrad::viz::{GridOptions, Scale, save_feature_maps_with};

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
    /// Images per batch.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seeds the weights and the batch order.
    pub seed: u64,
    /// Kernel threads (default: `TAPEGRAD_THREADS` or every core).
    pub threads: Option<usize>,
    /// Where the PNG goes; `None` writes none.
    pub out: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: "/usr/share/datasets/fashion-mnist".into(),
            epochs: 5,
            limit: 60_000,
            test_limit: 10_000,
            batch: 128,
            lr: 2e-3,
            seed: 0,
            threads: None,
            out: Some("autoencoder-out".into()),
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Mean squared error per pixel over the test images after each epoch.
    pub test_mse: Vec<f64>,
    /// Wall time of training and the per-epoch evaluations.
    pub seconds: f64,
}

const USAGE: &str = "\
usage: cargo run --release --example autoencoder -- [flags]
  --data DIR        folder of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
  --epochs N        passes over the training images (default 5)
  --limit N         training images used (default 60000)
  --test-limit N    test images used (default 10000)
  --batch N         images per batch (default 128)
  --lr X            Adam's learning rate (default 0.002)
  --seed S          seed of the weights and batch order (default 0)
  --threads N       kernel threads (default: TAPEGRAD_THREADS or every core)
  --out DIR         where the PNG goes (default autoencoder-out)
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
            "--seed" => o.seed = next.value()?,
            "--threads" => o.threads = Some(next.value()?),
            "--out" => o.out = Some(next.value::<String>()?.into()),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if o.batch == 0 || o.epochs == 0 || o.limit == 0 || o.test_limit == 0 {
        return Err("--batch, --epochs, --limit and --test-limit must be at least 1".into());
    }
    Ok(o)
}

fn parse_args() -> Options {
    args::parse_or_exit("autoencoder", USAGE, parse)
}

/// The network, named as PyTorch's `state_dict` of the same model.
pub struct Autoencoder {
    enc1: Conv2d,
    enc2: Conv2d,
    dec1: ConvTranspose2d,
    dec2: ConvTranspose2d,
}

impl Autoencoder {
    /// The layers above, into `store`.
    pub fn new(store: &mut ParamStore<f32>, rng: &mut StdRng) -> Self {
        let down = ConvOptions::new().stride(2).padding(1);
        let up = ConvTransposeOptions::new()
            .stride(2)
            .padding(1)
            .output_padding(1);
        Autoencoder {
            enc1: Conv2d::new(store, "enc1", 1, 16, 3, down, rng),
            enc2: Conv2d::new(store, "enc2", 16, 32, 3, down, rng),
            dec1: ConvTranspose2d::new(store, "dec1", 32, 16, 3, up, rng),
            dec2: ConvTranspose2d::new(store, "dec2", 16, 1, 3, up, rng),
        }
    }

    /// Reconstructions `[N, 1, 28, 28]` of images `[N, 1, 28, 28]`.
    pub fn forward<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> Var<'t, f32> {
        let code = self.enc2.forward(p, self.enc1.forward(p, x).relu()).relu();
        let h = self.dec1.forward(p, code).relu();
        self.dec2.forward(p, h).sigmoid()
    }
}

/// Mean squared error per pixel over `test`.
fn evaluate(net: &Autoencoder, store: &ParamStore<f32>, test: &Dataset<f32>) -> f64 {
    let mut sum = 0.0;
    for b in test.batches(500, None) {
        let tape = Tape::inference();
        let y = net.forward(&store.bind(&tape), tape.input(b.images.clone()));
        sum += y.mse_loss(&b.images).sum().value().item() as f64;
    }
    sum / test.images().numel() as f64
}

/// Trains and evaluates as `o` says.
pub fn run(o: &Options) -> Result<Summary, Box<dyn Error>> {
    if let Some(n) = o.threads {
        tapegrad::threads::set_num_threads(n);
    }
    let (train, test) = load_mnist_dir::<f32>(&o.data)?;
    let (train, test) = (train.take(o.limit), test.take(o.test_limit));
    let mut rng = StdRng::seed_from_u64(o.seed);
    let mut store = ParamStore::new();
    let net = Autoencoder::new(&mut store, &mut rng);
    let mut opt = Adam::new(o.lr);
    let (start, mut test_mse) = (Instant::now(), Vec::new());
    let mut tape = Tape::new();
    for epoch in 1..=o.epochs {
        let mut sum = 0.0;
        for b in train.batches(o.batch, Some(&mut rng)) {
            let p = store.bind(&tape);
            let loss = net
                .forward(&p, tape.input(b.images.clone()))
                .mse_loss(&b.images)
                .mean();
            sum += loss.value().item() as f64 * b.len() as f64;
            let grads = p.grads(&tape.backward(loss));
            tape.clear();
            opt.step(&mut store, &grads);
        }
        test_mse.push(evaluate(&net, &store, &test));
        println!(
            "epoch {epoch}: train mse {:.5}  test mse {:.5}  ({:.1} s)",
            sum / train.len() as f64,
            test_mse[epoch - 1],
            start.elapsed().as_secs_f64()
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(dir) = &o.out {
        let shown = test.take(8);
        let tape = Tape::inference();
        let y = net.forward(&store.bind(&tape), tape.input(shown.images().clone()));
        let flat = |t: &Tensor<f32>| t.reshape([t.shape()[0], 28, 28]);
        let opts = GridOptions {
            scale: Scale::Fixed(0.0, 1.0),
            show_shape: false,
            ..GridOptions::default()
        };
        let rows = [
            ("test image", &flat(shown.images())),
            ("reconstruction", &flat(&y.value())),
        ];
        save_feature_maps_with(dir.join("reconstructions.png"), &rows, &opts)?;
    }
    Ok(Summary { test_mse, seconds })
}

fn main() {
    let o = parse_args();
    match run(&o) {
        Ok(s) => println!(
            "result: epochs={} train={} test={} mse={:.5} seconds={:.1}",
            o.epochs,
            o.limit.min(60_000),
            o.test_limit.min(10_000),
            s.test_mse.last().expect("at least one epoch"),
            s.seconds
        ),
        Err(e) => {
            eprintln!("autoencoder: {e}");
            std::process::exit(1);
        }
    }
}
