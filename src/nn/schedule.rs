//! Learning-rate schedules, as `torch.optim.lr_scheduler`: each a function of the number of
//! steps taken, `t` (PyTorch's `last_epoch`: 0 before the first scheduler step), that any
//! [`Optimizer`](crate::nn::Optimizer) is given through `set_lr` before each step. Written
//! in closed form, they give PyTorch's rates to the last bits or so (its recursive forms
//! round differently), and a resumed run needs nothing saved but `t`.
//!
//! ```
//! use tapegrad::nn::{CosineAnnealingLr, LinearLr, Optimizer, Schedule, Sequential, Sgd};
//! // Three steps of linear warm-up from a tenth of the rate, then cosine annealing.
//! let sched = Sequential::new(vec![
//!     Box::new(LinearLr::new(0.1, 0.1, 1.0, 3)),
//!     Box::new(CosineAnnealingLr::new(0.1, 11, 0.0)),
//! ], &[3]);
//! let mut opt = Sgd::<f32>::new(0.1);
//! for t in 0..14 {
//!     opt.set_lr(sched.lr(t));
//!     // ... forward, backward, opt.step(...) ...
//! }
//! assert!((sched.lr(0) - 0.01).abs() < 1e-12 && (sched.lr(3) - 0.1).abs() < 1e-12);
//! ```

use std::f64::consts::PI;

/// A learning rate for each step count `t`.
pub trait Schedule {
    /// The learning rate after `t` scheduler steps (the one to train step `t` with).
    fn lr(&self, t: usize) -> f64;
}

/// `base · γ^⌊t / step_size⌋`, as `StepLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    /// The initial rate.
    pub base: f64,
    /// Steps between decays (at least 1).
    pub step_size: usize,
    /// The decay factor.
    pub gamma: f64,
}

impl StepLr {
    /// Decays `base` by `gamma` every `step_size` steps.
    ///
    /// # Panics
    /// When `step_size` is 0.
    pub fn new(base: f64, step_size: usize, gamma: f64) -> Self {
        assert!(step_size > 0, "StepLr: step_size must be at least 1");
        StepLr {
            base,
            step_size,
            gamma,
        }
    }
}

impl Schedule for StepLr {
    fn lr(&self, t: usize) -> f64 {
        self.base * self.gamma.powi((t / self.step_size) as i32)
    }
}

/// `base · γ^(milestones passed)`, as `MultiStepLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    /// The initial rate.
    pub base: f64,
    /// The steps at which the rate decays (a milestone `m` applies from `t = m` on).
    pub milestones: Vec<usize>,
    /// The decay factor.
    pub gamma: f64,
}

impl MultiStepLr {
    /// Decays `base` by `gamma` at each of `milestones`.
    pub fn new(base: f64, milestones: &[usize], gamma: f64) -> Self {
        MultiStepLr {
            base,
            milestones: milestones.to_vec(),
            gamma,
        }
    }
}

impl Schedule for MultiStepLr {
    fn lr(&self, t: usize) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= t).count();
        self.base * self.gamma.powi(passed as i32)
    }
}

/// `base · γ^t`, as `ExponentialLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    /// The initial rate.
    pub base: f64,
    /// The factor per step.
    pub gamma: f64,
}

impl ExponentialLr {
    /// Multiplies `base` by `gamma` every step.
    pub fn new(base: f64, gamma: f64) -> Self {
        ExponentialLr { base, gamma }
    }
}

impl Schedule for ExponentialLr {
    fn lr(&self, t: usize) -> f64 {
        self.base * self.gamma.powi(t as i32)
    }
}

/// `η_min + (base − η_min) (1 + cos(π t / t_max)) / 2`, as `CosineAnnealingLR`.
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    /// The initial rate.
    pub base: f64,
    /// Steps from `base` down to `eta_min` (at least 1).
    pub t_max: usize,
    /// The lowest rate.
    pub eta_min: f64,
}

impl CosineAnnealingLr {
    /// Anneals `base` to `eta_min` over `t_max` steps.
    ///
    /// # Panics
    /// When `t_max` is 0.
    pub fn new(base: f64, t_max: usize, eta_min: f64) -> Self {
        assert!(t_max > 0, "CosineAnnealingLr: t_max must be at least 1");
        CosineAnnealingLr {
            base,
            t_max,
            eta_min,
        }
    }
}

impl Schedule for CosineAnnealingLr {
    fn lr(&self, t: usize) -> f64 {
        let c = (PI * t as f64 / self.t_max as f64).cos();
        self.eta_min + (self.base - self.eta_min) * (1.0 + c) / 2.0
    }
}

/// `base · (start + (end − start) · min(t, total) / total)`, as `LinearLR`: a linear
/// warm-up from `start · base` when `start < end`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearLr {
    /// The rate the factors multiply.
    pub base: f64,
    /// The factor at `t = 0`.
    pub start: f64,
    /// The factor from `t = total` on.
    pub end: f64,
    /// Steps from `start` to `end` (at least 1).
    pub total: usize,
}

impl LinearLr {
    /// Moves the factor on `base` linearly from `start` to `end` over `total` steps.
    ///
    /// # Panics
    /// When `total` is 0.
    pub fn new(base: f64, start: f64, end: f64, total: usize) -> Self {
        assert!(total > 0, "LinearLr: total must be at least 1");
        LinearLr {
            base,
            start,
            end,
            total,
        }
    }
}

impl Schedule for LinearLr {
    fn lr(&self, t: usize) -> f64 {
        let f = t.min(self.total) as f64 / self.total as f64;
        self.base * (self.start + (self.end - self.start) * f)
    }
}

/// The one-cycle policy, as `OneCycleLR` (with `cycle_momentum=False`): from
/// `max_lr / div_factor` up to `max_lr` over the first `pct_start` of `total` steps, then
/// down to `max_lr / div_factor / final_div_factor`; with `three_phase`, back down to the
/// initial rate over as many steps before the final descent. Cosine annealing between the
/// phases' ends, or linear.
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleLr {
    /// The peak rate.
    pub max_lr: f64,
    /// The steps of the whole cycle (the schedule is defined for `t < total`; later steps
    /// keep the last rate).
    pub total: usize,
    /// The share of the cycle spent rising (0.3).
    pub pct_start: f64,
    /// `max_lr / initial rate` (25).
    pub div_factor: f64,
    /// `initial rate / final rate` (1e4).
    pub final_div_factor: f64,
    /// The three-phase variant.
    pub three_phase: bool,
    /// Linear instead of cosine annealing.
    pub linear: bool,
}

impl OneCycleLr {
    /// PyTorch's defaults around `max_lr` and `total` steps.
    ///
    /// # Panics
    /// When `total` is 0.
    pub fn new(max_lr: f64, total: usize) -> Self {
        assert!(total > 0, "OneCycleLr: total must be at least 1");
        OneCycleLr {
            max_lr,
            total,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            linear: false,
        }
    }
    /// Sets the share of the cycle spent rising.
    pub fn pct_start(mut self, pct: f64) -> Self {
        self.pct_start = pct;
        self
    }
    /// Sets `max_lr / initial rate` and `initial rate / final rate`.
    pub fn div_factors(mut self, div: f64, final_div: f64) -> Self {
        self.div_factor = div;
        self.final_div_factor = final_div;
        self
    }
    /// Turns the three-phase variant on or off.
    pub fn three_phase(mut self, on: bool) -> Self {
        self.three_phase = on;
        self
    }
    /// Linear annealing instead of cosine.
    pub fn linear(mut self, on: bool) -> Self {
        self.linear = on;
        self
    }
}

impl Schedule for OneCycleLr {
    fn lr(&self, t: usize) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let n = self.total as f64;
        let rise = self.pct_start * n - 1.0;
        let phases: &[(f64, f64, f64)] = if self.three_phase {
            &[
                (rise, initial, self.max_lr),
                (2.0 * self.pct_start * n - 2.0, self.max_lr, initial),
                (n - 1.0, initial, min),
            ]
        } else {
            &[(rise, initial, self.max_lr), (n - 1.0, self.max_lr, min)]
        };
        let step = t.min(self.total - 1) as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, from, to)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let pct = (step - start_step) / (end_step - start_step);
                return if self.linear {
                    (to - from) * pct + from
                } else {
                    to + (from - to) / 2.0 * ((PI * pct).cos() + 1.0)
                };
            }
            start_step = end_step;
        }
        unreachable!("the last phase always answers")
    }
}

/// One schedule after another, as `SequentialLR`: schedule `k + 1` takes over at
/// `milestones[k]`, counting its own steps from 0 there.
pub struct Sequential {
    schedules: Vec<Box<dyn Schedule>>,
    milestones: Vec<usize>,
}

impl Sequential {
    /// `schedules` switched at `milestones` (one fewer, increasing).
    ///
    /// # Panics
    /// When the counts do not fit or the milestones do not increase.
    pub fn new(schedules: Vec<Box<dyn Schedule>>, milestones: &[usize]) -> Self {
        assert!(
            !schedules.is_empty() && milestones.len() + 1 == schedules.len(),
            "Sequential: {} schedules need {} milestones, not {}",
            schedules.len(),
            schedules.len().saturating_sub(1),
            milestones.len()
        );
        assert!(
            milestones.windows(2).all(|w| w[0] < w[1]),
            "Sequential: milestones must increase, got {milestones:?}"
        );
        Sequential {
            schedules,
            milestones: milestones.to_vec(),
        }
    }
}

impl Schedule for Sequential {
    fn lr(&self, t: usize) -> f64 {
        let k = self.milestones.iter().filter(|&&m| m <= t).count();
        let since = if k == 0 {
            t
        } else {
            t - self.milestones[k - 1]
        };
        self.schedules[k].lr(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by scripts/schedule_fixture.py: torch.optim.lr_scheduler's rates at t = 0..14.
    const TORCH: &[(&str, [f64; 15])] = &[
        (
            "step",
            [
                0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125,
                0.00625, 0.00625, 0.00625,
            ],
        ),
        (
            "multistep",
            [
                0.1,
                0.1,
                0.03,
                0.03,
                0.03,
                0.009,
                0.009,
                0.009,
                0.009,
                0.0026999999999999997,
                0.0026999999999999997,
                0.0026999999999999997,
                0.0026999999999999997,
                0.0026999999999999997,
                0.0026999999999999997,
            ],
        ),
        (
            "exponential",
            [
                0.1,
                0.09000000000000001,
                0.08100000000000002,
                0.07290000000000002,
                0.06561000000000002,
                0.05904900000000002,
                0.05314410000000002,
                0.04782969000000002,
                0.043046721000000024,
                0.03874204890000002,
                0.03486784401000002,
                0.03138105960900001,
                0.028242953648100012,
                0.025418658283290013,
                0.022876792454961013,
            ],
        ),
        (
            "cosine",
            [
                0.1,
                0.09875893165300027,
                0.09509795896116975,
                0.0892006583821675,
                0.08136274519200733,
                0.07197724508631914,
                0.06151478623083757,
                0.05050000000000001,
                0.03948521376916245,
                0.029022754913680882,
                0.019637254807992697,
                0.011799341617832543,
                0.005902041038830258,
                0.0022410683469997255,
                0.001,
            ],
        ),
        (
            "linear",
            [
                0.025,
                0.043750000000000004,
                0.06250000000000001,
                0.08125000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
                0.10000000000000002,
            ],
        ),
        (
            "onecycle",
            [
                0.008000000000000007,
                0.04414497902156159,
                0.1253620096598062,
                0.19049301131863225,
                0.19888308709018238,
                0.19009692640269477,
                0.1733052939622339,
                0.1500002,
                0.12225240438725786,
                0.09252742053339501,
                0.06346644369977024,
                0.0376516692100474,
                0.017376853063910257,
                0.004443501650508236,
                8e-07,
            ],
        ),
        (
            "onecycle_three",
            [
                0.01999999999999999,
                0.0726126488298302,
                0.16893746605507565,
                0.19635436762530478,
                0.1228083354445957,
                0.03428718204519368,
                0.01983143368687063,
                0.018517149643723183,
                0.01606608290015464,
                0.012809263601713625,
                0.009186543241313311,
                0.005687190277812272,
                0.0027838117195154765,
                0.0008685249288968785,
                0.0002,
            ],
        ),
        (
            "onecycle_linear",
            [
                0.008,
                0.06285714285714286,
                0.11771428571428572,
                0.17257142857142857,
                0.1904762285714286,
                0.1714286857142857,
                0.15238114285714288,
                0.1333336,
                0.11428605714285715,
                0.09523851428571428,
                0.07619097142857142,
                0.05714342857142857,
                0.03809588571428571,
                0.019048342857142853,
                7.99999999995249e-07,
            ],
        ),
        (
            "warmup_cosine",
            [
                0.010000000000000002,
                0.04,
                0.07,
                0.1,
                0.09797464868072488,
                0.09206267664155907,
                0.08274303669726427,
                0.07077075065009433,
                0.05711574191366426,
                0.04288425808633575,
                0.02922924934990569,
                0.017256963302735753,
                0.007937323358440947,
                0.0020253513192751323,
                0.0,
            ],
        ),
    ];

    fn schedule(name: &str) -> Box<dyn Schedule> {
        let n = 14;
        match name {
            "step" => Box::new(StepLr::new(0.1, 3, 0.5)),
            "multistep" => Box::new(MultiStepLr::new(0.1, &[2, 5, 9], 0.3)),
            "exponential" => Box::new(ExponentialLr::new(0.1, 0.9)),
            "cosine" => Box::new(CosineAnnealingLr::new(0.1, n, 0.001)),
            "linear" => Box::new(LinearLr::new(0.1, 0.25, 1.0, 4)),
            "onecycle" => Box::new(OneCycleLr::new(0.2, n + 1)),
            "onecycle_three" => Box::new(
                OneCycleLr::new(0.2, n + 1)
                    .pct_start(0.25)
                    .three_phase(true)
                    .div_factors(10.0, 100.0),
            ),
            "onecycle_linear" => Box::new(OneCycleLr::new(0.2, n + 1).linear(true)),
            "warmup_cosine" => Box::new(Sequential::new(
                vec![
                    Box::new(LinearLr::new(0.1, 0.1, 1.0, 3)),
                    Box::new(CosineAnnealingLr::new(0.1, n - 3, 0.0)),
                ],
                &[3],
            )),
            _ => unreachable!(),
        }
    }

    #[test]
    fn matches_pytorch() {
        let mut worst = 0.0f64;
        for (name, want) in TORCH {
            let s = schedule(name);
            for (t, &w) in want.iter().enumerate() {
                let rel = (s.lr(t) - w).abs() / w.abs().max(1e-300);
                assert!(rel < 1e-12, "{name} t = {t}: {} vs PyTorch's {w}", s.lr(t));
                worst = worst.max(rel);
            }
        }
        println!("largest relative difference from PyTorch: {worst:e}");
    }
}
