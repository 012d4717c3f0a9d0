//! A route's `webhook`: the provider's signature scheme, its secrets (read later, with the
//! environment) and the time rules.

use crate::config::compile::Compiler;
use crate::config::raw::RawRoute;
use crate::config::{builtin, SecretRef, WebhookSpec};
use crate::signatures::webhook::Scheme;

impl Compiler<'_> {
    pub(super) fn route_webhook(
        &mut self,
        at: &str,
        raw: &RawRoute,
        max_body: u64,
    ) -> Option<WebhookSpec> {
        let webhook = raw.webhook.as_ref()?;
        let at = format!("{at}.webhook");
        self.reads_whole_body(&at, raw, max_body);
        let scheme = Scheme::parse(&webhook.scheme);
        if scheme.is_none() {
            self.error(
                format!("{at}.scheme"),
                format!(
                    "\"{}\": expected stripe, standard or github",
                    webhook.scheme
                ),
            );
        }
        if webhook.secrets.is_empty() {
            self.error(
                format!("{at}.secrets"),
                "list at least one secret ({ env: NAME } or { file: PATH })",
            );
        }
        let mut secrets = Vec::new();
        for (i, source) in webhook.secrets.iter().enumerate() {
            match (&source.env, &source.file) {
                (Some(name), None) => secrets.push(SecretRef::Env(name.clone())),
                (None, Some(path)) => secrets.push(SecretRef::File(path.clone())),
                _ => self.error(
                    format!("{at}.secrets[{i}]"),
                    "set exactly one of env: NAME or file: PATH",
                ),
            }
        }
        let tolerance = self.positive(
            &format!("{at}.tolerance"),
            webhook
                .tolerance
                .map_or(builtin::WEBHOOK_TOLERANCE, |d| d.0),
        );
        let replay_window = match (webhook.replay_window, scheme) {
            (Some(window), _) => self.positive(&format!("{at}.replay_window"), window.0),
            (None, Some(Scheme::GitHub)) => builtin::WEBHOOK_GITHUB_REPLAY_WINDOW,
            (None, _) => tolerance * 2,
        };
        let fail_open = match webhook.on_store_failure.as_deref().unwrap_or("closed") {
            "closed" => false,
            "open" => true,
            other => {
                self.error(
                    format!("{at}.on_store_failure"),
                    format!("\"{other}\": expected closed or open"),
                );
                false
            }
        };
        Some(WebhookSpec {
            scheme: scheme?,
            secrets,
            tolerance,
            replay_window,
            fail_open,
        })
    }
}
