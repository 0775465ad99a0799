//! Flattening a run of axes into one, without a copy.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Keeps axis 0 (the batch) and merges the rest: `[N, d₁, …, dᵣ₋₁] → [N, d₁·…·dᵣ₋₁]`,
    /// as `torch.nn.Flatten()` does, e.g. between convolutional and linear layers. A rank-1
    /// input `[N]` is returned as `[N]`: there is nothing to merge (`nn.Flatten` refuses
    /// it instead). A rank-0 input becomes `[1]`, as `torch.flatten` does for a scalar. No
    /// data is copied.
    ///
    /// VJP: `∂L/∂x = reshape(g, shape of x)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::zeros([4, 3, 2, 2]));
    /// assert_eq!(x.flatten().shape(), [4, 12]);
    /// assert_eq!(tape.scalar(1.0).flatten().shape(), [1]);
    /// ```
    #[track_caller]
    pub fn flatten(self) -> Var<'t, T> {
        let s = self.shape();
        let to: Shape = match s.rank() {
            0 => [1].into(),
            1 => s.clone(),
            _ => [s[0], s[1..].iter().product()].into(),
        };
        let y = self.value().reshape(to);
        self.record_view("flatten", y)
    }

    /// Merges axes `start..=end` (both inclusive) into one, as
    /// `torch.flatten(x, start_dim, end_dim)`: `[…, d_start, …, d_end, …] →
    /// […, d_start·…·d_end, …]`. `start == end` leaves the shape as it is. A rank-0 input
    /// accepts `(0, 0)` and becomes `[1]`, as in PyTorch. No data is copied.
    ///
    /// VJP: `∂L/∂x = reshape(g, shape of x)`.
    ///
    /// Errors: `start` or `end` not below the rank, or `start > end`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::zeros([2, 3, 4, 5]));
    /// assert_eq!(x.flatten_range(1, 2).shape(), [2, 12, 5]);
    /// assert_eq!(x.flatten_range(0, 3).shape(), [120]);
    /// assert!(x.try_flatten_range(2, 1).is_err());
    /// ```
    #[track_caller]
    pub fn try_flatten_range(self, start: usize, end: usize) -> Result<Var<'t, T>, Error> {
        let s = self.shape();
        if s.rank() == 0 && (start, end) != (0, 0) {
            // A scalar is flattened as if it were [1], so (0, 0) is its only range.
            return Err(Error::bad_argument(
                "flatten_range",
                format!("a rank-0 tensor accepts only the range (0, 0), not ({start}, {end})"),
            ));
        }
        let rank = s.rank().max(1);
        Error::check_axis("flatten_range", start, rank)?;
        Error::check_axis("flatten_range", end, rank)?;
        if start > end {
            return Err(Error::bad_argument(
                "flatten_range",
                format!(
                    "start axis {start} is after end axis {end}; flatten_range merges start..=end"
                ),
            ));
        }
        let to: Shape = if s.rank() == 0 {
            [1].into()
        } else {
            let mut d = s[..start].to_vec();
            d.push(s[start..=end].iter().product());
            d.extend_from_slice(&s[end + 1..]);
            d.into()
        };
        let y = self.value().reshape(to);
        Ok(self.record_view("flatten", y))
    }

    /// [`Var::try_flatten_range`], panicking on a bad axis.
    ///
    /// # Panics
    /// With the message of [`Var::try_flatten_range`]'s error.
    #[track_caller]
    pub fn flatten_range(self, start: usize, end: usize) -> Var<'t, T> {
        self.try_flatten_range(start, end).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_flatten_and_ranges() {
        let mut worst: f64 = 0.0;
        let mut passed = 0;
        let shapes: &[&[usize]] = &[&[], &[5], &[3, 4], &[1, 3, 2], &[2, 3, 2, 2]];
        for (k, &shape) in shapes.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::<f64>::randn(shape, &mut rng);
            match gradcheck(
                |v| {
                    let y = v[0].flatten();
                    y * y
                },
                &[x],
            ) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("flatten {shape:?}: {e}"),
            }
            passed += 1;
        }
        let ranges: &[(&[usize], usize, usize)] = &[
            (&[4], 0, 0),
            (&[3, 4], 0, 1),
            (&[3, 4], 1, 1),
            (&[2, 3, 4], 0, 1),
            (&[2, 3, 4], 1, 2),
            (&[2, 3, 2, 2], 1, 2),
            (&[2, 3, 2, 2], 0, 3),
            (&[2, 3, 2, 2], 2, 3),
        ];
        for (k, &(shape, a, b)) in ranges.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(50 + k as u64);
            let x = Tensor::<f64>::randn(shape, &mut rng);
            match gradcheck(
                |v| {
                    let y = v[0].flatten_range(a, b);
                    y * y
                },
                &[x],
            ) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("flatten_range {shape:?} ({a}, {b}): {e}"),
            }
            passed += 1;
        }
        println!("flatten: {passed} gradcheck configurations, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_and_f64() {
        let tape = Tape::<f32>::new();
        let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let x = tape.param(Tensor::from_vec(data.clone(), [2, 3, 4]));
        let y = x.flatten();
        assert_eq!(y.shape(), [2, 12]);
        assert_eq!(y.value().to_vec(), data);
        assert!(y.value().shares_buffer(&x.value()));
        assert_eq!(y.value()[[1, 0]], 12.0);
        assert_eq!(x.flatten_range(0, 1).shape(), [6, 4]);
        assert_eq!(x.flatten_range(2, 2).shape(), [2, 3, 4]);
        let g = tape.backward((y * 2.0).sum());
        assert_eq!(g[x].shape(), &[2, 3, 4]);
        assert_eq!(g[x].to_vec(), vec![2.0f32; 24]);

        let tape = Tape::<f64>::new();
        let v = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
        assert_eq!(v.flatten().shape(), [3]);
        let s = tape.scalar(4.0);
        assert_eq!(s.flatten().shape(), [1]);
        assert_eq!(s.flatten_range(0, 0).shape(), [1]);
        assert_eq!(s.flatten_range(0, 0).value().to_vec(), vec![4.0]);
    }

    #[test]
    fn axis_out_of_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_flatten_range(0, 2).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "flatten_range: axis 2 is out of range for a tensor of rank 2 (called at src/ops/flatten.rs:"
            ),
            "{s}"
        );
        let s = tape
            .scalar(1.0)
            .try_flatten_range(0, 1)
            .unwrap_err()
            .to_string();
        assert!(
            s.starts_with(
                "flatten_range: a rank-0 tensor accepts only the range (0, 0), not (0, 1) (called at src/ops/flatten.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn reversed_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3, 4]));
        let s = x.try_flatten_range(2, 1).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "flatten_range: start axis 2 is after end axis 1; flatten_range merges start..=end (called at src/ops/flatten.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "flatten_range: axis 3 is out of range")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([2, 3])).flatten_range(3, 3);
    }
}
