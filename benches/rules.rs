//! Evaluations per second of a four-term guardrail: the compiled scalar program (what the
//! engine runs), the reference interpreter (the test oracle) and the same rule as a rhai
//! guardrail script (the escape hatch). Target: at least 30M/s for the compiled form.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tradedsl::config::expr_source::ExprSource;
use tradedsl::diagnostics::SourceFile;
use tradedsl::dsl::catalog::{Context, FIELD_COUNT, FieldId};
use tradedsl::dsl::check::Checker;
use tradedsl::dsl::interp::eval_at;
use tradedsl::dsl::parser::parse_text;
use tradedsl::dsl::program::{GraphSpec, lower_rule};
use tradedsl::dsl::script::{Sandbox, ScriptKind, compile};
use tradedsl::dsl::semantics::string_id;
use tradedsl::engine::rules::{FieldValues, eval_rule};

const RULE: &str = "order.intent == \"entry\" and order.notional > 5% * account.equity \
                    and account.exposure + order.notional <= 20% * account.equity and account.drawdown < 10%";

const SCRIPT: &str = r#"
fn check(order, account, position) {
    if order.intent == "entry" && order.notional > 0.05 * account.equity
        && account.exposure + order.notional <= 0.20 * account.equity && account.drawdown < 0.10 {
        false
    } else {
        ()
    }
}
"#;

/// 1024 orders with varied notionals, so about half of them fire.
fn contexts() -> Vec<FieldValues> {
    (0..1024)
        .map(|i| {
            let mut f = [f64::NAN; FIELD_COUNT];
            f[FieldId::OrderIntent as usize] = string_id(if i % 7 == 0 { "exit" } else { "entry" });
            f[FieldId::OrderSide as usize] = string_id("buy");
            f[FieldId::OrderNotional as usize] = 1_000.0 + (i as f64 * 37.0) % 9_000.0;
            f[FieldId::AccountEquity as usize] = 100_000.0;
            f[FieldId::AccountExposure as usize] = (i as f64 * 113.0) % 20_000.0;
            f[FieldId::AccountDrawdown as usize] = (i % 13) as f64 / 100.0;
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let src = ExprSource::standalone("rule", RULE);
    let t = Checker::new(&src, Context::Policy, &[]).check_rule(&parse_text(RULE).unwrap(), "when").unwrap();
    let mut spec = GraphSpec::new();
    let rule = lower_rule(&mut spec, &t, &src);
    let ctx = contexts();
    let names =
        |path: &str| -> Option<String> { Some(if path == "order.intent" { "entry".into() } else { "buy".into() }) };
    let script = compile(ScriptKind::Guard, &SourceFile::new("g.rhai", SCRIPT), Sandbox::shared()).unwrap();

    // The three forms agree.
    let mut scratch = Vec::new();
    for f in &ctx[1..50] {
        let compiled = eval_rule(&rule, &[], f, &mut scratch);
        assert_eq!(compiled.to_bits(), eval_at(&t, None, 0, f).to_bits());
    }

    let mut g = c.benchmark_group("four_term_guardrail");
    g.throughput(Throughput::Elements(ctx.len() as u64));
    g.bench_function("compiled", |b| {
        let mut scratch = Vec::with_capacity(32);
        b.iter(|| {
            let mut fired = 0u32;
            for f in &ctx {
                fired += u32::from(eval_rule(&rule, &[], std::hint::black_box(f), &mut scratch) != 0.0);
            }
            fired
        })
    });
    g.bench_function("interpreter", |b| {
        b.iter(|| {
            let mut fired = 0u32;
            for f in &ctx {
                fired += u32::from(eval_at(&t, None, 0, std::hint::black_box(f)) != 0.0);
            }
            fired
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("rhai", |b| {
        b.iter_batched(
            || (),
            |_| {
                let mut denied = 0u32;
                for f in &ctx[..64] {
                    let v = script.guard(Sandbox::shared(), std::hint::black_box(f), &names).unwrap();
                    denied += u32::from(v != tradedsl::dsl::script::Verdict::Allow);
                }
                denied
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
