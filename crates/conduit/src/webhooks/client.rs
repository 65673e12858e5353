//! The HTTP client every delivery goes through.
//!
//! One pooled client per process (rustls, keep-alive), so the connection to a
//! receiver is reused across deliveries. Redirects are not followed: a 3xx is a
//! failed attempt, and a receiver cannot bounce a delivery into the private
//! network. The SSRF guard sits in the client's DNS resolver, where no request
//! can bypass it: every address a name resolves to is checked at connect time,
//! so a name that resolved to a public address at submit time and to a private
//! one now (DNS rebinding) is refused. URLs with a literal address skip the
//! resolver and are checked by the caller ([`super::ssrf::Policy::check_url`])
//! before each attempt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ssrf::Policy;

/// Idle connections kept per receiver host.
const IDLE_PER_HOST: usize = 64;

/// Builds the delivery client: no redirects, no proxy, the guarded resolver.
pub fn build(policy: Policy, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .tcp_nodelay(true)
        .user_agent(super::signing::user_agent())
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .build()
        .expect("the webhook HTTP client builds")
}

/// A resolution refused by the SSRF guard; found again in the error chain to
/// report the reason.
#[derive(Debug, thiserror::Error)]
#[error("refused by the SSRF guard: {0}")]
pub struct Refused(pub String);

/// The system resolver, filtered by the SSRF policy.
struct GuardedResolver {
    policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            match policy.permitted(&addrs, |a: SocketAddr| a.ip()) {
                Ok(allowed) => Ok(Box::new(allowed.into_iter()) as Addrs),
                Err(reason) => {
                    Err(Box::new(Refused(reason)) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// The SSRF refusal inside a request error, if that is what failed.
pub fn refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        source = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resolver_refuses_private_answers() {
        let client = build(Policy::default(), Duration::from_secs(2));
        let err = client
            .get("http://localhost:9/")
            .send()
            .await
            .expect_err("localhost resolves to loopback");
        let reason = refusal(&err).unwrap_or_else(|| panic!("not refused by the guard: {err:?}"));
        assert!(reason.contains("loopback"), "{reason}");
    }
}
