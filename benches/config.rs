//! Config compile cost (parse, validate, compile, build the router): what a reload pays
//! before it can publish. `cargo bench --bench config`

mod tables;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use usher::config;
use usher::router::Router;

fn bench(c: &mut Criterion) {
    let generated = tables::generated(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("shipped", |b| {
        b.iter(|| {
            let config = config::load("routes.yaml", black_box(tables::SHIPPED)).unwrap();
            Router::new(&config.routes, &config.aliases)
        })
    });
    group.bench_function("10k-routes", |b| {
        b.iter(|| {
            let config = config::load("generated.yaml", black_box(&generated)).unwrap();
            Router::new(&config.routes, &config.aliases)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
