//! Output a person would rather look at than read: feature-map grids and training curves as
//! PNG, and a progress bar for long loops.
//!
//! The pictures need the `viz` feature, the progress bar the `progress` feature (both on by
//! default); this module exists when either is on.
//!
//! - [`feature_maps`]: one tile per channel of a `[C, H, W]` activation, rows of layers
//!   stacked into one labelled picture ([`save_feature_maps`]).
//! - [`curves`]: line charts of losses and accuracies over training ([`plot_curves`]).
//! - [`progress`]: a terminal progress bar showing loss, accuracy and throughput
//!   ([`Progress`]), silent when stderr is not a terminal.
//!
//! Charts and labels are drawn with plotters, their text set in DejaVu Sans, which the
//! crate carries: no system font is needed.
//!
//! Functions that write files return [`VizError`], whose message names the path.

#[cfg(feature = "viz")]
pub mod confusion;
#[cfg(feature = "viz")]
pub mod curves;
#[cfg(feature = "viz")]
pub mod feature_maps;
#[cfg(feature = "progress")]
pub mod progress;
#[cfg(feature = "viz")]
mod text;

#[cfg(feature = "viz")]
pub use confusion::{plot_confusion, render_confusion};
#[cfg(feature = "viz")]
pub use curves::{Axis, ChartOptions, Series, plot_curves, plot_curves_with, render_chart};
#[cfg(feature = "viz")]
pub use feature_maps::{
    Colormap, GridOptions, Scale, feature_map_grid, feature_map_rows, save_feature_maps,
    save_feature_maps_with, try_feature_map_grid,
};
#[cfg(feature = "progress")]
pub use progress::Progress;

#[cfg(feature = "viz")]
use std::fmt;
#[cfg(feature = "viz")]
use std::path::{Path, PathBuf};

/// Why a picture could not be made or written. Converts into [`crate::Error`] with `?`
/// (see [`crate::error`]).
#[cfg(feature = "viz")]
#[derive(Debug)]
#[non_exhaustive]
pub enum VizError {
    /// The tensor or a grid option was refused before anything was drawn.
    Input(crate::Error),
    /// A chart's options or series were refused before anything was drawn: a picture too
    /// small to label or too large, a series whose x positions do not match its values.
    Chart {
        /// What is wrong.
        why: String,
    },
    /// A confusion matrix's class names do not match it, or it has no class or too many.
    Confusion {
        /// What is wrong.
        why: String,
    },
    /// Creating the directory or encoding and writing the PNG failed.
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// What the filesystem or the encoder reported.
        source: image::ImageError,
    },
}

#[cfg(feature = "viz")]
impl fmt::Display for VizError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VizError::Input(e) => write!(f, "{e}"),
            VizError::Chart { why } => write!(f, "plot_curves: {why}"),
            VizError::Confusion { why } => write!(f, "plot_confusion: {why}"),
            VizError::Write { path, source } => {
                write!(f, "cannot write PNG {}: {source}", path.display())
            }
        }
    }
}

#[cfg(feature = "viz")]
impl std::error::Error for VizError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VizError::Input(e) => Some(e),
            VizError::Chart { .. } | VizError::Confusion { .. } => None,
            VizError::Write { source, .. } => Some(source),
        }
    }
}

#[cfg(feature = "viz")]
impl From<crate::Error> for VizError {
    fn from(e: crate::Error) -> Self {
        VizError::Input(e)
    }
}

/// Writes `img` as PNG to `path` (whatever its extension), creating missing parent
/// directories first.
#[cfg(feature = "viz")]
pub(crate) fn write_png(img: &image::RgbImage, path: &Path) -> Result<(), VizError> {
    let wrap = |source| VizError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| wrap(image::ImageError::IoError(e)))?;
    }
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(wrap)
}

#[cfg(all(test, feature = "viz"))]
mod tests {
    use super::*;

    #[test]
    fn write_error_names_the_path() {
        let dir = std::env::temp_dir().join(format!("tapegrad-viz-mod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A regular file where a directory is needed: creating the parent fails.
        let blocker = dir.join("blocker");
        std::fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("out.png");
        let err = write_png(&image::RgbImage::new(2, 2), &path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cannot write PNG "), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(std::error::Error::source(&err).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
