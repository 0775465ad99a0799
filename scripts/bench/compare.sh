#!/usr/bin/env bash
# Runs the kernel benchmark on both sides, interleaved, and prints the ratio table:
#   scripts/bench/compare.sh [RUNS] [THREADS] [-- extra flags for both sides, e.g. --only S2,pool]
# Each run is one PyTorch pass (torch_conv.py) then one tapegrad pass (bench_ops), so slow
# drift of a shared machine hits both sides alike. Needs `pip install torch numpy`.
# Results land in bench-results/<date>-t<THREADS>/; the table is printed and saved as table.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
threads=${2:-2}
shift $(( $# >= 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
extra=("$@")
# The same allocator setting for both sides (see torch_conv.py's notes): without it glibc
# hands PyTorch's large temporaries back to the kernel and faults them in again every call.
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824
cargo build --release --example bench_ops
out="bench-results/$(date +%Y%m%d-%H%M)-t${threads}"
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  echo "== run $i/$runs: pytorch" >&2
  python3 scripts/bench/torch_conv.py --threads "$threads" --json "$out/torch_$i.json" "${extra[@]}" >/dev/null
  echo "== run $i/$runs: tapegrad" >&2
  target/release/examples/bench_ops --threads "$threads" --peak --json "$out/tapegrad_$i.json" "${extra[@]}" >/dev/null
done
python3 scripts/bench/compare.py "$out"/torch_*.json -- "$out"/tapegrad_*.json | tee "$out/table.md"
