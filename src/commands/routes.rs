//! `usher routes FILE`: the route table, generated from the configuration itself, so the
//! list of public routes can never drift from what the gateway enforces.

use crate::config::{Access, Config, KeyPart, Measure, PolicySpec, RouteSpec, StoreFailure, Tiers};
use std::fmt::Write;
use std::path::Path;

pub fn routes(path: &Path) -> i32 {
    match super::load_config(path) {
        Ok(config) => {
            print!("{}", table(&config));
            0
        }
        Err(errors) => {
            eprint!("{errors}");
            1
        }
    }
}

pub fn table(config: &Config) -> String {
    let header = [
        "ROUTE",
        "HOST",
        "PATH",
        "METHODS",
        "UPSTREAM",
        "FORWARDED AS",
        "AUTH",
        "RATE LIMITS",
        "TIMEOUT",
        "MAX BODY",
    ];
    let rows: Vec<[String; 10]> = config
        .routes
        .iter()
        .map(|route| {
            [
                route.name.to_string(),
                route.host.clone().unwrap_or_else(|| "*".into()),
                route.pattern_text.to_string(),
                route.methods.as_ref().map_or("*".into(), |m| {
                    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
                }),
                match route.target.upstream() {
                    Some(upstream) => config.upstreams[upstream].name.to_string(),
                    None => "(Usher: approvals)".to_string(),
                },
                route
                    .rewrite
                    .as_ref()
                    .map_or("(same path)".into(), |template| format!("{template}…")),
                auth_column(route),
                limits_column(config, route),
                format!("{}s", route.timeout.as_secs_f64()),
                human_size(route.max_body),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    if !config.aliases.is_empty() {
        let _ = writeln!(
            out,
            "\nAliases (routed again with the matched part replaced; the route reached decides everything):"
        );
        for alias in &config.aliases {
            let methods = alias.methods.as_ref().map_or("*".into(), |m| {
                m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
            });
            let reached: Vec<&str> = config
                .routes
                .iter()
                .filter(|route| {
                    route.pattern.meets_subtree(&alias.to)
                        && (alias.host.is_none()
                            || route.host.is_none()
                            || alias.host == route.host)
                })
                .map(|route| &*route.name)
                .collect();
            let _ = writeln!(
                out,
                "  {:<24} {}{} {} → {}…  (reaches {})",
                alias.name,
                alias
                    .host
                    .as_deref()
                    .map_or(String::new(), |h| format!("{h} ")),
                alias.pattern,
                methods,
                alias.to,
                reached.join(", ")
            );
        }
    }
    let _ = writeln!(out, "\nReachable without authentication:");
    let mut any = false;
    for route in &config.routes {
        match &route.access {
            Access::Authenticated => {}
            Access::Public => {
                any = true;
                let _ = writeln!(
                    out,
                    "  {:<24} {} and everything under it",
                    route.name, route.pattern
                );
            }
            Access::PublicPaths(paths) => {
                for public in paths {
                    any = true;
                    let suffix = if public.subtree {
                        " and everything under it"
                    } else {
                        ""
                    };
                    let _ = writeln!(out, "  {:<24} {}{suffix}", route.name, public.pattern);
                }
            }
        }
    }
    if !any {
        let _ = writeln!(out, "  (nothing)");
    }
    let limits = &config.rate_limiting;
    let _ = writeln!(
        out,
        "\nRate-limit policies ({}):",
        if limits.redis.is_some() {
            "shared through Redis"
        } else {
            "counted in each replica"
        }
    );
    if limits.policies.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for policy in &limits.policies {
        let _ = writeln!(out, "  {:<24} {}", policy.name, describe(policy));
        if policy.tiered && limits.tiers.levels.len() > 1 {
            let _ = writeln!(out, "  {:<24} {}", "", per_tier(policy, &limits.tiers));
        }
    }
    out
}

/// What a tiered policy allows each tier, as requests are counted: `premium 500, standard
/// 100 (default), free 50 (anonymous)`. Anonymous callers get their tier's share, which
/// is easy to miss when a public path's limit is set.
fn per_tier(policy: &PolicySpec, tiers: &Tiers) -> String {
    let levels: Vec<String> = tiers
        .levels
        .iter()
        .enumerate()
        .map(|(index, tier)| {
            let mut text = format!(
                "{} {}",
                tier.name,
                crate::ratelimit::effective_limit(policy, tier.multiplier)
            );
            let roles: Vec<&str> = [(tiers.default, "default"), (tiers.anonymous, "anonymous")]
                .into_iter()
                .filter(|(at, _)| *at == index)
                .map(|(_, role)| role)
                .collect();
            if !roles.is_empty() {
                text.push_str(&format!(" ({})", roles.join(", ")));
            }
            text
        })
        .collect();
    format!("per tier: {}", levels.join(", "))
}

/// The route's policies, or `-`.
fn limits_column(config: &Config, route: &RouteSpec) -> String {
    if route.rate_limits.is_empty() {
        return "-".to_string();
    }
    route
        .rate_limits
        .iter()
        .map(|attached| &*config.rate_limiting.policies[attached.policy].name)
        .collect::<Vec<_>>()
        .join(",")
}

/// `5 per 1m by tenant,user; tiered; block 5m after 10 refusals; store down: closed`.
fn describe(policy: &PolicySpec) -> String {
    let key: Vec<String> = policy
        .key
        .iter()
        .map(|part| match part {
            KeyPart::Tenant => "tenant".into(),
            KeyPart::User => "user".into(),
            KeyPart::ApiKey => "api_key".into(),
            KeyPart::Client => "client".into(),
            KeyPart::Header(name) => format!("header:{name}"),
            KeyPart::Param(name) => format!("param:{name}"),
            KeyPart::Query(name) => format!("query:{name}"),
        })
        .collect();
    let counted = match &policy.amount {
        None => String::new(),
        Some(amount) => match amount.measure {
            Measure::Length => format!(" of the length of {}", amount.pointer),
            Measure::Number => format!(" of the number at {}", amount.pointer),
        },
    };
    let mut text = format!(
        "{}{counted} per {} by {}",
        policy.limit,
        human_duration(policy.window),
        key.join(",")
    );
    if let Some(cap) = policy.amount.as_ref().and_then(|a| a.max_per_request) {
        text.push_str(&format!("; at most {cap} per request"));
    }
    if policy.tiered {
        text.push_str("; tiered");
    }
    if let Some(block) = policy.block {
        text.push_str(&format!(
            "; block {} after {} refusals",
            human_duration(block.duration),
            block.after
        ));
    }
    if let Some(n) = policy.bot_after {
        text.push_str(&format!("; bot signal after {n}"));
    }
    text.push_str(match policy.on_store_failure {
        StoreFailure::Local => "; store down: local share",
        StoreFailure::Open => "; store down: open",
        StoreFailure::Closed => "; store down: closed (503)",
    });
    text
}

fn human_duration(duration: std::time::Duration) -> String {
    match duration.as_millis() {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// `required`, `public`, or `required, 2 public`, then what the caller must be.
fn auth_column(route: &RouteSpec) -> String {
    let mut text = match &route.access {
        Access::Authenticated => "required".to_string(),
        Access::Public => return "public".to_string(),
        Access::PublicPaths(paths) => format!("required, {} public", paths.len()),
    };
    let auth = &route.auth;
    if !auth.roles.is_empty() {
        text.push_str(&format!("; roles {}", auth.roles.join("|")));
    }
    if let Some(index) = auth.venue_param {
        let name = route.pattern.param_names().nth(index).unwrap_or("?");
        text.push_str(&format!("; venue :{name}"));
        if auth.venue_check {
            text.push_str(" (confirmed)");
        }
    }
    if let Some(pointer) = &auth.venue_field {
        text.push_str(&format!("; venue in body {pointer}"));
    }
    if auth.user_status {
        text.push_str("; user status");
    }
    if auth.api_keys {
        text.push_str("; api keys");
    }
    if auth.forward_credential {
        text.push_str("; credential forwarded");
    }
    text
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}
