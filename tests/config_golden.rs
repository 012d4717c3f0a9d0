//! Golden tests for what an SRE sees: `usher check` and `usher routes` on fixture files,
//! compared byte for byte with the `.expected` files beside them.
//! Run with `USHER_BLESS=1` to rewrite the expected files after an intended change.

use std::path::Path;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

/// Runs `usher <verb> <file>` in the fixtures directory; returns (exit code, stdout + stderr).
fn usher(verb: &str, file: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([verb, file])
        .current_dir(FIXTURES)
        .output()
        .expect("running usher");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(FIXTURES).join(name);
    if std::env::var_os("USHER_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {name}; run with USHER_BLESS=1"));
    assert_eq!(
        actual, expected,
        "{name} differs; if intended, run with USHER_BLESS=1"
    );
}

#[test]
fn bad_files_report_every_error_with_its_place() {
    for fixture in [
        "bad-typo",
        "bad-structure",
        "bad-semantics",
        "bad-yaml",
        "bad-missing-listeners",
        "bad-rate-limits",
        "bad-revocation",
        "bad-revocation-store",
        "bad-no-credentials",
        "bad-route-credentials",
        "bad-typo-every-section",
    ] {
        let (code, output) = usher("check", &format!("{fixture}.yaml"));
        assert_eq!(code, 1, "{fixture} must fail:\n{output}");
        golden(&format!("{fixture}.expected"), &output);
    }
}

#[test]
fn good_file_checks_and_prints_its_route_table() {
    let (code, output) = usher("check", "good-small.yaml");
    assert_eq!(code, 0, "{output}");
    golden("good-small.check.expected", &output);
    let (code, output) = usher("routes", "good-small.yaml");
    assert_eq!(code, 0, "{output}");
    golden("good-small.routes.expected", &output);
}

#[test]
fn shipped_routes_yaml_is_valid_and_models_the_platform() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/routes.yaml");
    let (code, output) = usher("check", shipped);
    assert_eq!(code, 0, "{output}");
    let text = std::fs::read_to_string(shipped).unwrap();
    let config = usher::config::load("routes.yaml", &text).unwrap();
    assert_eq!(config.upstreams.len(), 19, "one pool per platform service");
    let minting = config
        .upstreams
        .iter()
        .find(|u| &*u.name == "minting")
        .unwrap();
    assert!(minting.max_in_flight <= 32 && minting.retries == 0);
    // `usher routes` tells what each tier is allowed, anonymous callers' share included:
    // the shipped tiers are premium ×5, standard ×1 (default), free ×0.5 (anonymous).
    let (code, table) = usher("routes", shipped);
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains("per tier: premium 500, standard 100 (default), free 50 (anonymous)"),
        "{table}"
    );
    let ports: Vec<u16> = config
        .upstreams
        .iter()
        .flat_map(|u| u.targets.iter().map(|t| t.port))
        .collect();
    for port in [
        3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011, 3012, 3013, 3014, 3015,
        3016, 3018, 3019, 3020,
    ] {
        assert!(ports.contains(&port), "no upstream on port {port}");
    }
    let (_, table) = usher("routes", shipped);
    // Aliases are listed as such, with the routes they reach.
    assert!(
        table.contains("tickets-alt") && table.contains("/api/v1/ticket * → /api/v1/tickets…  (reaches tickets, ticket-purchase, ticket-lookup)"),
        "{table}"
    );
    for public in [
        "/api/v1/auth/login",
        "/api/v1/auth/verify-email",
        "/api/v1/payments/webhooks",
    ] {
        assert!(
            table.contains(public),
            "{public} should be listed as public:\n{table}"
        );
    }
    assert!(
        !table.contains("/api/v1/payments/metrics"),
        "service metrics are not public"
    );
}

#[test]
fn files_past_the_documented_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let head = "listeners:\n  public: { address: \"127.0.0.1:8080\" }\n  admin: { address: \"127.0.0.1:9090\" }\nupstreams:\n  svc: { targets: [\"127.0.0.1:1\"] }\nroutes:\n";
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        usher("check", path.to_str().unwrap())
    };

    let mut many = head.to_string();
    for n in 0..20_001 {
        many.push_str(&format!(
            "  - {{ name: r{n}, match: {{ path: /r{n} }}, upstream: svc, public: true }}\n"
        ));
    }
    let (code, output) = check("many.yaml", &many);
    assert_eq!(code, 1);
    assert!(
        output.contains("routes: 20001 routes, more than the 20000 a configuration may hold"),
        "{output}"
    );
    assert!(
        output.contains(": 1 error"),
        "one mistake, one error: {output}"
    );

    let long = format!(
        "{head}  - {{ name: {}, match: {{ path: /a }}, upstream: svc, public: true }}\n",
        "r".repeat(101)
    );
    let (code, output) = check("long.yaml", &long);
    assert_eq!(code, 1);
    assert!(
        output.contains("routes[0].name: route names may be at most 100 characters"),
        "{output}"
    );

    let huge = format!("{head}{}", "# padding\n".repeat(1_700_000));
    let (code, output) = check("huge.yaml", &huge);
    assert_eq!(code, 1);
    assert!(output.contains("larger than 16 MiB"), "{output}");
}

/// The shipped file has every section; one typo in it gives exactly one error, naming it
/// (a hand-written section list once made every typo print a false error about a section
/// it forgot).
#[test]
fn one_typo_in_a_file_with_every_section_is_one_error() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/routes.yaml")).unwrap();
    for section in [
        "rate_limiting:",
        "authentication:",
        "upstreams:",
        "routes:",
        "limits:",
    ] {
        assert!(
            shipped.contains(&format!("\n{section}")),
            "routes.yaml lacks {section}"
        );
    }
    let typo = shipped.replacen("\n    timeouts:", "\n    timeuots:", 1);
    assert_ne!(typo, shipped, "the typo went in");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(&path, typo).unwrap();
    let (code, output) = usher("check", path.to_str().unwrap());
    assert_eq!(code, 1, "{output}");
    assert!(output.contains(": 1 error"), "{output}");
    assert!(output.contains("unknown field `timeuots`"), "{output}");
}
