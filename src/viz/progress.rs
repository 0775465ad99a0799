//! A progress bar for training loops: position, loss, accuracy and throughput on one line.
//!
//! A thin wrapper over `indicatif`. The bar draws on stderr, and only when stderr is a
//! terminal: when output goes to a file or a pipe (CI logs, `cargo test`), it stays hidden and
//! costs next to nothing, so a training example can always create one.
//!
//! ```
//! use tapegrad::viz::Progress;
//! let bar = Progress::new(3 * 64, "epoch 1");
//! for _ in 0..3 {
//!     // ... train on a batch of 64 ...
//!     bar.inc(64);
//!     bar.set_metrics(0.42, 0.875);
//! }
//! bar.finish();
//! assert_eq!(bar.position(), 192);
//! ```

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// A progress bar with a label, a count of items done out of a total, and training metrics.
///
/// Its line reads `epoch 1 [=====>    ] 3200/60000 loss 0.4210  acc 87.50%  1520 items/s  eta 37s`.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

const TEMPLATE: &str = "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg}  eta {eta}";

impl Progress {
    /// A bar for `total` items labelled `label`; hidden unless stderr is a terminal.
    pub fn new(total: u64, label: &str) -> Self {
        if std::io::stderr().is_terminal() {
            Self::with_target(total, label, ProgressDrawTarget::stderr())
        } else {
            Self::hidden(total, label)
        }
    }

    /// A bar that counts but never draws, whatever stderr is.
    pub fn hidden(total: u64, label: &str) -> Self {
        Self::with_target(total, label, ProgressDrawTarget::hidden())
    }

    fn with_target(total: u64, label: &str, target: ProgressDrawTarget) -> Self {
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), target)
            .with_style(style)
            .with_prefix(label.to_string());
        Progress { bar }
    }

    /// Counts `n` more items done.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Shows the latest loss and accuracy (a fraction in 0..=1, shown as a percentage), with
    /// the throughput in items per second. A NaN accuracy is left out, for losses alone.
    pub fn set_metrics(&self, loss: f64, acc: f64) {
        let acc = if acc.is_nan() {
            String::new()
        } else {
            format!("  acc {:.2}%", acc * 100.0)
        };
        self.bar.set_message(format!(
            "loss {loss:.4}{acc}  {:.0} items/s",
            self.throughput()
        ));
    }

    /// Items per second since the bar started.
    pub fn throughput(&self) -> f64 {
        let secs = self.bar.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.bar.position() as f64 / secs
        } else {
            0.0
        }
    }

    /// Replaces the label, e.g. with the next epoch's number.
    pub fn set_label(&self, label: &str) {
        self.bar.set_prefix(label.to_string());
    }

    /// Prints a line above the bar (or plainly on stderr when the bar is hidden), keeping the
    /// bar intact below it.
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Items done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// The message currently shown after the counts (loss, accuracy, throughput).
    pub fn message(&self) -> String {
        self.bar.message()
    }

    /// Time since the bar started.
    pub fn elapsed(&self) -> Duration {
        self.bar.elapsed()
    }

    /// True when the bar does not draw.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// Stops the bar, leaving its last state on screen.
    pub fn finish(&self) {
        self.bar.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bar_counts_and_formats_without_panicking() {
        let p = Progress::hidden(100, "epoch 1");
        assert!(p.is_hidden());
        for _ in 0..10 {
            p.inc(10);
            p.set_metrics(0.123456, 0.9);
        }
        assert_eq!(p.position(), 100);
        let m = p.message();
        assert!(m.starts_with("loss 0.1235  acc 90.00%  "), "{m}");
        assert!(m.ends_with(" items/s"), "{m}");
        p.set_metrics(f64::INFINITY, f64::NAN);
        assert!(p.message().starts_with("loss inf  "), "{}", p.message());
        p.set_label("epoch 2");
        p.println("a line while the bar runs");
        p.inc(5); // past the total: the count goes on
        assert_eq!(p.position(), 105);
        p.finish();
        assert!(p.throughput() >= 0.0);
    }

    #[test]
    fn new_hides_when_stderr_is_not_a_terminal() {
        let p = Progress::new(3, "x");
        if !std::io::stderr().is_terminal() {
            assert!(p.is_hidden());
        }
        p.inc(3);
        p.finish();
    }
}
