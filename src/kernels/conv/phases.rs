//! A row split into its two column phases (the even and the odd columns) and merged back:
//! how stride-2 convolutions read their input at unit stride.

use crate::float::Float;
use crate::runtime::simd::tiers;

tiers! {
    /// `even[k] = row[2k]`, `odd[k] = row[2k + 1]`: a row split into its two column phases
    /// (`even` has `⌈len / 2⌉` elements, `odd` `⌊len / 2⌋`), both in one pass so that the
    /// loads are whole vectors and shuffles.
    pub(super) fn split_phases<T: Float>(row: &[T], even: &mut [T], odd: &mut [T]) {
        split_phases_inline(row, even, odd)
    }
}

/// [`split_phases`] inlined into a caller that is itself compiled per tier (a call per
/// row cost as much as the split on short rows).
#[inline(always)]
pub(super) fn split_phases_inline<T: Float>(row: &[T], even: &mut [T], odd: &mut [T]) {
    let m = odd.len();
    let (pairs, even_m) = (&row[..2 * m], &mut even[..m]);
    for ((pair, e), o) in pairs
        .chunks_exact(2)
        .zip(even_m.iter_mut())
        .zip(odd.iter_mut())
    {
        *e = pair[0];
        *o = pair[1];
    }
    if even.len() > m {
        even[m] = row[2 * m];
    }
}

tiers! {
    /// `row[2k] += even[k]`, `row[2k + 1] += odd[k]`: [`split_phases`]'s adjoint.
    pub(super) fn merge_phases_add<T: Float>(row: &mut [T], even: &[T], odd: &[T]) {
        merge_phases_add_inline(row, even, odd)
    }
}

/// [`merge_phases_add`] inlined into a caller compiled per tier.
#[inline(always)]
pub(super) fn merge_phases_add_inline<T: Float>(row: &mut [T], even: &[T], odd: &[T]) {
    let m = odd.len();
    let (pairs, even_m) = (&mut row[..2 * m], &even[..m]);
    for ((pair, &e), &o) in pairs.chunks_exact_mut(2).zip(even_m).zip(odd) {
        pair[0] += e;
        pair[1] += o;
    }
    if even.len() > m {
        row[2 * m] += even[m];
    }
}
