//! `nn::Dropout`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tape::Var;
use rand::Rng;

/// Inverted dropout with drop probability `p`, as PyTorch's `nn.Dropout`: active in
/// training mode ([`Tape::is_training`](crate::tape::Tape::is_training)), the identity in
/// evaluation. It has no parameters.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::Dropout;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let drop = Dropout::new(0.5);
/// let tape = Tape::<f32>::inference();
/// let x = tape.input(Tensor::ones([4]));
/// assert_eq!(drop.forward(x, &mut rng).value().to_vec(), vec![1.0; 4]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// The probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
}

impl Dropout {
    /// Dropout with probability `p` (checked when the layer runs: in `[0, 1)`).
    pub fn new(p: f64) -> Self {
        Dropout { p }
    }

    /// [`Var::dropout`] with this layer's `p`.
    ///
    /// Errors: `p` is not in `[0, 1)`.
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        x: Var<'t, T>,
        rng: &mut (impl Rng + ?Sized),
    ) -> Result<Var<'t, T>, Error> {
        x.try_dropout(self.p, rng)
    }

    /// [`Dropout::try_forward`], panicking at the caller's line.
    #[track_caller]
    pub fn forward<'t, T: Float>(
        &self,
        x: Var<'t, T>,
        rng: &mut (impl Rng + ?Sized),
    ) -> Var<'t, T> {
        self.try_forward(x, rng).or_panic()
    }
}
