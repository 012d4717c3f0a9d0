//! Which requests are traced: the samplers the OpenTelemetry specification names, spelt the
//! same in `OTEL_TRACES_SAMPLER` and in a route's `tracing.sampler`, so one vocabulary
//! serves the process default and the per-route override. The decision itself is the SDK's
//! ([`Sampler`]); this module only reads its name.

pub use opentelemetry_sdk::trace::Sampler;

/// The sampler names, as `OTEL_TRACES_SAMPLER` takes them.
pub const NAMES: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// The specification's default: follow the caller's decision, sample every new trace.
pub fn default() -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
}

/// Whether the sampler `name` names takes a ratio: the `traceidratio` ones.
pub fn takes_ratio(name: &str) -> bool {
    name.ends_with("traceidratio")
}

/// The sampler `name` names, with its ratio (only the `traceidratio` ones take one; 1.0
/// when omitted, as the specification says).
pub fn parse(name: &str, ratio: Option<f64>) -> Result<Sampler, String> {
    if let Some(ratio) = ratio {
        if !takes_ratio(name) {
            return Err(format!(
                "a ratio applies to traceidratio and parentbased_traceidratio only, not {name}"
            ));
        }
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!("ratio {ratio}: expected a number from 0 to 1"));
        }
    }
    let ratio = Sampler::TraceIdRatioBased(ratio.unwrap_or(1.0));
    Ok(match name {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => ratio,
        "parentbased_always_on" => default(),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => Sampler::ParentBased(Box::new(ratio)),
        other => return Err(format!("\"{other}\": expected one of {}", NAMES.join(", "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_and_a_ratio_goes_with_ratio_samplers_only() {
        for name in NAMES {
            assert!(parse(name, None).is_ok(), "{name}");
        }
        assert!(matches!(
            parse("traceidratio", Some(0.25)),
            Ok(Sampler::TraceIdRatioBased(r)) if r == 0.25
        ));
        assert!(parse("always_on", Some(0.5))
            .unwrap_err()
            .contains("ratio applies"));
        assert!(parse("traceidratio", Some(1.5))
            .unwrap_err()
            .contains("from 0 to 1"));
        assert!(parse("sometimes", None)
            .unwrap_err()
            .contains("expected one of"));
    }
}
