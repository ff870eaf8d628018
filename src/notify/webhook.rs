//! A webhook: the run's JSON POSTed through `crate::http` (timeouts, `ca-file`, proxy,
//! scrubbing). The URL is treated as a secret, since chat webhooks carry their token in
//! it: messages name the webhook by its scheme and host only, and the whole URL and its
//! path are scrubbed from every text that becomes an error.

use reqwest::{Method, Url};

use super::RunReport;
use crate::config::{HttpOptions, Webhook};
use crate::http::{Body, HttpClient, Request, Resend, Role, Settings};
use crate::secret::Secret;
use crate::store::{Channel, Delivery};

pub(super) fn send(hook: &Webhook, http: &HttpOptions, report: &RunReport) -> Delivery {
    let (url, shown) = match hook {
        Webhook::Url(url) => (Ok(Secret::new(url.value.clone())), None),
        Webhook::Secret(reference) => (
            reference.resolve().map_err(|e| format!("webhook: {e}")),
            Some(reference.value.to_string()),
        ),
    };
    let (to, error) = match url {
        Ok(url) => {
            let to = describe(url.expose());
            (to, post(&url, http, report).err())
        }
        Err(error) => (shown.unwrap_or_default(), Some(error)),
    };
    Delivery {
        channel: Channel::Webhook,
        to,
        error,
    }
}

/// `https://hooks.example.com`: where a webhook goes, without what may be its token.
pub(crate) fn describe(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
            (Some(host), None) => format!("{}://{host}", url.scheme()),
            (None, _) => "a webhook without a host".into(),
        },
        Err(_) => "a webhook whose URL cannot be read".into(),
    }
}

fn post(url: &Secret, http: &HttpOptions, report: &RunReport) -> Result<(), String> {
    let mut secrets = vec![url.clone()];
    if let Ok(parsed) = Url::parse(url.expose()) {
        if parsed.path().trim_matches('/').len() >= 8 {
            secrets.push(Secret::new(parsed.path().to_string()));
        }
        if let Some(query) = parsed.query().filter(|q| !q.is_empty()) {
            secrets.push(Secret::new(query.to_string()));
        }
        // reqwest shows the URL as it normalised it, which may differ from the text.
        secrets.push(Secret::new(parsed.to_string()));
    }
    let client = HttpClient::new(Settings {
        role: Role::Notify,
        http,
        accept: "application/json, text/plain, */*",
        pacer: None,
        secrets: &secrets,
    })
    .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&report.webhook_body()).unwrap_or_default();
    let request =
        Request::new(Method::POST, url.expose(), Resend::OnlyUnprocessed).body(Body::Bytes {
            content_type: "application/json",
            bytes: body,
        });
    client
        .send(&request)
        .map(|_| ())
        .map_err(|failure| client.scrub(&failure.to_string()))
}
