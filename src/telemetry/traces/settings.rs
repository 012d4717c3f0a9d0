//! Whether Usher exports traces, and how, from the variables every OpenTelemetry SDK
//! honours. Tracing is on when `OTEL_TRACES_EXPORTER` is `otlp`, or when it is unset and an
//! OTLP endpoint is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`);
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turns it off. The endpoint and
//! headers are read by the OTLP exporter itself; the sampler, the batch processor's
//! `OTEL_BSP_*` and the request timeout (which Usher's client enforces) here. A value
//! Usher cannot use, or a variable it does not honour (client certificates, other
//! propagators), stops it at start, named, rather than being replaced by a default or
//! ignored in silence: the specification would warn and go on, which on a fleet means
//! traces that quietly never arrive.

use super::sampler::{self, Sampler};
use std::time::Duration;

/// How spans are sampled, queued and exported.
#[derive(Debug)]
pub struct Settings {
    /// The process's sampler; a route's `tracing.sampler` replaces it for that route.
    pub sampler: Sampler,
    /// Spans waiting for export; more are dropped, and counted.
    pub max_queue: usize,
    pub max_batch: usize,
    /// The longest a finished span waits for its batch to fill.
    pub schedule_delay: Duration,
    /// The longest one export may take, retries included.
    pub export_timeout: Duration,
    /// The longest one request to the collector may take.
    pub request_timeout: Duration,
}

/// The settings the environment asks for; `None` when tracing is off.
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, String> {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    // An exporter setting: the traces' own variable, else the one for every signal; with
    // the name it was read from.
    let otlp = |setting: &str| {
        ["OTEL_EXPORTER_OTLP_TRACES_", "OTEL_EXPORTER_OTLP_"]
            .into_iter()
            .map(|prefix| format!("{prefix}{setting}"))
            .find_map(|name| set(&name).map(|value| (name, value)))
    };
    let endpoint = otlp("ENDPOINT");
    // Values are case-insensitive; the exporter variable takes a list.
    let exporters = set("OTEL_TRACES_EXPORTER").map(|value| value.to_ascii_lowercase());
    let exporters: Vec<&str> = exporters
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if let Some(other) = exporters.iter().find(|e| !["otlp", "none"].contains(e)) {
        return Err(format!(
            "OTEL_TRACES_EXPORTER: \"{other}\": Usher exports otlp (over HTTP) or none"
        ));
    }
    let on = match exporters.is_empty() {
        true => endpoint.is_some(),
        false => exporters.contains(&"otlp"),
    };
    if !on {
        return Ok(None);
    }
    if let Some((name, url)) = &endpoint {
        let uri = url.trim().parse::<http::Uri>().ok();
        let usable = uri.is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        });
        if !usable {
            return Err(format!(
                "{name}: \"{url}\": expected an http:// or https:// URL"
            ));
        }
    }
    for setting in [
        "CERTIFICATE",
        "CLIENT_CERTIFICATE",
        "CLIENT_KEY",
        "INSECURE",
    ] {
        if let Some((name, _)) = otlp(setting) {
            return Err(format!(
                "{name}: Usher does not read it; it trusts the collector's certificate through SSL_CERT_FILE or SSL_CERT_DIR, and has no client certificate"
            ));
        }
    }
    if let Some(propagators) = set("OTEL_PROPAGATORS") {
        if !propagators
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("tracecontext"))
        {
            return Err(format!(
                "OTEL_PROPAGATORS: \"{propagators}\": Usher propagates tracecontext (W3C traceparent and tracestate) only"
            ));
        }
    }
    if let Some((name, protocol)) = otlp("PROTOCOL") {
        if protocol.trim() != "http/protobuf" {
            return Err(format!(
                "{name}: \"{protocol}\": Usher exports http/protobuf only"
            ));
        }
    }
    let sampler = match set("OTEL_TRACES_SAMPLER") {
        None => sampler::default(),
        Some(name) => {
            let name = name.trim().to_ascii_lowercase();
            let name = name.as_str();
            // An argument a sampler does not take is ignored, as SDKs do.
            let arg = set("OTEL_TRACES_SAMPLER_ARG").filter(|_| sampler::takes_ratio(name));
            let ratio = match arg {
                None => None,
                Some(arg) => Some(arg.trim().parse::<f64>().map_err(|_| {
                    format!("OTEL_TRACES_SAMPLER_ARG: \"{arg}\": expected a number from 0 to 1")
                })?),
            };
            sampler::parse(name, ratio).map_err(|e| format!("OTEL_TRACES_SAMPLER: {e}"))?
        }
    };
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match set(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name}: \"{value}\": expected a positive whole number")),
        }
    };
    // The specification's defaults.
    let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)? as usize;
    let max_batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)? as usize;
    if max_batch > max_queue {
        return Err(format!(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: {max_batch} is more than OTEL_BSP_MAX_QUEUE_SIZE ({max_queue})"
        ));
    }
    let request_timeout = match otlp("TIMEOUT") {
        Some((name, _)) => number(&name, 0)?,
        None => 10000,
    };
    Ok(Some(Settings {
        sampler,
        max_queue,
        max_batch,
        schedule_delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?),
        export_timeout: Duration::from_millis(number("OTEL_BSP_EXPORT_TIMEOUT", 30000)?),
        request_timeout: Duration::from_millis(request_timeout),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<Settings>, String> {
        from_env(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn off_without_an_endpoint_or_an_exporter() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(settings(&[("OTEL_TRACES_SAMPLER", "always_on")])
            .unwrap()
            .is_none());
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert!(settings(&[endpoint]).unwrap().is_some());
        assert!(settings(&[("OTEL_TRACES_EXPORTER", "otlp")])
            .unwrap()
            .is_some());
        assert!(settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])
            .unwrap()
            .is_none());
        assert!(settings(&[endpoint, ("OTEL_SDK_DISABLED", "true")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn reads_the_sampler_and_the_batch_processor() {
        let endpoint = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        );
        let on = settings(&[
            endpoint,
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ])
        .unwrap()
        .unwrap();
        assert!(
            format!("{:?}", on.sampler).contains("0.1"),
            "{:?}",
            on.sampler
        );
        assert_eq!((on.max_queue, on.max_batch), (100, 10));
        assert_eq!(on.schedule_delay, Duration::from_millis(250));
        assert_eq!(on.request_timeout, Duration::from_secs(10));
        // The specification's default sampler, and its default batch sizes.
        let default = settings(&[endpoint]).unwrap().unwrap();
        assert!(matches!(default.sampler, Sampler::ParentBased(_)));
        assert_eq!((default.max_queue, default.max_batch), (2048, 512));
        // An argument a sampler does not take is ignored, as SDKs do.
        let on = settings(&[
            endpoint,
            ("OTEL_TRACES_SAMPLER", "always_on"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ]);
        assert!(matches!(on, Ok(Some(s)) if matches!(s.sampler, Sampler::AlwaysOn)));
    }

    #[test]
    fn a_value_usher_cannot_use_is_named() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let error = |vars: &[(&str, &str)]| settings(vars).unwrap_err();
        assert!(error(&[endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")])
            .starts_with("OTEL_TRACES_SAMPLER: \"sometimes\""));
        assert!(error(&[
            endpoint,
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "half")
        ])
        .starts_with("OTEL_TRACES_SAMPLER_ARG"));
        assert!(error(&[("OTEL_TRACES_EXPORTER", "zipkin")]).starts_with("OTEL_TRACES_EXPORTER"));
        assert!(error(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
            .starts_with("OTEL_EXPORTER_OTLP_PROTOCOL"));
        assert!(error(&[("OTEL_TRACES_EXPORTER", "otlp,console")])
            .starts_with("OTEL_TRACES_EXPORTER: \"console\""));
        assert!(error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")])
            .starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: \"collector:4318\""));
        assert!(
            error(&[endpoint, ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem")])
                .contains("SSL_CERT_FILE")
        );
        assert!(error(&[endpoint, ("OTEL_PROPAGATORS", "b3")]).starts_with("OTEL_PROPAGATORS"));
        assert!(settings(&[endpoint, ("OTEL_PROPAGATORS", "tracecontext,baggage")]).is_ok());
        assert!(error(&[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")])
            .starts_with("OTEL_EXPORTER_OTLP_TIMEOUT"));
        assert!(error(&[endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")])
            .starts_with("OTEL_BSP_MAX_QUEUE_SIZE"));
        assert!(
            error(&[endpoint, ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")])
                .starts_with("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
        );
    }
}
