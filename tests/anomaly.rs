//! Anomaly mode and the numeric edges of every op: very large and very small inputs, exact
//! zeros, log and sqrt of 0, sigmoid and softplus at ±1e4, softmax of huge logits, division
//! by zero. Each either gives the mathematically right finite value and gradient, or is
//! caught by anomaly mode with a message naming the op, the direction and the line.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tapegrad::prelude::*;

fn t64(v: &[f64]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), [v.len()])
}

fn t32(v: &[f32]) -> Tensor<f32> {
    Tensor::from_vec(v.to_vec(), [v.len()])
}

/// Runs `f(x)` on an anomaly-mode tape in f64 and f32, asserting finite values equal to
/// `want` and finite gradients equal to `dwant` (each to a relative 1e-6).
fn finite<F>(name: &str, x: &[f64], want: &[f64], dwant: &[f64], f: F)
where
    F: for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>,
    F: Clone,
{
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let xv = tape.param(t64(x));
    let y = f(xv);
    let got = y.value().to_vec();
    let g = tape
        .try_backward_with(y, Tensor::ones(y.shape()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    close(name, "value", &got, want);
    close(name, "gradient", &g[xv].to_vec(), dwant);
}

fn close(name: &str, what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name} {what}");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let ok = a == b || (a - b).abs() <= 1e-6 * b.abs().max(1e-300);
        assert!(ok, "{name} {what}[{i}]: got {a:e}, want {b:e}");
    }
}

/// The message of the panic `f` raises (anomaly mode's forward check).
fn forward_anomaly(f: impl FnOnce()) -> String {
    let e = catch_unwind(AssertUnwindSafe(f)).expect_err("anomaly mode did not stop the op");
    e.downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| e.downcast_ref::<&str>().unwrap().to_string())
}

#[test]
fn extreme_inputs_with_right_finite_answers() {
    let big = 1e4;
    // sigmoid and softplus at ±1e4: exact saturation, gradients 1/0 and never NaN.
    finite(
        "sigmoid",
        &[big, -big, 0.0],
        &[1.0, 0.0, 0.5],
        &[0.0, 0.0, 0.25],
        |x| x.sigmoid(),
    );
    finite(
        "softplus",
        &[big, -big, 0.0],
        &[big, 0.0, std::f64::consts::LN_2],
        &[1.0, 0.0, 0.5],
        |x| x.softplus(),
    );
    finite(
        "tanh",
        &[big, -big, 0.0],
        &[1.0, -1.0, 0.0],
        &[0.0, 0.0, 1.0],
        |x| x.tanh(),
    );
    finite("exp", &[-big, 0.0], &[0.0, 1.0], &[0.0, 1.0], |x| x.exp());
    finite(
        "relu",
        &[-big, big, 0.0],
        &[0.0, big, 0.0],
        &[0.0, 1.0, 0.0],
        |x| x.relu(),
    );
    finite("abs", &[-big, 1e-300], &[big, 1e-300], &[-1.0, 1.0], |x| {
        x.abs()
    });
    finite(
        "square",
        &[1e-200, -3.0],
        &[0.0, 9.0],
        &[2e-200, -6.0],
        |x| x.square(),
    );
    // Subnormal inputs pass through the smooth ops unharmed.
    let tiny = 5e-324;
    finite("tanh tiny", &[tiny], &[tiny], &[1.0], |x| x.tanh());
    finite("sigmoid tiny", &[tiny], &[0.5], &[0.25], |x| x.sigmoid());
    // sqrt(0) is 0; log1p near -1 and log of the smallest normal are finite.
    let min = f64::MIN_POSITIVE;
    finite("log min", &[min], &[min.ln()], &[1.0 / min], |x| x.log());
    // powf with an integer power at 0: 0, gradient 0 (not 0 · inf).
    finite("powf 2 at 0", &[0.0], &[0.0], &[0.0], |x| x.powf(2.0));
}

#[test]
fn softmax_and_losses_of_huge_logits_stay_finite() {
    let tape = Tape::<f32>::new();
    tape.detect_anomaly(true);
    // f32 logits at ±1e4 and 3e38: exp would overflow without the max shift. (A row
    // [3e38, 0, -3e38] has the log-probability -6e38, beyond f32: log_softmax gives -inf
    // there, and anomaly mode stops it, as a later test shows for other overflows.)
    let z = tape.param(Tensor::from_vec(
        vec![1e4, 0.0, -1e4, 3e38, 0.0, -3e37],
        [2, 3],
    ));
    let p = z.softmax(1).value();
    assert_eq!(p.to_vec(), vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    let tape64 = Tape::<f64>::new();
    tape64.detect_anomaly(true);
    let z64 = tape64.param(Tensor::from_vec(vec![3e38, 0.0, -3e38], [1, 3]));
    assert_eq!(z64.log_softmax(1).value().to_vec(), vec![0.0, -3e38, -6e38]);
    let lp = z.log_softmax(1).value();
    assert_eq!(lp.to_vec()[..3], [0.0, -1e4, -2e4]);
    let ce = z.cross_entropy(&[0, 1]).sum();
    // Row 0 picks its maximum: loss 0. Row 1 picks 0 against 3e38: loss 3e38, finite.
    assert_eq!(ce.value().item(), 3e38);
    let g = tape.try_backward(ce).expect("finite gradients");
    assert_eq!(g[z].to_vec(), vec![0.0, 0.0, 0.0, 1.0, -1.0, 0.0]);

    // Binary cross-entropy on logits at ±1e4 and on saturated probabilities.
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let z = tape.param(t64(&[1e4, -1e4, 1e4]));
    let l = z.bce_with_logits(&t64(&[1.0, 0.0, 0.0]));
    assert_eq!(l.value().to_vec(), vec![0.0, 0.0, 1e4]);
    let g = tape.try_backward(l.sum()).expect("finite gradients");
    assert_eq!(g[z].to_vec(), vec![0.0, 0.0, 1.0]);
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let p = tape.param(t64(&[0.0, 1.0, 1.0]));
    let l = p.bce(&t64(&[0.0, 1.0, 0.0]));
    let v = l.value().to_vec();
    // Exact predictions cost 0; a confident wrong one costs the clamped -ln(0) = 100.
    assert_eq!(&v[..2], &[0.0, 0.0]);
    assert!(v[2].is_finite() && v[2] >= 100.0, "{v:?}");
    let g = tape.try_backward(l.sum()).expect("finite gradients");
    assert!(g[p].data().iter().all(|v| v.is_finite()), "{:?}", g[p]);
}

#[test]
fn forward_anomalies_stop_at_the_op_with_its_line() {
    type Case = (&'static str, fn(&Tape<f64>) -> (), &'static str);
    let cases: [Case; 10] = [
        (
            "conv2d overflow",
            |t| {
                let x = t.input(Tensor::full([1, 1, 3, 3], 1e200));
                let w = t.param(Tensor::full([2, 1, 2, 2], 1e200));
                x.conv2d(w, ConvOptions::new());
            },
            "conv2d: non-finite forward value: 8 of the 8 elements of the [1, 2, 2, 2] tensor are NaN or infinite, e.g. [0] = inf, [1] = inf, [2] = inf, [3] = inf; inputs [1, 1, 3, 3], [2, 1, 2, 2]",
        ),
        (
            "sum overflow",
            |t| {
                t.param(t64(&[1.5e308, 1.5e308])).sum();
            },
            "sum: non-finite forward value: 1 of the 1 elements of the [] tensor",
        ),
        (
            "mse_loss overflow",
            |t| {
                t.param(t64(&[1e200, 0.0])).mse_loss(&t64(&[-1e200, 0.0]));
            },
            "mse_loss: non-finite forward value: 1 of the 2 elements of the [2] tensor are NaN or infinite, e.g. [0] = inf",
        ),
        (
            "log of 0",
            |t| {
                t.param(t64(&[1.0, 0.0])).log();
            },
            "log: non-finite forward value: 1 of the 2 elements of the [2] tensor are NaN or infinite, e.g. [1] = -inf; inputs [2] (called at tests/anomaly.rs:",
        ),
        (
            "division by zero",
            |t| {
                let a = t.param(t64(&[1.0, 0.0, 2.0]));
                let b = t.input(t64(&[0.0, 0.0, 1.0]));
                let _ = a / b;
            },
            "div: non-finite forward value: 2 of the 3 elements of the [3] tensor are NaN or infinite, e.g. [0] = inf, [1] = NaN; inputs [3], [3] (called at tests/anomaly.rs:",
        ),
        (
            "exp overflow",
            |t| {
                t.param(t64(&[1e4])).exp();
            },
            "exp: non-finite forward value: 1 of the 1 elements of the [1] tensor are NaN or infinite, e.g. [0] = inf",
        ),
        (
            "log1p of -1",
            |t| {
                t.param(t64(&[-1.0])).log1p();
            },
            "log1p: non-finite forward value",
        ),
        (
            "sqrt of a negative",
            |t| {
                t.param(t64(&[-1.0, 4.0])).sqrt();
            },
            "sqrt: non-finite forward value: 1 of the 2 elements of the [2] tensor are NaN or infinite, e.g. [0] = NaN",
        ),
        (
            "a NaN in the data",
            |t| {
                t.input(t64(&[f64::NAN]));
            },
            "input: non-finite forward value: 1 of the 1 elements of the [1] tensor are NaN or infinite, e.g. [0] = NaN (called at",
        ),
        (
            "matmul overflow",
            |t| {
                let a = t.param(Tensor::full([2, 2], 1e200));
                let _ = a.matmul(a);
            },
            "matmul: non-finite forward value: 4 of the 4 elements of the [2, 2] tensor are NaN or infinite, e.g. [0] = inf, [1] = inf, [2] = inf, [3] = inf; inputs [2, 2], [2, 2]",
        ),
    ];
    for (name, f, want) in cases {
        let tape = Tape::<f64>::new();
        tape.detect_anomaly(true);
        let msg = forward_anomaly(|| f(&tape));
        assert!(msg.starts_with(want), "{name}: {msg}");
        // Off (the default), the same op records its non-finite value without a word.
        let quiet = Tape::<f64>::new();
        assert!(!quiet.is_detecting_anomaly());
        f(&quiet);
    }
}

#[test]
fn backward_anomalies_name_the_op_the_input_and_the_line() {
    // sqrt at 0: the forward value is 0, the gradient 1 / (2 sqrt 0) is infinite.
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let x = tape.param(Tensor::from_vec(vec![4.0, 0.0, 1.0, 0.0], [2, 2]));
    let w = tape.param(t64(&[1.0, 2.0]));
    let line = line!() + 1;
    let y = x.sqrt();
    let loss = (y * w).sum();
    let e = tape.try_backward(loss).unwrap_err();
    assert_eq!(e.op, "sqrt");
    assert_eq!(e.location.line(), line);
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "sqrt: non-finite gradient for input 0 (param [2, 2]): 2 of the 4 elements of the [2, 2] tensor are NaN or infinite, e.g. [1] = inf, [3] = inf; inputs [2, 2] (called at tests/anomaly.rs:"
        ),
        "{msg}"
    );
    assert!(matches!(*e.kind, ErrorKind::NonFinite { count: 2, .. }));

    // powf(x, 0.5) at 0 and a zero times infinity in mul: the first bad gradient is
    // reported, from the op nearest the loss.
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let x = tape.param(t64(&[0.0, 1.0]));
    let loss = x.powf(0.5).sum();
    let e = tape.try_backward(loss).unwrap_err().to_string();
    assert!(
        e.starts_with("powf: non-finite gradient for input 0 (param [2])"),
        "{e}"
    );

    // A non-finite seed is caught at the output.
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let x = tape.param(t64(&[1.0]));
    let y = x.square();
    let e = tape
        .try_backward_with(y, t64(&[f64::INFINITY]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("square: non-finite gradient of the output: 1 of the 1 elements"),
        "{e}"
    );

    // The plain form panics with the same message.
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let x = tape.param(t64(&[0.0]));
    let loss = x.sqrt().sum();
    let msg = forward_anomaly(|| {
        tape.backward(loss);
    });
    assert!(
        msg.starts_with("sqrt: non-finite gradient for input 0"),
        "{msg}"
    );

    // Without anomaly mode the same backward returns the infinite gradient as it is.
    let tape = Tape::<f64>::new();
    let x = tape.param(t64(&[0.0]));
    let g = tape.backward(x.sqrt().sum());
    assert_eq!(g[x].to_vec(), vec![f64::INFINITY]);
}

#[test]
fn a_diverging_f32_training_step_is_caught_where_it_overflows() {
    // A weight that has blown up: the forward is stopped at the op that produced the
    // infinity, not later at the loss.
    let tape = Tape::<f32>::new();
    tape.detect_anomaly(true);
    let w = tape.param(t32(&[3e19, 1.0]));
    let x = tape.input(Tensor::from_vec(vec![3e19f32, 1.0], [1, 2]));
    let msg = forward_anomaly(|| {
        let _ = x.matmul(w.reshape([2, 1])).square();
    });
    assert!(
        msg.starts_with("matmul: non-finite forward value: 1 of the 1 elements of the [1, 1] tensor are NaN or infinite, e.g. [0] = inf; inputs [1, 2], [2, 1]"),
        "{msg}"
    );
}

/// Where the panic `f` raises was reported (the location a panic hook sees), and its message.
fn panic_site(f: impl FnOnce()) -> (String, u32, String) {
    use std::cell::RefCell;
    thread_local! {
        static SITE: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
    }
    // The hook is process-wide: it notes the site on this thread and then lets the
    // previous hook print as usual, so that other tests' panics read as before.
    let previous = std::sync::Arc::new(std::panic::take_hook());
    let chained = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(l) = info.location() {
            SITE.with(|s| *s.borrow_mut() = Some((l.file().to_string(), l.line())));
        }
        chained(info);
    }));
    let msg = forward_anomaly(f);
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
    let (file, line) = SITE
        .with(|s| s.borrow_mut().take())
        .expect("a panic location");
    (file, line, msg)
}

#[test]
fn try_forms_return_forward_anomalies_and_plain_forms_panic_at_the_callers_line() {
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let big = tape.param(Tensor::full([2, 2], 1e200));
    let zero = tape.input(Tensor::zeros([2, 2]));
    let one = tape.input(Tensor::ones([2, 2]));
    // Each try_ form returns the anomaly as its error, located at this file's line.
    type Try = for<'t> fn(Var<'t, f64>, Var<'t, f64>, Var<'t, f64>) -> Result<Var<'t, f64>, Error>;
    let cases: [(&str, Try); 7] = [
        ("matmul", |b, _, _| b.try_matmul(b)),
        ("mul", |b, _, _| b.try_mul(b)),
        ("div", |_, z, o| o.try_div(z)),
        ("add", |b, _, _| (b * 1e108).try_add(b * 1e108)),
        ("sub", |b, _, _| (b * 1e108).try_sub(b * -1e108)),
        ("sum", |b, _, _| (b * 1e108).try_sum_axes(&[0], false)),
        ("conv2d", |b, _, _| {
            let x = b.reshape([1, 1, 2, 2]);
            x.try_conv2d(x, ConvOptions::new())
        }),
    ];
    for (op, f) in cases {
        let e = f(big, zero, one).unwrap_err();
        assert!(matches!(*e.kind, ErrorKind::NonFinite { .. }), "{op}: {e}");
        assert_eq!((e.op, e.location.file()), (op, "tests/anomaly.rs"), "{e}");
    }
    let call = line!() + 2; // the line of `.try_record(` below
    let e = tape
        .try_record(
            "custom",
            &[big],
            Tensor::full([1], f64::NAN),
            |_, _| -> [Option<Tensor<f64>>; 1] { unreachable!() },
        )
        .unwrap_err();
    assert_eq!((e.op, e.location.line()), ("custom", call), "{e}");

    // The plain forms panic, and the panic itself is located at the caller's line.
    let (file, line, msg) = panic_site(|| {
        let _ = one / zero;
    });
    assert_eq!(
        (file.as_str(), line),
        ("tests/anomaly.rs", line!() - 4), // the closure's statement
        "{msg}"
    );
    assert!(msg.starts_with("div: non-finite forward value"), "{msg}");
    let (file, line, msg) = panic_site(|| {
        zero.log();
    });
    assert_eq!(
        (file.as_str(), line),
        ("tests/anomaly.rs", line!() - 4), // the closure's statement
        "{msg}"
    );
    let (file, line, msg) = panic_site(|| {
        big.matmul(big);
    });
    assert_eq!(
        (file.as_str(), line),
        ("tests/anomaly.rs", line!() - 4), // the closure's statement
        "{msg}"
    );
    let (file, line, msg) = panic_site(|| {
        tape.input(Tensor::full([1], f64::NAN));
    });
    assert_eq!(
        (file.as_str(), line),
        ("tests/anomaly.rs", line!() - 4), // the closure's statement
        "{msg}"
    );
}

/// A gradient taken with `Tape::grad` (recorded, for a second derivative) is checked as
/// `backward`'s is, naming the op and which input's gradient went non-finite.
#[test]
fn anomaly_mode_checks_recorded_gradients_too() {
    let tape = Tape::<f64>::new();
    tape.detect_anomaly(true);
    let x = tape.param(Tensor::from_vec(vec![4.0, 0.0], [2]));
    let e = tape.try_grad(x.sqrt().sum(), &[x]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("sqrt: non-finite gradient for input 0 (param [2]): 1 of the 2 elements"),
        "{e}"
    );
}
