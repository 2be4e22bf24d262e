#!/usr/bin/env python3
"""Independent computation of PBO (CSCV; Bailey, Borwein, Lopez de Prado and Zhu 2017) and the
deflated Sharpe ratio (Bailey and Lopez de Prado 2014) for the trial matrix in matrix.csv,
written from the papers with Python's standard library only (no code shared with tradedsl).
Writes expected.json. Run: python3 reference.py (from this directory)."""
import csv, itertools, json, math, statistics

def load():
    with open("matrix.csv") as f:
        rows = [list(map(float, r)) for r in csv.reader(f) if r and not r[0].startswith("#")]
    # rows are periods, columns trials
    return [list(col) for col in zip(*rows)]

def sr(x):
    m = sum(x) / len(x)
    v = sum((a - m) ** 2 for a in x) / (len(x) - 1)
    return m / math.sqrt(v) if v > 0 else float("nan")

def rank_of(values, star):
    key = lambda x: float("-inf") if math.isnan(x) else x
    v = key(values[star])
    below = sum(1 for x in values if key(x) < v)
    equal = sum(1 for x in values if key(x) == v)
    return below + (equal + 1) / 2

def pbo(trials, s):
    n, t = len(trials), len(trials[0])
    size = t // s
    skip = t - size * s
    blocks = [list(range(skip + b * size, skip + (b + 1) * size)) for b in range(s)]
    logits = []
    for train in itertools.combinations(range(s), s // 2):
        rows_in = [i for b in train for i in blocks[b]]
        rows_out = [i for b in range(s) if b not in train for i in blocks[b]]
        ins = [sr([tr[i] for i in rows_in]) for tr in trials]
        outs = [sr([tr[i] for i in rows_out]) for tr in trials]
        star = max((i for i in range(n) if not math.isnan(ins[i])), key=lambda i: (ins[i], -i))
        w = rank_of(outs, star) / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return sum(1 for l in logits if l <= 0) / len(logits), logits

def dsr(best, sharpes):
    z = statistics.NormalDist()
    n = len(sharpes)
    v = statistics.variance(sharpes)
    g = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - g) * z.inv_cdf(1 - 1 / n) + g * z.inv_cdf(1 - 1 / (n * math.e)))
    s = sr(best)
    m = sum(best) / len(best)
    m2 = sum((x - m) ** 2 for x in best) / len(best)
    skew = sum((x - m) ** 3 for x in best) / len(best) / m2 ** 1.5
    kurt = sum((x - m) ** 4 for x in best) / len(best) / m2 ** 2
    return z.cdf((s - sr0) * math.sqrt(len(best) - 1) / math.sqrt(1 - skew * s + (kurt - 1) / 4 * s * s))

trials = load()
sharpes = [sr(t) for t in trials]
best = max(range(len(trials)), key=lambda i: (sharpes[i], -i))
out = {}
for s in (4, 8, 16):
    p, logits = pbo(trials, s)
    out[f"pbo_{s}"] = p
    out[f"logits_{s}_first"] = logits[:5]
out["best"] = best
out["deflated_sharpe"] = dsr(trials[best], sharpes)
with open("expected.json", "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out, indent=1))
