//! A forward HTTP proxy double on loopback: it takes absolute-form requests
//! (`GET http://host:port/path HTTP/1.1`), checks `Proxy-Authorization` (basic auth), and
//! forwards what it accepts to the origin the request names, which must be on loopback too.
//! A request without the right credentials is answered `407`, its body echoing the
//! `Proxy-Authorization` it got, as a careless proxy would, so that tests can check the proxy
//! password never reaches an error. Every request is logged as received.
#![allow(dead_code)]

use reqwest::Url;

use super::vendors::{HttpDouble, Request, Response, basic_auth};

pub struct ProxyDouble {
    pub http: HttpDouble,
}

impl ProxyDouble {
    /// A proxy that wants `user` / `password`.
    pub fn start(user: &str, password: &str) -> ProxyDouble {
        let expected = basic_auth(user, password);
        let upstream = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("forwarding client");
        let http = HttpDouble::start(move |request| {
            if !request.path.starts_with("http://") {
                return Response::json(
                    400,
                    serde_json::json!({"message": "a proxy takes absolute-form requests"}),
                );
            }
            let given = request.header("proxy-authorization").unwrap_or("");
            if given != expected {
                return Response {
                    status: 407,
                    headers: vec![("Proxy-Authenticate".into(), "Basic realm=\"double\"".into())],
                    body: format!("proxy authentication failed for Proxy-Authorization: {given}"),
                };
            }
            forward(&upstream, request)
        });
        ProxyDouble { http }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.http.url
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
    }
}

/// Sends the request on to its origin (loopback only) and hands back the answer.
fn forward(client: &reqwest::blocking::Client, request: &Request) -> Response {
    let Ok(mut url) = Url::parse(&request.path) else {
        return Response::json(400, serde_json::json!({"message": "not a URL"}));
    };
    if url.host_str() != Some("127.0.0.1") {
        return Response::json(403, serde_json::json!({"message": "loopback only"}));
    }
    if !request.query.is_empty() {
        url.query_pairs_mut().extend_pairs(&request.query);
    }
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).expect("a method");
    let mut outgoing = client.request(method, url).body(request.body.clone());
    for (name, value) in &request.headers {
        // Hop-by-hop and the proxy's own: not for the origin.
        if !matches!(
            name.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection" | "host" | "content-length"
        ) {
            outgoing = outgoing.header(name.as_str(), value.as_str());
        }
    }
    match outgoing.send() {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let headers = answer
                .headers()
                .iter()
                .filter(|(name, _)| {
                    !matches!(
                        name.as_str(),
                        "content-length" | "connection" | "transfer-encoding"
                    )
                })
                .filter_map(|(name, value)| {
                    Some((name.to_string(), value.to_str().ok()?.to_string()))
                })
                .collect();
            let body = answer.text().unwrap_or_default();
            Response {
                status,
                headers,
                body,
            }
        }
        Err(e) => Response::json(502, serde_json::json!({"message": e.to_string()})),
    }
}
