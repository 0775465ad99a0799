//! The sizes of one convolution, shared by every algorithm.

use crate::kernels::window::Window;

/// Every size of one convolution: input `[n, c, h, w]`, weight `[o, c / groups, kh, kw]`,
/// output `[n, o, ho, wo]`, and the kernel's window (per-axis stride, padding, dilation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// The kernel's size, stride, padding and dilation.
    pub win: Window,
    /// Channel groups (at least 1, dividing `c` and `o`).
    pub groups: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

impl ConvGeom {
    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Weight taps per output channel, `cg · kh · kw`: the rows of the column matrix.
    pub fn taps(&self) -> usize {
        self.cg() * self.win.kh * self.win.kw
    }
    /// Output positions per channel, `ho · wo`: the columns of the column matrix.
    pub fn out_plane(&self) -> usize {
        self.ho * self.wo
    }
    /// Elements of one input channel, `h · w`.
    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }
    /// True when the column matrix of a group is its input slice itself (a 1×1 kernel with
    /// stride 1 and no padding), so `im2col` can be skipped.
    pub fn is_pointwise(&self) -> bool {
        self.win.kh == 1
            && self.win.kw == 1
            && self.win.sh == 1
            && self.win.sw == 1
            && self.win.ph == 0
            && self.win.pw == 0
    }
    /// How many output rows one band of the column matrix covers: as many as keep the band
    /// (`taps × rows·wo` elements of `elem` bytes) within a share of the L2 cache, but at
    /// least enough for `min_cols` columns, and at least 1.
    pub fn band_rows(&self, elem: usize, min_cols: usize) -> usize {
        // A quarter of a 1 MiB L2 measured best on S5 (3×3, 64 channels, 56×56).
        let budget = 256usize << 10;
        let row_bytes = self.taps() * self.wo * elem;
        (budget / row_bytes.max(1))
            .max(min_cols.div_ceil(self.wo.max(1)))
            .clamp(1, self.ho.max(1))
    }
    /// The output rows `0..ho` in bands of `band` rows (the last one shorter).
    pub(crate) fn bands(
        &self,
        band: usize,
    ) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let ho = self.ho;
        (0..ho).step_by(band).map(move |r0| r0..(r0 + band).min(ho))
    }
    /// The slice of the input (or its gradient) holding batch item `b`, group `g`.
    pub(crate) fn in_range(&self, b: usize, g: usize) -> std::ops::Range<usize> {
        let start = (b * self.c + g * self.cg()) * self.in_plane();
        start..start + self.cg() * self.in_plane()
    }
    /// The slice of the output (or its gradient) holding batch item `b`, group `g`.
    pub(crate) fn out_range(&self, b: usize, g: usize) -> std::ops::Range<usize> {
        let start = (b * self.o + g * self.og()) * self.out_plane();
        start..start + self.og() * self.out_plane()
    }
    /// The slice of the weight (or its gradient) holding group `g`.
    pub(crate) fn weight_range(&self, g: usize) -> std::ops::Range<usize> {
        let start = g * self.og() * self.taps();
        start..start + self.og() * self.taps()
    }
}
