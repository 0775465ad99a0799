//! Circles against squares: the crate's main job, end to end on data it makes itself.
//!
//! ```sh
//! cargo run --release --example shapes                # circles and squares
//! cargo run --release --example shapes -- --classes 3 # and triangles
//! ```
//!
//! 1. Draws 500 training and 200 test images (28x28 white outlines on black, random size,
//!    position and stroke) with `tapegrad::data::write_shapes` and writes them as grey PNGs
//!    to `shapes-out/train/<class>/` and `shapes-out/test/<class>/`; the test set comes from
//!    another seed, so it holds images the network never saw.
//! 2. Loads both folders back with `load_png_folder`, so that what is trained on is what is
//!    on disk.
//! 3. Trains the tutorial network: one 3x3 convolution filter (padding 1, with bias), ReLU,
//!    2x2 max-pool, flatten, a linear layer 196 -> 1, sigmoid and binary cross-entropy
//!    (with 3 classes: linear 196 -> 3 and softmax cross-entropy), with Adam (learning
//!    rate 0.03, L2 weight decay 0.01, batches of 8, 30 epochs).
//! 4. Writes to `shapes-out/`: `maps_before.png` and `maps_after.png`, the input, conv,
//!    relu and pool maps of a few test images of each class (one column per image, classes
//!    in label order, each row on one shared grey scale) before and after training, and
//!    `curves.png`, the loss and accuracy of each epoch on both sets.
//!
//! It prints one line per epoch and, last,
//! `result: accuracy=..% loss=.. train=500 test=200 epochs=.. seconds=.. out=shapes-out`,
//! the accuracy and mean loss on the test set and the wall time of the whole run.
//!
//! Flags (`--help`): `--train N --test N --epochs E --lr LR --weight-decay W --batch B
//! --classes 2|3 --seed S --out DIR --threads N`. The run replaces the PNGs of earlier runs in
//! `DIR/train` and `DIR/test` (only files named like the ones it writes).

#[path = "common/args.rs"]
mod args;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tapegrad::data::{Dataset, PngFolderOptions, ShapeKind, load_png_folder, write_shapes};
use tapegrad::nn::{Adam, Bound, Init, Optimizer, ParamId, ParamStore};
use tapegrad::prelude::*;
use tapegrad::viz::{GridOptions, Progress, Scale, Series, plot_curves, save_feature_maps_with};

/// What to run; `Default` is the README's command.
#[derive(Clone, Debug)]
pub struct Options {
    /// Training images.
    pub train: usize,
    /// Test images, drawn from another seed.
    pub test: usize,
    /// Passes over the training images.
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's L2 penalty (PyTorch's `weight_decay`): it keeps the linear layer from
    /// memorising where the training shapes happen to lie.
    pub weight_decay: f64,
    /// Images per optimiser step.
    pub batch: usize,
    /// 2 (circle, square) or 3 (and triangle).
    pub classes: usize,
    /// Seeds the training images, the initial weights and the batch order; the test images
    /// use `seed + 1`.
    pub seed: u64,
    /// Where the PNGs go.
    pub out: PathBuf,
    /// Worker threads of the kernels; 0 keeps the default (`TAPEGRAD_THREADS` or all cores).
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            train: 500,
            test: 200,
            epochs: 30,
            lr: 0.03,
            weight_decay: 0.01,
            batch: 8,
            classes: 2,
            seed: 0,
            out: PathBuf::from("shapes-out"),
            threads: 0,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Test accuracy after the last epoch, a fraction in 0..=1.
    pub accuracy: f64,
    /// Mean test loss after the last epoch.
    pub loss: f64,
    /// Training accuracy over the last epoch, a fraction in 0..=1.
    pub train_accuracy: f64,
    /// Test accuracy after each epoch.
    pub test_accuracy_per_epoch: Vec<f64>,
    /// Wall time of the whole run (writing, loading, training, pictures), in seconds.
    pub seconds: f64,
    /// The pictures written: feature maps before and after training, and the curves.
    pub pictures: Vec<PathBuf>,
}

const USAGE: &str = "\
usage: cargo run --release --example shapes -- [flags]
  --train N         training images (default 500)
  --test N          test images, drawn from another seed (default 200)
  --epochs E        passes over the training images (default 30)
  --lr LR           Adam's learning rate (default 0.03)
  --weight-decay W  Adam's L2 penalty (default 0.01)
  --batch B         images per step (default 8)
  --classes C       2: circle, square; 3: and triangle (default 2)
  --seed S          seed of data, weights and batch order (default 0)
  --out DIR         where the PNGs go (default shapes-out)
  --threads N       kernel threads, 0 for the default (default 0)
";

/// The flags of the command line; prints usage and exits on `--help`, or on a bad flag
/// with a message naming it.
fn parse_args() -> Options {
    args::parse_or_exit("shapes", USAGE, parse)
}

/// [`parse_args`] over any list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--train" => o.train = next.value()?,
            "--test" => o.test = next.value()?,
            "--epochs" => o.epochs = next.value()?,
            "--lr" => o.lr = next.value()?,
            "--weight-decay" => o.weight_decay = next.value()?,
            "--batch" => o.batch = next.value()?,
            "--classes" => o.classes = next.value()?,
            "--seed" => o.seed = next.value()?,
            "--out" => o.out = next.value()?,
            "--threads" => o.threads = next.value()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(o)
}

/// Refuses options the run cannot use, naming the flag.
fn check(o: &Options) -> Result<(), String> {
    if o.classes != 2 && o.classes != 3 {
        return Err(format!("--classes must be 2 or 3, not {}", o.classes));
    }
    if o.train < o.classes || o.test < o.classes {
        return Err(format!(
            "--train and --test need at least one image per class ({}), got {} and {}",
            o.classes, o.train, o.test
        ));
    }
    if o.epochs == 0 || o.batch == 0 {
        return Err("--epochs and --batch must be at least 1".into());
    }
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return Err(format!("--lr must be a positive number, not {}", o.lr));
    }
    if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
        return Err(format!(
            "--weight-decay must be 0 or more, not {}",
            o.weight_decay
        ));
    }
    Ok(())
}

/// The tutorial network. With 2 classes it outputs the probability of "square", `[N, 1]`;
/// with 3, one logit per class, `[N, 3]`.
pub struct Net {
    conv_w: ParamId,
    conv_b: ParamId,
    fc_w: ParamId,
    fc_b: ParamId,
    classes: usize,
}

impl Net {
    fn new(store: &mut ParamStore<f32>, classes: usize, rng: &mut StdRng) -> Self {
        // A sigmoid needs one output; a softmax needs one per class.
        let outputs = if classes == 2 { 1 } else { classes };
        Net {
            conv_w: store.add("conv.weight", [1, 1, 3, 3], Init::HeUniform, rng),
            // A small positive bias keeps the single filter's ReLU alive at the start.
            conv_b: store.add("conv.bias", [1], Init::Constant(0.1), rng),
            // All positions start equal: what the layer learns about where shapes lie comes
            // from the data alone.
            fc_w: store.add("fc.weight", [196, outputs], Init::Zeros, rng),
            fc_b: store.add("fc.bias", [outputs], Init::Zeros, rng),
            classes,
        }
    }

    /// The convolutional part, `[N, 1, 28, 28]` to the conv, relu and pool maps (kept apart
    /// for the feature-map pictures).
    fn features<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> [Var<'t, f32>; 3] {
        let conv = x.conv2d_bias(
            p[self.conv_w],
            p[self.conv_b],
            ConvOptions::new().padding(1),
        );
        let relu = conv.relu();
        let pool = relu.max_pool2d(2); // [N, 1, 14, 14]
        [conv, relu, pool]
    }

    fn forward<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> Var<'t, f32> {
        let [_, _, pool] = self.features(p, x);
        let z = pool.flatten().matmul(p[self.fc_w]) + p[self.fc_b];
        if self.classes == 2 { z.sigmoid() } else { z }
    }

    /// Mean loss of a batch: binary cross-entropy of the probability of class 1, or softmax
    /// cross-entropy of the logits.
    fn loss<'t>(&self, out: Var<'t, f32>, labels: &[usize]) -> Var<'t, f32> {
        if self.classes == 2 {
            let y = labels.iter().map(|&l| l as f32).collect();
            out.bce(&Tensor::from_vec(y, [labels.len(), 1])).mean()
        } else {
            out.cross_entropy(labels).mean()
        }
    }

    /// How many of the outputs name the right class.
    fn correct(&self, out: &Tensor<f32>, labels: &[usize]) -> usize {
        let predicted: Vec<usize> = if self.classes == 2 {
            out.data().iter().map(|&p| usize::from(p > 0.5)).collect()
        } else {
            out.argmax(1)
        };
        predicted
            .iter()
            .zip(labels)
            .filter(|&(p, l)| p == l)
            .count()
    }
}

/// Mean loss and accuracy on a whole data set, on an inference tape.
fn evaluate(net: &Net, store: &ParamStore<f32>, ds: &Dataset<f32>) -> (f64, f64) {
    let (mut loss, mut correct) = (0.0, 0);
    for b in ds.batches(256, None) {
        let tape = Tape::inference();
        let out = net.forward(&store.bind(&tape), tape.input(b.images));
        loss += f64::from(net.loss(out, &b.labels).value().item()) * b.labels.len() as f64;
        correct += net.correct(&out.value(), &b.labels);
    }
    (loss / ds.len() as f64, correct as f64 / ds.len() as f64)
}

/// Writes the input, conv, relu and pool maps of `images` (`[k, 1, 28, 28]`), one column
/// per image, headed by its class name.
fn save_maps(
    path: &Path,
    net: &Net,
    store: &ParamStore<f32>,
    (images, names): &(Tensor<f32>, Vec<String>),
) -> Result<(), Box<dyn Error>> {
    let tape = Tape::inference();
    let maps = net.features(&store.bind(&tape), tape.input(images.clone()));
    // Each [k, 1, H, W] becomes [k, H, W]: the k images side by side as tiles of one row.
    let tiles = |t: Tensor<f32>| {
        let d = t.shape().dims().to_vec();
        t.reshape([d[0], d[2], d[3]])
    };
    let [x, conv, relu, pool] = [
        images.clone(),
        maps[0].value(),
        maps[1].value(),
        maps[2].value(),
    ]
    .map(tiles);
    let opts = GridOptions {
        max_cols: x.shape().dims()[0],
        // One scale per row, so that a strong response reads brighter than a weak one.
        scale: Scale::Shared,
        // The row labels say what each row is; a shape line would count images as maps.
        show_shape: false,
        column_labels: names.clone(),
        ..GridOptions::default()
    };
    let rows = [
        ("input 28x28", &x),
        ("conv 3x3", &conv),
        ("relu", &relu),
        ("max-pool 14x14", &pool),
    ];
    save_feature_maps_with(path, &rows, &opts)?;
    Ok(())
}

/// The first `per_class` images of each class, in class order, with their class names.
fn showcase(ds: &Dataset<f32>, per_class: usize) -> (Tensor<f32>, Vec<String>) {
    let mut picked = Vec::new();
    for c in 0..ds.num_classes() {
        let of_c = (0..ds.len()).filter(|&i| ds.labels()[i] == c);
        picked.extend(of_c.take(per_class));
    }
    let names = picked
        .iter()
        .map(|&i| ds.class_names()[ds.labels()[i]].clone())
        .collect();
    (ds.subset(&picked).images().clone(), names)
}

/// Deletes the PNGs an earlier run wrote to `dir` (`<class>/<digits>.png`) and the class
/// folders left empty, so that a smaller run does not load a larger run's images. Other
/// files stay, and `load_png_folder` then reports them.
fn clear_old_images(dir: &Path) -> std::io::Result<()> {
    for kind in ShapeKind::ALL {
        let class_dir = dir.join(kind.name());
        let Ok(entries) = std::fs::read_dir(&class_dir) else {
            continue;
        };
        for e in entries {
            let path = e?.path();
            let ours = path.extension().is_some_and(|x| x == "png")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            if ours {
                std::fs::remove_file(&path)?;
            }
        }
        let _ = std::fs::remove_dir(&class_dir); // only succeeds when empty
    }
    Ok(())
}

/// Draws `n` images from `seed`, writes them under `dir`, and loads them back.
fn write_and_load(
    dir: &Path,
    n: usize,
    classes: usize,
    seed: u64,
) -> Result<Dataset<f32>, Box<dyn Error>> {
    clear_old_images(dir)
        .map_err(|e| format!("{}: cannot clear old images: {e}", dir.display()))?;
    write_shapes(dir, n, classes, seed)?;
    let ds = load_png_folder::<f32>(dir, PngFolderOptions::default())?;
    if ds.len() != n || ds.num_classes() != classes {
        return Err(format!(
            "{}: loaded {} images of {} classes, expected {n} of {classes}",
            dir.display(),
            ds.len(),
            ds.num_classes()
        )
        .into());
    }
    Ok(ds)
}

/// The whole run: data, training, pictures, test accuracy.
pub fn run(opts: &Options) -> Result<Summary, Box<dyn Error>> {
    let start = Instant::now();
    check(opts)?;
    if opts.threads > 0 {
        tapegrad::threads::set_num_threads(opts.threads);
    }

    let train = write_and_load(&opts.out.join("train"), opts.train, opts.classes, opts.seed)?;
    let test = write_and_load(
        &opts.out.join("test"),
        opts.test,
        opts.classes,
        opts.seed.wrapping_add(1),
    )?;
    println!(
        "wrote and loaded {} training and {} test PNGs ({}) under {}",
        train.len(),
        test.len(),
        train.class_names().join(", "),
        opts.out.display()
    );

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut store = ParamStore::new();
    let net = Net::new(&mut store, opts.classes, &mut rng);
    let mut opt = Adam::new(opts.lr).weight_decay(opts.weight_decay);

    // Three images of each class for 2 classes, two of each for 3: six columns either way.
    let shown = showcase(&test, 6 / opts.classes);
    let before = opts.out.join("maps_before.png");
    save_maps(&before, &net, &store, &shown)?;

    let (mut train_loss, mut train_acc) = (Vec::new(), Vec::new());
    let (mut test_loss, mut test_acc) = (Vec::new(), Vec::new());
    let bar = Progress::new((opts.epochs * train.len()) as u64, "epoch 1");
    let mut tape = Tape::new();
    for epoch in 1..=opts.epochs {
        bar.set_label(&format!("epoch {epoch}/{}", opts.epochs));
        let (mut sum_loss, mut correct) = (0.0, 0);
        for b in train.batches(opts.batch, Some(&mut rng)) {
            let p = store.bind(&tape);
            let out = net.forward(&p, tape.input(b.images));
            let loss = net.loss(out, &b.labels);
            sum_loss += f64::from(loss.value().item()) * b.labels.len() as f64;
            correct += net.correct(&out.value(), &b.labels);
            let grads = p.grads(&tape.backward(loss));
            tape.clear(); // before the step, so that it updates the weights in place
            opt.step(&mut store, &grads);
            bar.inc(b.labels.len() as u64);
        }
        let n = train.len() as f64;
        train_loss.push(sum_loss / n);
        train_acc.push(correct as f64 / n);
        let (l, a) = evaluate(&net, &store, &test);
        test_loss.push(l);
        test_acc.push(a);
        bar.set_metrics(sum_loss / n, correct as f64 / n);
        bar.println(&format!(
            "epoch {epoch:>2}: train loss {:.4} acc {:6.2}%   test loss {l:.4} acc {:6.2}%",
            sum_loss / n,
            100.0 * correct as f64 / n,
            100.0 * a
        ));
    }
    bar.finish();

    let after = opts.out.join("maps_after.png");
    save_maps(&after, &net, &store, &shown)?;
    let curves = opts.out.join("curves.png");
    let percent = |v: &[f64]| v.iter().map(|a| 100.0 * a).collect();
    plot_curves(
        &curves,
        &format!("shapes, {} classes", opts.classes),
        &[
            Series::left("train loss", train_loss),
            Series::left("test loss", test_loss.clone()),
            Series::right("train acc %", percent(&train_acc)),
            Series::right("test acc %", percent(&test_acc)),
        ],
    )?;
    let pictures = vec![before, after, curves];
    for p in &pictures {
        println!("wrote {}", p.display());
    }
    Ok(Summary {
        accuracy: *test_acc.last().unwrap_or(&0.0),
        loss: *test_loss.last().unwrap_or(&f64::NAN),
        train_accuracy: *train_acc.last().unwrap_or(&0.0),
        test_accuracy_per_epoch: test_acc,
        seconds: start.elapsed().as_secs_f64(),
        pictures,
    })
}

fn main() {
    let opts = parse_args();
    match run(&opts) {
        Ok(s) => println!(
            "result: accuracy={:.2}% loss={:.4} train={} test={} epochs={} seconds={:.2} out={}",
            100.0 * s.accuracy,
            s.loss,
            opts.train,
            opts.test,
            opts.epochs,
            s.seconds,
            opts.out.display()
        ),
        Err(e) => {
            eprintln!("shapes: {e}");
            std::process::exit(1)
        }
    }
}
