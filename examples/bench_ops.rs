//! The kernel benchmark, side by side with PyTorch: runs the cases of `../shared/bench` (conv2d
//! S1-S5 forward and forward+backward, max_pool2d, the MNIST CNN training step, matmul, the
//! cost of one small op) with the same timing method and the same JSON as `torch_conv.py`.
//!
//! ```text
//! cargo run --release --example bench_ops -- [--threads N] [--rounds R] [--only S2,pool]
//!     [--min-time S] [--min-reps N] [--warmup N] [--warmup-rounds N] [--json FILE] [--f64]
//!     [--peak] [--nets]
//! ```
//!
//! `--nets` adds the net cases: the convolutions of ResNet-18 and MobileNetV2, layer by
//! layer and whole-network, at batch 1 and 32 (`benches/common/cases.rs` lists them); an
//! `--only` key naming `R18`, `MV2`, `resnet18` or `mobilenetv2`, or the key `nets`, selects
//! among them without `--nets`.
//!
//! Method: untimed warm-up passes over every case, then rounds; each round runs every case
//! in turn (so drift of a shared machine shows as spread), each case a few warm-up calls and
//! then calls timed one by one until both `--min-reps` and `--min-time` are reached. A
//! round's figure is its median call; the report gives the median of the round medians and
//! their min and max. `--f64` runs the same cases in double precision. `--peak` also
//! measures the f32 multiply-add peak of the instruction-set tier in use on the same threads
//! (`tapegrad::runtime::fma_peak_gflops`), once before the cases and once after, and records
//! the higher; the JSON names the CPU, its vector features and the tier
//! (`TAPEGRAD_ISA=avx2` forces a narrower one).
//! `scripts/bench/compare.sh` runs both sides interleaved and prints the ratio table.

#[path = "../benches/common/cases.rs"]
mod cases;

use std::time::Instant;

struct Options {
    threads: usize,
    rounds: usize,
    min_time: f64,
    min_reps: usize,
    warmup: usize,
    warmup_rounds: usize,
    only: Vec<String>,
    json: Option<String>,
    f64: bool,
    peak: bool,
    nets: bool,
}

const USAGE: &str = "usage: bench_ops [--threads N] [--rounds R] [--min-time SECONDS] \
[--min-reps N] [--warmup N] [--warmup-rounds N] [--only S2,pool] [--json FILE] [--f64] [--peak] \
[--nets]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        threads: 2,
        rounds: 5,
        min_time: 0.25,
        min_reps: 5,
        warmup: 3,
        warmup_rounds: 1,
        only: Vec::new(),
        json: None,
        f64: false,
        peak: false,
        nets: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        match flag.as_str() {
            "--f64" => o.f64 = true,
            "--peak" => o.peak = true,
            "--nets" => o.nets = true,
            _ => {}
        }
        if flag == "--f64" || flag == "--peak" || flag == "--nets" {
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} wants a whole number, got {v:?}"))
        };
        match flag.as_str() {
            "--threads" => o.threads = num(&value)?,
            "--rounds" => o.rounds = num(&value)?.max(1),
            "--min-reps" => o.min_reps = num(&value)?.max(1),
            "--warmup" => o.warmup = num(&value)?,
            "--warmup-rounds" => o.warmup_rounds = num(&value)?,
            "--min-time" => {
                o.min_time = value
                    .parse()
                    .map_err(|_| format!("--min-time wants seconds, got {value:?}"))?
            }
            "--only" => o.only = value.split(',').map(|s| s.trim().to_string()).collect(),
            "--json" => o.json = Some(value),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// Runs `f` `warmup` times, then times calls one by one until both limits are reached:
/// the median call in microseconds, and the number of timed calls.
fn time_round(f: &mut dyn FnMut(), warmup: usize, min_reps: usize, min_time: f64) -> (f64, usize) {
    for _ in 0..warmup {
        f();
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < min_reps || start.elapsed().as_secs_f64() < min_time {
        let t0 = Instant::now();
        f();
        times.push(t0.elapsed().as_nanos() as f64 / 1e3);
    }
    (median(&mut times), times.len())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A `kB` field of `/proc/self/status` (Linux only; None elsewhere).
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let o = parse_args().unwrap_or_else(|e| {
        eprintln!("bench_ops: {e}");
        std::process::exit(2)
    });
    tapegrad::threads::set_num_threads(o.threads);
    let rss_before = status_kib("VmRSS");
    let mut cases = if o.f64 {
        cases::cases::<f64>(&o.only, o.nets)
    } else {
        cases::cases::<f32>(&o.only, o.nets)
    };
    if cases.is_empty() {
        eprintln!("bench_ops: no case id contains any of {:?}", o.only);
        std::process::exit(2);
    }
    let peak_before = o.peak.then(|| tapegrad::runtime::fma_peak_gflops(1.0));
    for _ in 0..o.warmup_rounds {
        for c in &mut cases {
            time_round(&mut c.run, o.warmup, o.min_reps, o.min_time / 5.0);
        }
    }
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut reps = vec![0usize; cases.len()];
    for r in 0..o.rounds {
        for (k, c) in cases.iter_mut().enumerate() {
            let (us, n) = time_round(&mut c.run, o.warmup, o.min_reps, o.min_time);
            per[k].push(us);
            reps[k] += n;
        }
        eprintln!("round {}/{} done", r + 1, o.rounds);
    }

    let tool = format!(
        "tapegrad {}{}",
        env!("CARGO_PKG_VERSION"),
        if o.f64 { " f64" } else { "" }
    );
    let peak = peak_before.map(|p| p.max(tapegrad::runtime::fma_peak_gflops(1.0)));
    let (cpu, flags) = tapegrad::runtime::cpu_description();
    let isa = tapegrad::runtime::isa();
    println!(
        "# {tool}, threads={}, rounds={}, isa={isa}, cpu={cpu} [{flags}]",
        tapegrad::threads::num_threads(),
        o.rounds
    );
    if let Some(p) = peak {
        println!("# f32 multiply-add peak on {isa}: {p:.1} GFLOP/s");
    }
    println!(
        "{:34} {:>12} {:>24} {:>9}",
        "case", "median us", "spread us (min..max)", "GFLOP/s"
    );
    let mut results = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let v = &per[k];
        let med = median(&mut v.clone());
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        let gf = c.flops.map(|f| f as f64 / (med * 1e3));
        let gfs = gf.map_or(String::new(), |g| format!("{g:9.1}"));
        println!(
            "{:34} {med:12.1} {:>11}..{:<11} {gfs}",
            c.id,
            format!("{lo:.1}"),
            format!("{hi:.1}")
        );
        let num = |x: Option<f64>| x.map_or("null".to_string(), |x| format!("{x}"));
        let rounds: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
        results.push(format!(
            "  {{\"id\": \"{}\", \"flops\": {}, \"median_us\": {med}, \"min_us\": {lo}, \
             \"max_us\": {hi}, \"round_medians_us\": [{}], \"reps\": {}, \"gflops\": {}}}",
            c.id,
            c.flops.map_or("null".to_string(), |f| f.to_string()),
            rounds.join(", "),
            reps[k],
            num(gf)
        ));
    }
    // Peak resident memory of the whole run, and what the process held before the cases'
    // tensors existed: with `--only` one case, their difference is that case's footprint.
    if let (Some(before), Some(peak)) = (rss_before, status_kib("VmHWM")) {
        println!(
            "# peak RSS {:.1} MiB, before the cases {:.1} MiB, difference {:.1} MiB",
            peak as f64 / 1024.0,
            before as f64 / 1024.0,
            (peak - before) as f64 / 1024.0
        );
    }
    if let Some(path) = &o.json {
        let json = format!(
            "{{\"tool\": \"{tool}\", \"threads\": {}, \"rounds\": {}, \"machine\": \"{}\",\n \
             \"cpu\": \"{}\", \"cpu_flags\": \"{flags}\", \"isa\": \"{isa}\", \
             \"peak_gflops\": {},\n \"results\": [\n{}\n]}}\n",
            o.threads,
            o.rounds,
            std::env::consts::ARCH,
            cpu.replace('\\', "\\\\").replace('"', "\\\""),
            peak.map_or("null".to_string(), |p| format!("{p:.1}")),
            results.join(",\n")
        );
        if let Err(e) = std::fs::write(path, json) {
            eprintln!("bench_ops: cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
