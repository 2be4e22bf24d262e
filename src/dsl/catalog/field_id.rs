//! The ids of the context fields rules read, one per entry of the field table
//! ([`super::FIELDS`]); an id indexes a rule's field-value array.

/// A context field, read at evaluation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldId {
    /// `account.equity`
    AccountEquity,
    /// `account.cash`
    AccountCash,
    /// `account.exposure`
    AccountExposure,
    /// `account.peak_equity`
    AccountPeakEquity,
    /// `account.drawdown`
    AccountDrawdown,
    /// `account.open_positions`
    AccountOpenPositions,
    /// `position.quantity`
    PositionQuantity,
    /// `position.entry_price`
    PositionEntryPrice,
    /// `position.notional`
    PositionNotional,
    /// `position.unrealized_pnl`
    PositionUnrealizedPnl,
    /// `position.unrealized_return`
    PositionUnrealizedReturn,
    /// `position.bars_held`
    PositionBarsHeld,
    /// `order.symbol`
    OrderSymbol,
    /// `order.strategy`
    OrderStrategy,
    /// `order.side`
    OrderSide,
    /// `order.intent`
    OrderIntent,
    /// `order.quantity`
    OrderQuantity,
    /// `order.price`
    OrderPrice,
    /// `order.notional`
    OrderNotional,
    /// `account.daily_pnl`
    AccountDailyPnl,
    /// `account.daily_return`
    AccountDailyReturn,
    /// `account.loss_streak`
    AccountLossStreak,
    /// `account.orders_last_minute`
    AccountOrdersLastMinute,
    /// `account.orders_last_hour`
    AccountOrdersLastHour,
    /// `account.orders_today`
    AccountOrdersToday,
    /// `symbol.name`
    SymbolName,
    /// `symbol.daily_change`
    SymbolDailyChange,
    /// `symbol.weight`
    SymbolWeight,
    /// `symbol.bid`
    SymbolBid,
    /// `symbol.ask`
    SymbolAsk,
    /// `symbol.spread`
    SymbolSpread,
    /// `symbol.spread_source`
    SymbolSpreadSource,
    /// `session.is_open`
    SessionIsOpen,
    /// `session.minutes_since_open`
    SessionMinutesSinceOpen,
    /// `session.minutes_to_close`
    SessionMinutesToClose,
    /// `session.day_of_week`
    SessionDayOfWeek,
    /// `session.date`
    SessionDate,
    /// `session.early_close`
    SessionEarlyClose,
    /// `order.stop_loss`
    OrderStopLoss,
    /// `order.expected_return`
    OrderExpectedReturn,
    /// `order.round_trip_cost`
    OrderRoundTripCost,
    /// `bucket.name`
    BucketName,
    /// `bucket.weight`
    BucketWeight,
    /// `metric.trades`
    MetricTrades,
    /// `metric.win_rate`
    MetricWinRate,
    /// `metric.profit_factor`
    MetricProfitFactor,
    /// `metric.avg_pnl`
    MetricAvgPnl,
    /// `metric.net_pnl`
    MetricNetPnl,
    /// `metric.max_loss`
    MetricMaxLoss,
    /// `metric.risk_reward`
    MetricRiskReward,
    /// `metric.max_drawdown`
    MetricMaxDrawdown,
    /// `metric.total_return`
    MetricTotalReturn,
    /// `metric.monthly_return`
    MetricMonthlyReturn,
    /// `metric.months`
    MetricMonths,
    /// `metric.months_positive`
    MetricMonthsPositive,
    /// `metric.risk_breaches`
    MetricRiskBreaches,
    /// `metric.denials`
    MetricDenials,
    /// `metric.halts`
    MetricHalts,
    /// `metric.reductions`
    MetricReductions,
    /// `metric.avg_slippage_bps`
    MetricAvgSlippageBps,
    /// `metric.t_stat`
    MetricTStat,
    /// `metric.p_value`
    MetricPValue,
    /// `metric.luck`
    MetricLuck,
    /// `metric.trades_per_param`
    MetricTradesPerParam,
    /// `metric.stress_max_drawdown`
    MetricStressMaxDrawdown,
    /// `metric.stress_scenarios`
    MetricStressScenarios,
    /// `metric.backtest_years`
    MetricBacktestYears,
    /// `metric.sharpe`
    MetricSharpe,
    /// `metric.sortino`
    MetricSortino,
    /// `metric.cagr`
    MetricCagr,
    /// `metric.exposure`
    MetricExposure,
    /// `metric.trials`
    MetricTrials,
    /// `metric.pbo`
    MetricPbo,
    /// `metric.deflated_sharpe`
    MetricDeflatedSharpe,
    /// `metric.wfe`
    MetricWfe,
    /// `metric.divergence_bps`
    MetricDivergenceBps,
    /// `metric.missing_orders`
    MetricMissingOrders,
}
