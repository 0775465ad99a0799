//! Which instruction-set tier the kernels run on.
//!
//! The hot kernels are written once, over a vector type, and compiled for three tiers:
//! AVX-512 (F, BW, DQ and VL), AVX2 with FMA, and a portable baseline (SSE2 on x86-64, NEON
//! on aarch64, whatever the compiler targets elsewhere). By default the widest tier the CPU
//! runs is used; [`set_isa`] or the `TAPEGRAD_ISA` environment variable (`avx512`, `avx2` or
//! `generic`) forces a lower one, to compare tiers side by side or to test the narrower code
//! on a wide machine. A tier the CPU cannot run is never used: asking for it gives the widest
//! one below it.
//!
//! ```
//! use tapegrad::runtime::{Isa, isa, set_isa};
//! let widest = isa();
//! assert_eq!(set_isa(Some(Isa::Generic)), Isa::Generic); // every machine runs it
//! assert_eq!(isa(), Isa::Generic);
//! set_isa(None); // back to the default
//! assert_eq!(isa(), widest);
//! ```

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set tier of the kernels, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// The baseline the crate is compiled for: SSE2 on x86-64, NEON on aarch64.
    Generic,
    /// x86-64 with AVX2 and FMA: 8 f32 lanes, 16 vector registers.
    Avx2,
    /// x86-64 with AVX-512 F, BW, DQ and VL: 16 f32 lanes, 32 vector registers.
    Avx512,
}

impl Isa {
    /// Every tier, narrowest first.
    pub const ALL: [Isa; 3] = [Isa::Generic, Isa::Avx2, Isa::Avx512];

    /// The tier's name as `TAPEGRAD_ISA` spells it: `generic`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The tier named `name` (as [`Isa::name`] spells it, any case), if there is one.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU runs the tier.
    pub fn supported(self) -> bool {
        self <= widest_supported()
    }

    /// f32 lanes in one vector of the tier (what the portable tier's code is written for:
    /// two SSE or NEON registers).
    pub fn f32_lanes(self) -> usize {
        match self {
            Isa::Generic | Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Option<Isa> {
        Isa::ALL.get(usize::from(c).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest tier this CPU runs, detected once.
pub fn widest_supported() -> Isa {
    static WIDEST: AtomicU8 = AtomicU8::new(0);
    if let Some(i) = Isa::from_code(WIDEST.load(Ordering::Relaxed)) {
        return i;
    }
    let i = detect();
    WIDEST.store(i.code(), Ordering::Relaxed);
    i
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
        Isa::Avx512
    } else if has!("avx2") && has!("fma") {
        Isa::Avx2
    } else {
        Isa::Generic
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Generic
}

/// The tier asked for by [`set_isa`] (0: none; else `Isa::code`).
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// The tier asked for by `TAPEGRAD_ISA`, read once (0: none or unreadable).
fn from_env() -> u8 {
    static ENV: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *ENV.get_or_init(|| {
        let Ok(v) = std::env::var("TAPEGRAD_ISA") else {
            return 0;
        };
        match Isa::from_name(&v) {
            Some(i) => i.code(),
            None => {
                eprintln!(
                    "tapegrad: TAPEGRAD_ISA={v:?} is not a tier (generic, avx2, avx512): ignored"
                );
                0
            }
        }
    })
}

/// The tier the kernels run on now: the one [`set_isa`] or `TAPEGRAD_ISA` asked for, or by
/// default the widest this CPU runs, never wider than that.
pub fn isa() -> Isa {
    let asked = match CHOSEN.load(Ordering::Relaxed) {
        0 => from_env(),
        c => c,
    };
    let widest = widest_supported();
    Isa::from_code(asked).map_or(widest, |a| a.min(widest))
}

/// Makes the kernels run on `isa` from now on (`None`: back to `TAPEGRAD_ISA` or the
/// default) and returns the tier they will use, which is `isa` where the CPU runs it and the
/// widest tier below it otherwise. Every tier gives results within rounding of the others
/// (the wider ones fuse multiply-adds); kernels already running finish on the old tier.
pub fn set_isa(isa: Option<Isa>) -> Isa {
    CHOSEN.store(isa.map_or(0, Isa::code), Ordering::Relaxed);
    self::isa()
}

/// The CPU's model name and the vector features the tiers look at, for benchmark records,
/// e.g. `("Intel(R) Xeon(R) Processor", "avx2 fma avx512f avx512bw avx512dq avx512vl")`.
pub fn cpu_description() -> (String, String) {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let mut flags = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        for (name, on) in [
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512dq", has!("avx512dq")),
            ("avx512vl", has!("avx512vl")),
        ] {
            if on {
                flags.push(name);
            }
        }
    }
    (model, flags.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for i in Isa::ALL {
            assert_eq!(Isa::from_name(i.name()), Some(i));
            assert_eq!(Isa::from_name(&i.name().to_uppercase()), Some(i));
        }
        assert_eq!(Isa::from_name("avx1024"), None);
        assert!(Isa::Generic.supported());
    }

    #[test]
    fn a_tier_the_cpu_lacks_is_capped_at_the_widest_it_has() {
        // No other test of this module changes the choice, and kernels are correct on every
        // tier, so a race with another test's product changes nothing but its speed.
        let widest = widest_supported();
        assert_eq!(set_isa(Some(Isa::Avx512)), widest.min(Isa::Avx512));
        assert_eq!(set_isa(Some(Isa::Generic)), Isa::Generic);
        set_isa(None);
        assert!(isa() <= widest);
    }
}
