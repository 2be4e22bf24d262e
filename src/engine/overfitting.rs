//! How much of a search's best result is luck: the probability of backtest overfitting and the
//! deflated Sharpe ratio, from the trial matrix of a sweep (one column of per-period returns
//! per trial, all over the same periods).
//!
//! - **PBO** by combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado and
//!   Zhu, "The Probability of Backtest Overfitting", Journal of Computational Finance, 2017):
//!   the `T` periods are cut into `S` equal blocks (the first `T mod S` periods dropped); for
//!   each of the `C(S, S/2)` ways to pick half the blocks as in-sample, the trial with the best
//!   in-sample Sharpe ratio is found (the lowest trial number on a tie) and its out-of-sample
//!   Sharpe ratio ranked among all trials' (ascending, ties sharing their mean rank `r`); with
//!   `w = r / (N + 1)` the logit is `ln(w / (1 - w))`. PBO is the share of logits `<= 0`: how
//!   often the in-sample winner is at or below the out-of-sample median.
//! - **Deflated Sharpe ratio** (Bailey and López de Prado, "The Deflated Sharpe Ratio:
//!   Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of
//!   Portfolio Management, 2014): the probability that the best trial's true Sharpe ratio is
//!   above the best Sharpe ratio `N` trials of no skill would show,
//!   `SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))` (`g` the Euler-Mascheroni
//!   constant, `Z` the standard normal quantile, `V` the variance of the trials' Sharpe
//!   ratios), then `DSR = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 *
//!   SR^2))` with the best trial's Sharpe ratio `SR`, its returns' skewness and kurtosis (not
//!   excess) and `T` returns.
//!
//! Sharpe ratios here are per period (not annualised), with the sample standard deviation:
//! `mean / stdev`, undefined without spread. Skewness and kurtosis are the population
//! moments `m3 / m2^1.5` and `m4 / m2^2`.

use statrs::distribution::{ContinuousCDF, Normal};

/// Blocks of the CSCV split when the periods allow (the paper's choice).
pub const DEFAULT_BLOCKS: usize = 16;

/// The Euler-Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Per-period Sharpe ratio of `x`: mean / sample standard deviation (NaN with fewer than two
/// values or no spread).
pub fn sharpe(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    if var > 0.0 { mean / var.sqrt() } else { f64::NAN }
}

/// The outcome of CSCV.
#[derive(Debug, Clone, PartialEq)]
pub struct Pbo {
    /// The probability of backtest overfitting (fraction of logits `<= 0`).
    pub pbo: f64,
    /// The logit of each combination, in the order combinations are enumerated
    /// (lexicographic over block indices).
    pub logits: Vec<f64>,
    /// Blocks used.
    pub blocks: usize,
}

/// The blocks CSCV uses for `periods` periods: [`DEFAULT_BLOCKS`], or fewer (an even number,
/// at least 2) so that each block holds at least two periods.
pub fn blocks_for(periods: usize) -> usize {
    let s = DEFAULT_BLOCKS.min(periods / 2);
    s - s % 2
}

/// PBO of the trial matrix `returns` (one per-period return series per trial, all of one
/// length) with `blocks` blocks (even, at least 2). `None` with fewer than two trials, series
/// of different lengths, or fewer than two periods per block.
pub fn pbo(returns: &[Vec<f64>], blocks: usize) -> Option<Pbo> {
    let n = returns.len();
    let t = returns.first()?.len();
    if n < 2 || blocks < 2 || !blocks.is_multiple_of(2) || returns.iter().any(|r| r.len() != t) || t / blocks < 2 {
        return None;
    }
    let len = t / blocks;
    let skip = t - len * blocks;
    // Per trial and block: count, sum, sum of squares.
    let stats: Vec<Vec<(f64, f64)>> = returns
        .iter()
        .map(|r| {
            (0..blocks)
                .map(|b| {
                    let x = &r[skip + b * len..skip + (b + 1) * len];
                    (x.iter().sum(), x.iter().map(|v| v * v).sum())
                })
                .collect()
        })
        .collect();
    let sr = |trial: usize, chosen: &[bool], want: bool| -> f64 {
        let (mut s, mut q, mut k) = (0.0, 0.0, 0.0);
        for (b, (bs, bq)) in stats[trial].iter().enumerate() {
            if chosen[b] == want {
                s += bs;
                q += bq;
                k += len as f64;
            }
        }
        let mean = s / k;
        let var = (q - k * mean * mean) / (k - 1.0);
        if var > 0.0 { mean / var.sqrt() } else { f64::NAN }
    };
    let mut logits = Vec::new();
    let mut pick: Vec<usize> = (0..blocks / 2).collect();
    loop {
        let mut chosen = vec![false; blocks];
        for &b in &pick {
            chosen[b] = true;
        }
        // The in-sample winner (NaN never wins; the lowest trial number on a tie).
        let mut best: Option<(usize, f64)> = None;
        for i in 0..n {
            let v = sr(i, &chosen, true);
            if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
        if let Some((star, _)) = best {
            let oos: Vec<f64> = (0..n).map(|i| sr(i, &chosen, false)).collect();
            let w = relative_rank(&oos, star, n);
            logits.push((w / (1.0 - w)).ln());
        }
        if !next_combination(&mut pick, blocks) {
            break;
        }
    }
    if logits.is_empty() {
        return None;
    }
    let at_or_below = logits.iter().filter(|l| **l <= 0.0).count();
    Some(Pbo { pbo: at_or_below as f64 / logits.len() as f64, logits, blocks })
}

/// `rank / (n + 1)` of `values[star]` among `values` (ascending, ties sharing their mean rank;
/// NaN ranks lowest).
fn relative_rank(values: &[f64], star: usize, n: usize) -> f64 {
    let v = values[star];
    let key = |x: f64| if x.is_nan() { f64::NEG_INFINITY } else { x };
    let (below, equal) = values.iter().fold((0usize, 0usize), |(b, e), x| {
        if key(*x) < key(v) {
            (b + 1, e)
        } else if key(*x) == key(v) {
            (b, e + 1)
        } else {
            (b, e)
        }
    });
    let rank = below as f64 + (equal as f64 + 1.0) / 2.0;
    rank / (n as f64 + 1.0)
}

/// The next `k`-combination of `0..n` in lexicographic order; `false` after the last.
fn next_combination(c: &mut [usize], n: usize) -> bool {
    let k = c.len();
    let mut i = k;
    while i > 0 {
        i -= 1;
        if c[i] < n - k + i {
            c[i] += 1;
            for j in i + 1..k {
                c[j] = c[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

/// Population skewness and kurtosis (not excess) of `x`: `m3 / m2^1.5`, `m4 / m2^2`.
pub fn moments(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let m = |p: i32| x.iter().map(|v| (v - mean).powi(p)).sum::<f64>() / n;
    let m2 = m(2);
    (m(3) / m2.powf(1.5), m(4) / (m2 * m2))
}

/// The deflated Sharpe ratio of the trial with returns `best` among trials whose per-period
/// Sharpe ratios are `sharpes` (see the module doc). `None` with fewer than two trials or
/// returns, or an undefined best Sharpe ratio.
pub fn deflated_sharpe(best: &[f64], sharpes: &[f64]) -> Option<f64> {
    let n = sharpes.iter().filter(|s| s.is_finite()).count();
    let t = best.len();
    let sr = sharpe(best);
    if n < 2 || t < 2 || !sr.is_finite() {
        return None;
    }
    let finite: Vec<f64> = sharpes.iter().copied().filter(|s| s.is_finite()).collect();
    let mean = finite.iter().sum::<f64>() / n as f64;
    let var = finite.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let z = Normal::new(0.0, 1.0).ok()?;
    let nf = n as f64;
    let sr0 = var.sqrt()
        * ((1.0 - EULER_GAMMA) * z.inverse_cdf(1.0 - 1.0 / nf)
            + EULER_GAMMA * z.inverse_cdf(1.0 - 1.0 / (nf * std::f64::consts::E)));
    let (skew, kurt) = moments(best);
    let denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr;
    if denom <= 0.0 || !denom.is_finite() {
        return None;
    }
    Some(z.cdf((sr - sr0) * ((t - 1) as f64).sqrt() / denom.sqrt()))
}

/// Per-period returns of an equity series starting from `start`: `e[i] / e[i-1] - 1`.
pub fn returns_of(start: f64, equity: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut prev = start;
    equity
        .into_iter()
        .map(|e| {
            let r = if prev != 0.0 { e / prev - 1.0 } else { 0.0 };
            prev = e;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_are_enumerated_in_order() {
        let mut c = vec![0, 1];
        let mut all = vec![c.clone()];
        while next_combination(&mut c, 4) {
            all.push(c.clone());
        }
        assert_eq!(all, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]);
    }

    #[test]
    fn ranks_share_ties() {
        assert_eq!(relative_rank(&[1.0, 2.0, 2.0, 3.0], 1, 4), 2.5 / 5.0);
        assert_eq!(relative_rank(&[f64::NAN, 2.0], 0, 2), 1.0 / 3.0);
    }

    #[test]
    fn blocks_fit_the_periods() {
        assert_eq!(blocks_for(1000), 16);
        assert_eq!(blocks_for(20), 10);
        assert_eq!(blocks_for(11), 4);
        assert_eq!(blocks_for(3), 0);
    }

    /// A trial that is best in every block: never overfit (PBO 0); its deflated Sharpe rises
    /// with its edge over the others.
    #[test]
    fn a_consistent_winner_is_not_overfit() {
        let noise = |seed: u64, k: usize| -> f64 {
            let mut x =
                seed.wrapping_mul(6364136223846793005).wrapping_add((k as u64).wrapping_mul(1442695040888963407));
            x ^= x >> 33;
            (x % 1000) as f64 / 1000.0 - 0.5
        };
        let m: Vec<Vec<f64>> = (0..5u64)
            .map(|i| (0..64).map(|k| 0.01 * noise(i, k) + if i == 0 { 0.02 } else { 0.0 }).collect())
            .collect();
        let p = pbo(&m, 8).unwrap();
        assert_eq!(p.logits.len(), 70);
        assert_eq!(p.pbo, 0.0);
        let srs: Vec<f64> = m.iter().map(|r| sharpe(r)).collect();
        assert!(deflated_sharpe(&m[0], &srs).unwrap() > 0.99);
        assert!(deflated_sharpe(&m[1], &srs).unwrap() < 0.5);
    }
}
