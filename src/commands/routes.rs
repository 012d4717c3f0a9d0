//! `usher routes FILE`: the route table, generated from the configuration itself, so the
//! list of public routes can never drift from what the gateway enforces.

use crate::config::{Access, Config, RouteSpec};
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
        "TIMEOUT",
        "MAX BODY",
    ];
    let rows: Vec<[String; 9]> = config
        .routes
        .iter()
        .map(|route| {
            [
                route.name.to_string(),
                route.host.clone().unwrap_or_else(|| "*".into()),
                route.pattern.to_string(),
                route.methods.as_ref().map_or("*".into(), |m| {
                    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
                }),
                config.upstreams[route.upstream].name.to_string(),
                route
                    .rewrite
                    .as_ref()
                    .map_or("(same path)".into(), |prefix| format!("{prefix}…")),
                auth_column(route),
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
    out
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
    }
    if auth.api_keys {
        text.push_str("; api keys");
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
