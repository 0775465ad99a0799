//! Classification metrics: accuracy and the confusion matrix (printed as a table; drawn as
//! a PNG by `viz::plot_confusion`).

use crate::error::{Error, OrPanic};
use std::fmt;

/// The share of `predicted` equal to `labels` (0 for none).
///
/// ```
/// assert_eq!(tapegrad::metrics::accuracy(&[1, 0, 2, 2], &[1, 1, 2, 0]), 0.5);
/// ```
///
/// # Panics
/// When the lengths differ.
#[track_caller]
pub fn accuracy(predicted: &[usize], labels: &[usize]) -> f64 {
    assert_eq!(
        predicted.len(),
        labels.len(),
        "accuracy: {} predictions for {} labels",
        predicted.len(),
        labels.len()
    );
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / predicted.len().max(1) as f64
}

/// Counts of (true class, predicted class) pairs over `classes` classes.
///
/// ```
/// use tapegrad::metrics::ConfusionMatrix;
/// let mut cm = ConfusionMatrix::new(3);
/// cm.add(&[0, 1, 1, 2], &[0, 1, 2, 2]); // predicted, true
/// assert_eq!((cm.count(2, 1), cm.count(2, 2), cm.total()), (1, 1, 4));
/// assert_eq!(cm.accuracy(), 0.75);
/// assert_eq!(cm.recall(2), 0.5);
/// println!("{cm}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    /// `counts[truth · classes + predicted]`.
    counts: Vec<usize>,
}

impl ConfusionMatrix {
    /// An empty matrix over `classes` classes.
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Adds one count per (prediction, label) pair; `Err` naming the first pair out of
    /// range, or lengths that differ, with nothing added.
    #[track_caller]
    pub fn try_add(&mut self, predicted: &[usize], labels: &[usize]) -> Result<(), Error> {
        if predicted.len() != labels.len() {
            let why = format!(
                "{} predictions for {} labels",
                predicted.len(),
                labels.len()
            );
            return Err(Error::bad_argument("ConfusionMatrix::add", why));
        }
        let k = self.classes;
        if let Some(i) = (0..labels.len()).find(|&i| predicted[i] >= k || labels[i] >= k) {
            let why = format!(
                "pair {i} (predicted {}, label {}) is outside the {k} classes",
                predicted[i], labels[i]
            );
            return Err(Error::bad_argument("ConfusionMatrix::add", why));
        }
        for (&p, &l) in predicted.iter().zip(labels) {
            self.counts[l * k + p] += 1;
        }
        Ok(())
    }

    /// [`ConfusionMatrix::try_add`], panicking at the caller's line on bad input.
    #[track_caller]
    pub fn add(&mut self, predicted: &[usize], labels: &[usize]) {
        self.try_add(predicted, labels).or_panic()
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// How many samples of class `truth` were predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> usize {
        self.counts[truth * self.classes + predicted]
    }

    /// How many samples were counted.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// The share on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.classes).map(|c| self.count(c, c)).sum();
        right as f64 / self.total().max(1) as f64
    }

    /// The share of class `truth`'s samples predicted as it (0 when it has none).
    pub fn recall(&self, truth: usize) -> f64 {
        let row: usize = (0..self.classes).map(|p| self.count(truth, p)).sum();
        self.count(truth, truth) as f64 / row.max(1) as f64
    }
}

/// A table: one row per true class, one column per predicted class, and each row's recall.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.classes;
        let width = self
            .counts
            .iter()
            .max()
            .map_or(1, |m| m.to_string().len())
            .max(k.to_string().len())
            + 1;
        write!(f, "true\\pred")?;
        for p in 0..k {
            write!(f, "{p:>width$}")?;
        }
        writeln!(f, "  recall")?;
        for t in 0..k {
            write!(f, "{t:>9}")?;
            for p in 0..k {
                write!(f, "{:>width$}", self.count(t, p))?;
            }
            writeln!(f, "  {:>5.1}%", 100.0 * self.recall(t))?;
        }
        write!(
            f,
            "accuracy {:.2}% of {}",
            100.0 * self.accuracy(),
            self.total()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_table_and_refusals() {
        let mut cm = ConfusionMatrix::new(2);
        cm.add(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 0]);
        assert_eq!(
            (
                cm.count(0, 0),
                cm.count(0, 1),
                cm.count(1, 0),
                cm.count(1, 1)
            ),
            (1, 1, 1, 2)
        );
        let table = cm.to_string();
        assert!(
            table.contains("accuracy 60.00% of 5") && table.contains("66.7%"),
            "{table}"
        );
        let before = cm.clone();
        let e = cm.try_add(&[0, 2], &[0, 1]).unwrap_err().to_string();
        assert!(
            e.contains("pair 1 (predicted 2, label 1) is outside the 2 classes"),
            "{e}"
        );
        assert_eq!(cm, before, "nothing added on refusal");
        assert!(cm.try_add(&[0], &[0, 1]).is_err());
        assert_eq!(accuracy(&[], &[]), 0.0);
    }
}
