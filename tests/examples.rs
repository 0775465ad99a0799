//! The examples' cores, run at a reduced size with fixed seeds, against bounds they meet
//! with a clear margin. Each example is compiled here as a module, so these tests run the
//! very code `cargo run --example NAME` runs. The shapes example needs the `data`, `viz`
//! and `progress` features; the others run without any.

// Each example includes `examples/common/args.rs`, so it is loaded once per example here.
#![allow(clippy::duplicate_mod)]

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[path = "../examples/shapes.rs"]
#[allow(dead_code)]
mod shapes;

#[path = "../examples/conv_regression.rs"]
#[allow(dead_code)]
mod conv_regression;

#[path = "../examples/gradcheck.rs"]
#[allow(dead_code)]
mod gradcheck;

#[path = "../examples/custom_op.rs"]
#[allow(dead_code)]
mod custom_op;

#[path = "../examples/pinn.rs"]
#[allow(dead_code)]
mod pinn;

#[cfg(feature = "data")]
#[path = "../examples/gradient_penalty.rs"]
#[allow(dead_code)]
mod gradient_penalty;

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[path = "../examples/resnet.rs"]
#[allow(dead_code)]
mod resnet;

#[cfg(all(feature = "data", feature = "viz"))]
#[path = "../examples/autoencoder.rs"]
#[allow(dead_code)]
mod autoencoder;

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
mod common;

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
use common::TempDir;
#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
use std::path::Path;

/// A reduced shapes run: one kernel thread, so that the figures do not depend on the
/// machine's core count.
#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
fn shapes_options(
    out: &Path,
    classes: usize,
    train: usize,
    test: usize,
    epochs: usize,
) -> shapes::Options {
    shapes::Options {
        train,
        test,
        epochs,
        classes,
        seed: 0,
        out: out.to_path_buf(),
        threads: 1,
        ..shapes::Options::default()
    }
}

/// PNG files directly inside `dir/<class>/`, per class folder.
#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
fn png_counts(dir: &Path) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| {
            let n = std::fs::read_dir(&p)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "png")
                })
                .count();
            (p.file_name().unwrap().to_string_lossy().into_owned(), n)
        })
        .collect();
    counts.sort();
    counts
}

/// The data PNGs are on disk, and the three pictures exist, decode, and changed with
/// training.
#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
fn check_outputs(s: &shapes::Summary, o: &shapes::Options) {
    let classes = ["circle", "square", "triangle"];
    for (part, n) in [("train", o.train), ("test", o.test)] {
        let counts = png_counts(&o.out.join(part));
        let names: Vec<&str> = counts.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, &classes[..o.classes], "{part}");
        assert_eq!(
            counts.iter().map(|(_, k)| k).sum::<usize>(),
            n,
            "{part}: {counts:?}"
        );
    }
    let names: Vec<_> = s
        .pictures
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["maps_before.png", "maps_after.png", "curves.png"]);
    let decoded: Vec<image::DynamicImage> = s
        .pictures
        .iter()
        .map(|p| {
            assert!(
                p.starts_with(&o.out),
                "{} is outside the output folder",
                p.display()
            );
            image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect();
    let (before, after, curves) = (&decoded[0], &decoded[1], &decoded[2]);
    assert_eq!((curves.width(), curves.height()), (800, 500));
    // Four rows (input, conv, relu, pool) of six tiles: wider than tall, and large enough.
    assert_eq!(
        (before.width(), before.height()),
        (after.width(), after.height())
    );
    assert!(
        before.width() > before.height() && before.height() > 4 * 28,
        "{}x{}",
        before.width(),
        before.height()
    );
    assert_ne!(
        before.as_bytes(),
        after.as_bytes(),
        "training left the feature maps unchanged"
    );
}

/// A shapes run of `train` images for `epochs` epochs, into a temporary folder: its outputs
/// are checked, its test accuracy must reach `min_accuracy`.
#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
fn shapes_case(classes: usize, train: usize, epochs: usize, min_accuracy: f64) -> shapes::Summary {
    let dir = TempDir::new(&format!("examples-shapes{classes}"));
    let o = shapes_options(&dir.0, classes, train, train / 2, epochs);
    let s = shapes::run(&o).unwrap();
    eprintln!("{classes} classes: {s:?}");
    assert!(
        s.accuracy >= min_accuracy,
        "{classes} classes: test accuracy {:.2}% < {:.2}%",
        100.0 * s.accuracy,
        100.0 * min_accuracy
    );
    assert_eq!(s.test_accuracy_per_epoch.len(), epochs);
    check_outputs(&s, &o);
    s
}

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[test]
fn shapes_two_classes() {
    // Measured (seed 0, 1 thread): 99.00%, test loss 0.097. Chance is 50%.
    let s = shapes_case(2, 200, 10, 0.85);
    assert!(s.loss < 0.4, "test loss {}", s.loss);
}

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[test]
fn shapes_three_classes() {
    // Measured (seed 0, 1 thread): 80.67%. Chance is 33%.
    shapes_case(3, 300, 20, 0.60);
}

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[test]
fn shapes_rerun_replaces_earlier_images() {
    let dir = TempDir::new("examples-shapes-rerun");
    shapes::run(&shapes_options(&dir.0, 3, 30, 9, 1)).unwrap();
    // Fewer images and no triangles: the earlier files must not be loaded again.
    let o = shapes_options(&dir.0, 2, 20, 6, 1);
    let s = shapes::run(&o).unwrap();
    check_outputs(&s, &o);
}

#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[test]
fn shapes_bad_options_name_the_flag() {
    let args = |a: &[&str]| shapes::parse(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--epochs", "3"]).unwrap().epochs, 3);
    assert_eq!(args(&["--bogus"]).unwrap_err(), "unknown flag \"--bogus\"");
    assert_eq!(
        args(&["--lr", "fast"]).unwrap_err(),
        "--lr: \"fast\" is not a valid value"
    );
    assert_eq!(args(&["--train"]).unwrap_err(), "--train needs a value");
    let dir = TempDir::new("examples-shapes-bad");
    let e = shapes::run(&shapes_options(&dir.0, 4, 20, 6, 1)).unwrap_err();
    assert_eq!(e.to_string(), "--classes must be 2 or 3, not 4");
}

#[test]
fn conv_regression_finds_the_true_kernel() {
    // The tutorial is already tiny: its full 1000 epochs take a fraction of a second.
    let s = conv_regression::run(&conv_regression::Options::default()).unwrap();
    // Measured: loss 3.6e2 -> 4.2e-7, kernel error 1.7e-4 (the start is far from the truth).
    assert!(s.initial_kernel_error > 0.5, "{}", s.initial_kernel_error);
    assert!(
        s.loss < s.initial_loss * 1e-6,
        "loss {} from {}",
        s.loss,
        s.initial_loss
    );
    assert!(s.kernel_error < 0.01, "kernel error {}", s.kernel_error);
}

#[test]
fn conv_regression_loss_falls_steadily() {
    // A tenth of the epochs already cuts the loss by over 100x; the kernel is on its way.
    let opts = conv_regression::Options {
        epochs: 100,
        ..Default::default()
    };
    let s = conv_regression::run(&opts).unwrap();
    // Measured: 3.6e2 -> 9.1e-1.
    assert!(
        s.loss < s.initial_loss * 1e-2,
        "loss {} from {}",
        s.loss,
        s.initial_loss
    );
    assert!(
        s.kernel_error < s.initial_kernel_error,
        "{} vs {}",
        s.kernel_error,
        s.initial_kernel_error
    );
}

#[test]
fn gradcheck_every_op_passes() {
    let s = gradcheck::run(&gradcheck::Options::default()).unwrap();
    for r in &s.ops {
        assert!(r.passed, "{}: {:?}", r.name, r.failure);
    }
    assert!(
        s.network_passed,
        "whole network: rel err {}",
        s.network_rel_err
    );
    let names: Vec<&str> = s.ops.iter().map(|r| r.name).collect();
    for op in [
        "conv2d_bias",
        "conv2d",
        "max_pool2d",
        "avg_pool2d",
        "relu",
        "tanh",
        "sigmoid",
        "flatten",
        "matmul",
        "add",
        "softmax",
        "log_softmax",
        "cross_entropy",
        "mse_loss",
        "bce",
        "dropout",
    ] {
        assert!(names.contains(&op), "{op} is not checked: {names:?}");
    }
    // Measured: 27 ops, worst relative error 5.2e-5 (tanh), against a tolerance of 1e-3.
    assert!(s.worst_rel_err() < 1e-3, "{}", s.worst_rel_err());
}

#[test]
fn custom_op_passes_gradcheck() {
    let s = custom_op::run(&custom_op::Options::default()).unwrap();
    assert_eq!(s.passed, s.swish_configs + s.conv1d_configs);
    assert!((s.swish_configs, s.conv1d_configs) >= (6, 5), "{s:?}");
    // Measured (seed 0): swish 4.0e-7, conv1d 1.7e-7.
    assert!(s.swish_max_rel_err < 1e-5, "{}", s.swish_max_rel_err);
    assert!(s.conv1d_max_rel_err < 1e-5, "{}", s.conv1d_max_rel_err);
    // The error points at the example's own call, not inside the op.
    assert!(
        s.error_message.starts_with(
            "conv1d: shapes [2, 3, 8] and [4, 2, 3] are incompatible: the input has 3 \
             channels but the weight expects 2 (called at "
        ),
        "{}",
        s.error_message
    );
    assert!(
        s.error_message.contains("examples/custom_op.rs:"),
        "{}",
        s.error_message
    );
}

#[test]
fn custom_op_bad_flag_is_named() {
    let args = |a: &[&str]| custom_op::parse(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--seed", "3"]).unwrap().seed, 3);
    assert_eq!(args(&["--bogus"]).unwrap_err(), "unknown flag \"--bogus\"");
}

#[test]
fn pinn_solves_the_poisson_problem_from_its_residual() {
    let o = pinn::Options {
        steps: 1000,
        ..Default::default()
    };
    let s = pinn::run(&o).unwrap();
    // Measured (seed 0, 1000 steps): loss 48.8 -> 3.5e-3; the full recipe (3000 steps)
    // reaches a max error of 8.5e-5.
    assert!(s.loss < s.initial_loss * 1e-3, "{s:?}");
    assert!(s.max_error < 0.05 && s.rel_l2 < 0.05, "{s:?}");
}

#[test]
fn pinn_bad_flag_is_named() {
    let args = |a: &[&str]| pinn::parse(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&["--steps", "7"]).unwrap().steps, 7);
    assert!(args(&["--lr", "-1"]).unwrap_err().starts_with("--lr"));
}

/// Fashion-MNIST from the Debian package (CI installs it), a short run: the penalty pulls
/// the critic's gradient norm at the mixed points towards 1 and the critic tells real
/// images from generated ones.
#[cfg(feature = "data")]
#[test]
fn gradient_penalty_trains_a_critic_through_its_own_gradient() {
    let o = gradient_penalty::Options {
        steps: 6,
        limit: 1024,
        ..Default::default()
    };
    let s = gradient_penalty::run(&o).unwrap();
    assert_eq!(s.critic_steps, 30);
    assert!(s.w_distance > 0.0 && s.w_distance.is_finite(), "{s:?}");
    assert!(s.grad_norm.is_finite() && s.grad_norm > 0.0, "{s:?}");
}

/// Three short epochs of the residual network on real Fashion-MNIST images: it learns (well
/// above the 10% of chance), its flags parse, and it draws its curves and confusion matrix.
#[cfg(all(feature = "data", feature = "viz", feature = "progress"))]
#[test]
fn resnet_learns_fashion_mnist_and_draws_its_pictures() {
    let dir = TempDir::new("resnet");
    let flags = "--epochs 3 --limit 4096 --test-limit 500 --width 8 --lr 0.05 --crop 1 --threads 2";
    let mut o = resnet::parse(flags.split(' ').map(String::from)).unwrap();
    o.out = Some(dir.0.clone());
    o.progress = false;
    let s = resnet::run(&o).unwrap();
    eprintln!("resnet, 4096 images, 3 epochs: {:?}", s.accuracies);
    assert!(s.accuracy > 60.0, "{s:?}");
    assert_eq!(s.confusion.total(), 500);
    assert!(s.train_losses[2] < s.train_losses[0], "{s:?}");
    for png in ["curves.png", "confusion.png"] {
        assert!(dir.0.join(png).metadata().unwrap().len() > 1000, "{png}");
    }
    assert!(resnet::parse(["--width".to_string(), "0".to_string()]).is_err());
}

/// A short autoencoder run: the reconstruction error falls well below that of the best
/// constant image, and the picture of reconstructions is written.
#[cfg(all(feature = "data", feature = "viz"))]
#[test]
fn autoencoder_reconstructs_fashion_mnist() {
    let dir = std::env::temp_dir().join(format!("tapegrad-autoencoder-{}", std::process::id()));
    let o = autoencoder::Options {
        epochs: 2,
        limit: 4096,
        test_limit: 500,
        threads: Some(2),
        out: Some(dir.clone()),
        ..Default::default()
    };
    let s = autoencoder::run(&o).unwrap();
    eprintln!(
        "autoencoder, 4096 images, 2 epochs: test mse {:?}",
        s.test_mse
    );
    // The pixels' variance around their mean image is about 0.1: a code that carries
    // nothing scores that much.
    assert!(
        s.test_mse[1] < 0.05 && s.test_mse[1] < s.test_mse[0],
        "{s:?}"
    );
    assert!(dir.join("reconstructions.png").metadata().unwrap().len() > 1000);
    std::fs::remove_dir_all(&dir).ok();
}
