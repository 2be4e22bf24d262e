//! The account's money: cash, the equity peak the drawdown is measured from, and the equity at
//! the start of the UTC day the daily figures compare with.
//!
//! A part of the engine ([`super::pipeline::Engine`]) with its own fields: the engine values
//! positions (it knows the last closes) and hands the value in; the portfolio keeps the sums.
//! Units: account currency; times UTC seconds. Drawdown is `(peak - equity) / peak`, with the
//! peak starting at the starting cash and re-based by a person's resume.

/// Cash, equity peak and the day's starting equity.
#[derive(Debug, Clone, PartialEq)]
pub struct Portfolio {
    cash: f64,
    peak_equity: f64,
    /// End (exclusive, UTC seconds) of the UTC day being traded.
    day_end: i64,
    /// Equity at the start of that day.
    day_start_equity: f64,
}

impl Portfolio {
    /// A portfolio holding `starting_cash` (currency), before its first day.
    pub fn new(starting_cash: f64) -> Self {
        Portfolio {
            cash: starting_cash,
            peak_equity: starting_cash,
            day_end: i64::MIN,
            day_start_equity: starting_cash,
        }
    }

    /// Cash (currency).
    #[inline]
    pub fn cash(&self) -> f64 {
        self.cash
    }

    /// Adds the proceeds of a sale, fees already taken off (currency).
    #[inline]
    pub fn credit(&mut self, amount: f64) {
        self.cash += amount;
    }

    /// Takes the cost of a purchase, fees included (currency).
    #[inline]
    pub fn debit(&mut self, amount: f64) {
        self.cash -= amount;
    }

    /// Equity with positions worth `positions_value` (currency).
    #[inline]
    pub fn equity(&self, positions_value: f64) -> f64 {
        self.cash + positions_value
    }

    /// The highest equity marked so far (currency).
    #[inline]
    pub fn peak_equity(&self) -> f64 {
        self.peak_equity
    }

    /// Marks the account with positions worth `positions_value`: returns the equity and raises
    /// the peak to it when higher.
    #[inline]
    pub fn mark(&mut self, positions_value: f64) -> f64 {
        let e = self.cash + positions_value;
        if e > self.peak_equity {
            self.peak_equity = e;
        }
        e
    }

    /// Re-bases the peak to `equity` (a person's resume accepts the loss so far).
    pub fn rebase_peak(&mut self, equity: f64) {
        self.peak_equity = equity;
    }

    /// Whether bar time `ts` starts a new UTC day (then call [`Portfolio::start_day`]).
    #[inline]
    pub fn is_new_day(&self, ts: i64) -> bool {
        ts >= self.day_end
    }

    /// Starts the UTC day holding `ts` with `equity` as its starting equity.
    pub fn start_day(&mut self, ts: i64, equity: f64) {
        self.day_end = (ts.div_euclid(86_400) + 1) * 86_400;
        self.day_start_equity = equity;
    }

    /// Equity at the start of the current UTC day (currency).
    #[inline]
    pub fn day_start_equity(&self) -> f64 {
        self.day_start_equity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_follows_marks_and_resumes() {
        let mut p = Portfolio::new(100.0);
        p.debit(60.0);
        assert_eq!(p.mark(70.0), 110.0);
        assert_eq!(p.peak_equity(), 110.0);
        assert_eq!(p.mark(50.0), 90.0);
        assert_eq!(p.peak_equity(), 110.0);
        p.rebase_peak(90.0);
        assert_eq!(p.peak_equity(), 90.0);
        assert!(p.is_new_day(0));
        p.start_day(86_400 + 5, 90.0);
        assert!(!p.is_new_day(2 * 86_400 - 1) && p.is_new_day(2 * 86_400));
        assert_eq!(p.day_start_equity(), 90.0);
    }
}
