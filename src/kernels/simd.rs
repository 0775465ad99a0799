//! Compiling a loop for the CPU it runs on. The crate is built for the baseline x86-64
//! (SSE2), so the generic loops vectorise four f32 lanes wide; [`avx2!`] builds a second copy
//! of a function with AVX2 and FMA enabled and picks it at run time. Additions and
//! multiplications are not fused or reordered by the wider copy, so both give the same bits.

/// Whether this machine has AVX2 and FMA, detected once.
#[cfg(target_arch = "x86_64")]
pub(crate) fn available() -> bool {
    static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *YES.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// `dst.copy_from_slice(src)` for short runs, inline: eight elements at a time and an
/// overlapping last eight, rather than a call to `memcpy` for a few dozen bytes.
#[inline(always)]
pub(crate) fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    const W: usize = 8;
    let n = dst.len();
    let src = &src[..n];
    if n < W {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s;
        }
        return;
    }
    let mut i = 0;
    while i + W <= n {
        let d: &mut [T; W] = (&mut dst[i..i + W]).try_into().expect("eight elements");
        *d = src[i..i + W].try_into().expect("eight elements");
        i += W;
    }
    if i < n {
        let d: &mut [T; W] = (&mut dst[n - W..]).try_into().expect("eight elements");
        *d = src[n - W..].try_into().expect("eight elements");
    }
}

/// Defines a function generic over `T: Float` whose body is compiled twice, for the baseline
/// and for AVX2 + FMA, and runs the AVX2 copy when the CPU has it. Write it as a plain
/// function (`fn` or `unsafe fn`, arguments as `name: Type`) inside the macro.
macro_rules! avx2 {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$T:ident: Float>($($a:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name<$T: Float>($($a: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body<$T: Float>($($a: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide<$T: Float>($($a: $ty),*) $(-> $ret)? {
                    body($($a),*)
                }
                if $crate::kernels::simd::available() {
                    // SAFETY: the CPU has the features `wide` was compiled for.
                    return unsafe { wide($($a),*) };
                }
            }
            body($($a),*)
        }
    };
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident<$T:ident: Float>($($a:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis unsafe fn $name<$T: Float>($($a: $ty),*) $(-> $ret)? {
            #[inline(always)]
            unsafe fn body<$T: Float>($($a: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide<$T: Float>($($a: $ty),*) $(-> $ret)? {
                    // SAFETY: the caller's contract, passed on.
                    unsafe { body($($a),*) }
                }
                if $crate::kernels::simd::available() {
                    // SAFETY: the CPU has the features `wide` was compiled for; the rest is
                    // the caller's contract.
                    return unsafe { wide($($a),*) };
                }
            }
            // SAFETY: the caller's contract, passed on.
            unsafe { body($($a),*) }
        }
    };
}
pub(crate) use avx2;
