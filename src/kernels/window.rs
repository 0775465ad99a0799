//! A 2-D sliding window, shared by convolution kernels and pooling windows, and the one
//! formula for how many positions it takes along an axis.

/// The per-axis size, stride, padding and dilation of a 2-D window (height first). The ops
/// validate them; the kernels assume sizes, strides and dilations of at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Padding above and below.
    pub ph: usize,
    /// Padding left and right.
    pub pw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
}

/// The number of window positions along one axis, as PyTorch computes it: `⌊(len + 2·pad −
/// dil·(k − 1) − 1) / stride⌋ + 1`, with `⌈…⌉` in ceil mode, where ceil mode then drops a
/// last window that would start at or past `len + pad` (wholly in the right padding).
/// `Some(0)` when the dilated kernel is longer than the padded input; `None` when the kernel
/// or the stride is 0 or the arithmetic overflows.
pub fn output_len(
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    ceil_mode: bool,
) -> Option<usize> {
    if k == 0 || stride == 0 {
        return None;
    }
    let span = dil.checked_mul(k - 1)?.checked_add(1)?;
    let padded = pad.checked_mul(2)?.checked_add(len)?;
    let Some(room) = padded.checked_sub(span) else {
        return Some(0);
    };
    let mut out = if ceil_mode {
        room.div_ceil(stride)
    } else {
        room / stride
    } + 1;
    if ceil_mode && (out - 1).checked_mul(stride)? >= len + pad {
        out -= 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_by_hand() {
        // (len, k, stride, pad, dil, floor, ceil), each worked out by hand; the ceil-mode
        // edge cases are in max_pool2d's tests, through the op.
        for (len, k, s, p, d, floor, ceil) in [
            (5, 3, 1, 0, 1, 3, 3),
            (7, 3, 2, 1, 1, 4, 4),
            (7, 3, 1, 0, 2, 3, 3),
            // The dilated kernel (extent 5) longer than the padded input (4): no window.
            (2, 3, 1, 1, 2, 0, 0),
        ] {
            assert_eq!(
                output_len(len, k, s, p, d, false),
                Some(floor),
                "{len} {k} {s} {p} {d}"
            );
            assert_eq!(
                output_len(len, k, s, p, d, true),
                Some(ceil),
                "{len} {k} {s} {p} {d}"
            );
        }
        assert_eq!(output_len(5, 0, 1, 0, 1, false), None);
        assert_eq!(output_len(5, 3, 0, 0, 1, false), None);
        assert_eq!(output_len(5, 3, 1, usize::MAX, 1, false), None);
        assert_eq!(output_len(5, usize::MAX, 1, 0, 2, false), None);
    }
}
