//! Route matching cost on the shipped table and on a generated 10,000-route table.
//! `cargo bench --bench router`

mod tables;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Method;
use usher::config;
use usher::router::{RouteMatch, Router};

fn bench(c: &mut Criterion) {
    let shipped = config::load("routes.yaml", tables::SHIPPED).unwrap();
    let router = Router::new(&shipped.routes, &shipped.aliases);
    let mut group = c.benchmark_group("route/shipped");
    for (name, method, path) in [
        ("prefix", Method::GET, "/api/v1/venues/7/seats"),
        ("param", Method::GET, "/api/v1/tickets/8f2c1a"),
        ("method-specific", Method::POST, "/api/v1/tickets/purchase"),
        ("miss", Method::GET, "/nothing/here"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let found = router.route(None, &method, black_box(path));
                assert!(!matches!(found, RouteMatch::MethodNotAllowed(_)));
                found
            })
        });
    }
    group.finish();

    let large = config::load("generated.yaml", &tables::generated(10_000)).unwrap();
    let router = Router::new(&large.routes, &large.aliases);
    let mut group = c.benchmark_group("route/10k");
    for (name, method, path) in [
        ("prefix", Method::DELETE, "/api/v1/svc1234"),
        ("param", Method::GET, "/api/v1/svc2345/77"),
        ("param-deep", Method::GET, "/api/v1/svc2499/77/items/5"),
        ("miss", Method::GET, "/api/v2/none"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| router.route(None, &method, black_box(path)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
