//! A run stopped, saved (parameters and optimiser state, each a safetensors file) and
//! resumed gives the same bits as a run that never stopped, for every optimiser and a
//! schedule; a state file of another optimiser is refused by name.
#![cfg(feature = "safetensors")]

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::nn::{
    Adam, AdamW, CosineAnnealingLr, LinearLr, Optimizer, ParamStore, RmsProp, Schedule, Sequential,
    Sgd, load_safetensors,
};
use tapegrad::prelude::*;

fn new_store() -> ParamStore<f32> {
    let mut s = ParamStore::new();
    let mut rng = StdRng::seed_from_u64(3);
    s.insert("fc.weight", Tensor::randn([3, 4], &mut rng));
    s.insert("fc.bias", Tensor::randn([3], &mut rng));
    s
}

fn schedule() -> Sequential {
    Sequential::new(
        vec![
            Box::new(LinearLr::new(0.05, 0.2, 1.0, 3)),
            Box::new(CosineAnnealingLr::new(0.05, 9, 0.001)),
        ],
        &[3],
    )
}

/// Steps `from..to` of the run: the loss of a linear layer on fixed data.
fn train(store: &mut ParamStore<f32>, opt: &mut dyn Optimizer<f32>, steps: std::ops::Range<usize>) {
    let mut rng = StdRng::seed_from_u64(9);
    let x = Tensor::<f32>::randn([8, 4], &mut rng);
    let y = Tensor::<f32>::randn([8, 3], &mut rng);
    let (w, b) = (
        store.by_name("fc.weight").unwrap(),
        store.by_name("fc.bias").unwrap(),
    );
    let sched = schedule();
    let mut tape = Tape::new();
    for t in steps {
        tape.clear();
        let p = store.bind(&tape);
        let out = tape.input(x.clone()).matmul(p[w].t()) + p[b];
        let loss = out.mse_loss(&y).mean();
        let g = p.grads(&tape.backward(loss));
        tape.clear();
        opt.set_lr(sched.lr(t));
        opt.step(store, &g);
    }
}

/// Makes a fresh optimiser of one configuration.
type Make = Box<dyn Fn() -> Box<dyn Optimizer<f32>>>;

fn optimisers() -> Vec<(&'static str, Make)> {
    vec![
        (
            "sgd",
            Box::new(|| {
                Box::new(
                    Sgd::new(0.05)
                        .momentum(0.9)
                        .nesterov(true)
                        .weight_decay(1e-3),
                )
            }),
        ),
        ("adam", Box::new(|| Box::new(Adam::new(0.05).amsgrad(true)))),
        ("adamw", Box::new(|| Box::new(AdamW::new(0.05)))),
        (
            "rmsprop",
            Box::new(|| Box::new(RmsProp::new(0.05).momentum(0.5).centered(true))),
        ),
    ]
}

#[test]
fn a_resumed_run_gives_the_same_bits() {
    let dir = std::env::temp_dir().join(format!("tapegrad-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, make) in optimisers() {
        let mut whole = new_store();
        train(&mut whole, make().as_mut(), 0..12);

        let mut first = new_store();
        let mut opt = make();
        train(&mut first, opt.as_mut(), 0..5);
        let (params, state) = (
            dir.join(format!("{name}.safetensors")),
            dir.join(format!("{name}.opt.safetensors")),
        );
        first.save(&params).unwrap();
        opt.state(&first).save(&state).unwrap();
        drop((first, opt));

        let mut resumed = new_store();
        resumed.load_from(&params).unwrap();
        let mut opt = make();
        opt.load_state(&resumed, &load_safetensors(&state).unwrap())
            .unwrap();
        train(&mut resumed, opt.as_mut(), 5..12);
        for ((n, a), (_, b)) in whole.iter().zip(resumed.iter()) {
            assert_eq!(a.to_vec(), b.to_vec(), "{name}: {n} differs after resuming");
        }
        // And stepping from the restored state really used it: a fresh optimiser differs.
        let mut fresh = new_store();
        fresh.load_from(&params).unwrap();
        train(&mut fresh, make().as_mut(), 5..12);
        assert_ne!(
            fresh.iter().next().unwrap().1.to_vec(),
            whole.iter().next().unwrap().1.to_vec(),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn another_optimisers_state_is_refused() {
    let mut store = new_store();
    let mut adam = Adam::new(0.1);
    train(&mut store, &mut adam, 0..2);
    let state = adam.state(&store);
    let e = Sgd::new(0.1)
        .momentum(0.9)
        .load_state(&store, &state)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Adam's, not Sgd's"), "{e}");
    // A state whose tensor has the wrong shape: named, and nothing changed.
    let mut other = ParamStore::<f32>::new();
    other.insert("fc.weight", Tensor::zeros([4, 3]));
    other.insert("fc.bias", Tensor::zeros([3]));
    let mut fresh = Adam::new(0.1);
    let e = fresh.load_state(&other, &state).unwrap_err().to_string();
    assert!(
        e.contains("fc.weight.exp_avg has shape [3, 4] but the parameter has shape [4, 3]"),
        "{e}"
    );
}
