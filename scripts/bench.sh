#!/usr/bin/env bash
# Benchmarks (not run by CI). Builds the 1M-bar series of shared/reference/make_big.py once,
# then measures:
#   1. bars per second inside the process (criterion: benches/backtest.rs), and
#   2. the whole `dsl backtest` process on the 1M-bar CSV, journal included (wall time),
#   3. rule evaluation: compiled guardrails vs the reference interpreter vs rhai
#      (benches/rules.rs), and
#   4. hot reload (rebuild and swap; file write to swap through the watcher) and the whole
#      `dsl validate` process on the shipped bundle (benches/reload.rs).
#   5. cost per symbol-bar at 505 and 5,050 S&P symbols (benches/scaling.rs).
#   6. a paper `dsl run` of the example bot (replay, max speed, phases on) against its
#      `dsl backtest` (best of 5 wall times each, and their ratio).
#   7. `dsl sweep` of 100 SMA(fast, slow) pairs on the 1M-bar series, whole process, on 1 and
#      on 2 worker threads: wall time, trials per second, peak memory (and at 20 trials, to
#      show memory does not grow with the trial count).
# Needs python3 with pip (numpy and pandas are installed into target/bench/venv) and the
# shared workspace next to the repository (override with TRADEDSL_SHARED=path/to/shared).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${TRADEDSL_SHARED:-../shared}
out=target/bench
csv=$out/eurusd_big_1000000.csv
mkdir -p "$out"
if [ ! -s "$csv" ]; then
    if [ ! -x "$out/venv/bin/python" ]; then
        python3 -m venv "$out/venv"
        "$out/venv/bin/pip" install --quiet numpy pandas
    fi
    "$out/venv/bin/python" "$shared/reference/make_big.py" --minutes --out "$out" 1000000
fi

echo "== in-process: reference SMA(10/30) crossover on 1M bars"
TRADEDSL_BENCH_CSV="$csv" cargo bench --bench backtest

echo "== whole process: dsl backtest on the 1M-bar CSV, journal included"
cargo build --release --quiet
cat > "$out/sma.yaml" <<'YAML'
kind: strategy
name: sma_crossover
universe: [EURUSD]
timeframe: 1m
params: {fast: 10, slow: 30}
entry: crosses_above(sma(close, fast), sma(close, slow))
exit: crosses_below(sma(close, fast), sma(close, slow))
sizing: all_cash
YAML
TIMEFORMAT='%3R s wall'
for i in 1 2 3 4 5; do
    rm -f "$out"/journal.sqlite*
    time target/release/dsl backtest "$out/sma.yaml" --data "EURUSD=$csv" --journal "$out/journal.sqlite" --quiet
done
target/release/dsl backtest "$out/sma.yaml" --data "EURUSD=$csv" --no-journal --timings --quiet

echo "== rules: guardrail evaluations per second"
cargo bench --bench rules

echo "== hot reload and validate"
cargo bench --bench reload

echo "== scaling: ns per symbol-bar, 505 and 5,050 S&P symbols"
TRADEDSL_SHARED="$shared" cargo bench --bench scaling

echo "== paper run vs backtest of examples/bot.yaml (best of 5 wall times)"
TIMEFORMAT='%3R'
best() { sort -n | head -1; }
run_t=$(for i in 1 2 3 4 5; do rm -rf "$out/paper"; mkdir -p "$out/paper"
    { time target/release/dsl run examples/bot.yaml --journal "$out/paper/j.sqlite" --quiet >/dev/null; } 2>&1; done | best)
bt_t=$(for i in 1 2 3 4 5; do rm -rf "$out/paper"; mkdir -p "$out/paper"
    { time target/release/dsl backtest examples/bot.yaml --journal "$out/paper/j.sqlite" --quiet >/dev/null; } 2>&1; done | best)
echo "paper run ${run_t} s, backtest ${bt_t} s, ratio $(python3 -c "print(round($run_t / $bt_t, 2))")"

echo "== sweep: 100 SMA(fast, slow) pairs on the 1M-bar series, whole process"
cat > "$out/sma_sweep.yaml" <<'YAML'
kind: strategy
name: sma_crossover
universe: [EURUSD]
timeframe: 1m
params:
  fast: {value: 10, range: [5, 50], step: 5}
  slow: {value: 60, range: [60, 150], step: 10}
entry: crosses_above(sma(close, fast), sma(close, slow))
exit: crosses_below(sma(close, fast), sma(close, slow))
sizing: all_cash
YAML
for jobs in 1 2; do
    /usr/bin/time -f "jobs=$jobs: %e s wall, %M KB peak (100 trials)" \
        target/release/dsl sweep "$out/sma_sweep.yaml" --data "EURUSD=$csv" --no-journal --quiet --jobs "$jobs"
done
/usr/bin/time -f "jobs=2: %e s wall, %M KB peak (20 trials)" \
    target/release/dsl sweep "$out/sma_sweep.yaml" --data "EURUSD=$csv" --no-journal --quiet --constraint "slow < 80"
