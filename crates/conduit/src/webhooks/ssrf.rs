//! The SSRF guard: a webhook URL may not reach into the private network.
//!
//! A URL is checked when it is submitted (a clear 400) and again when a delivery
//! connects (the HTTP client's resolver filters every resolved address), so a
//! name that later resolves to a private address (DNS rebinding) is refused too.
//! Literal addresses in every notation are normalised by the URL parser first
//! (`http://2130706433/`, `http://0x7f.1/`, `http://[::ffff:127.0.0.1]/`).
//! Operators open ranges for development with `CONDUIT_WEBHOOK_ALLOW_CIDRS`.
//!
//! Whatever the allow-list opens, a webhook may not call the gateway itself
//! (its listen address or its public URL): a delivery that calls the API could
//! start a loop of deliveries. The API also refuses any request that carries a
//! delivery's signature headers, which catches the addresses this check cannot
//! know (a proxy, another name for the host).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use reqwest::Url;

/// What the guard allows.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Ranges allowed despite being private or reserved.
    pub allow: Vec<IpNet>,
    /// Refuse plain `http://`.
    pub https_only: bool,
    /// The port the gateway listens on (0 if it is chosen at start).
    pub own_port: u16,
    /// The host and port of the gateway's public URL.
    pub own_authority: Option<(String, u16)>,
}

/// Host names that are private by definition.
const BLOCKED_NAMES: &[&str] = &[
    "localhost",
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

impl Policy {
    /// Parses and checks a URL's form and, if its host is a literal address, the
    /// address. Names are checked by [`Policy::permitted`] after resolution.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        if text.len() > 2048 {
            return Err("The URL is longer than 2048 characters.".into());
        }
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a valid URL ({e})."))?;
        match url.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => return Err("Webhook URLs must use https.".into()),
            other => {
                return Err(format!(
                    "The URL scheme `{other}` is not allowed; use https."
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("Webhook URLs may not contain credentials.".into());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        if port == 0 {
            return Err("The URL's port 0 cannot be connected to.".into());
        }
        let own = || Err("A webhook may not call the gateway itself.".to_string());
        match url.host() {
            None => Err("The URL has no host.".into()),
            Some(url::Host::Ipv4(ip)) => self.check_literal(IpAddr::V4(ip), port, &url),
            Some(url::Host::Ipv6(ip)) => self.check_literal(IpAddr::V6(ip), port, &url),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if self
                    .own_authority
                    .as_ref()
                    .is_some_and(|(host, p)| *host == name && *p == port)
                {
                    return own();
                }
                let loopback_name = name == "localhost" || name.ends_with(".localhost");
                if loopback_name && self.allows_loopback() {
                    // Resolved to loopback at connect time, and checked again there.
                    return if port == self.own_port {
                        own()
                    } else {
                        Ok(url)
                    };
                }
                if name.is_empty()
                    || loopback_name
                    || BLOCKED_NAMES.contains(&name.as_str())
                    || name.ends_with(".internal")
                    || name.ends_with(".local")
                {
                    return Err(format!("The host `{name}` is a private name."));
                }
                Ok(url)
            }
        }
    }

    /// A literal address: the guard, then the gateway's own address.
    fn check_literal(&self, ip: IpAddr, port: u16, url: &Url) -> Result<Url, String> {
        self.check_ip(ip)?;
        let local = ip.is_loopback() || ip.is_unspecified();
        let own_host = self
            .own_authority
            .as_ref()
            .is_some_and(|(host, p)| *p == port && host.parse::<IpAddr>() == Ok(ip));
        if own_host || (port == self.own_port && local) {
            return Err("A webhook may not call the gateway itself.".into());
        }
        Ok(url.clone())
    }

    /// Whether the allow-list opens a loopback address (development setups).
    fn allows_loopback(&self) -> bool {
        let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        self.allow
            .iter()
            .any(|net| net.contains(&v4) || net.contains(&v6))
    }

    /// Whether a resolved address may be contacted.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(reason) => Err(format!(
                "The address {ip} is {reason}; webhooks may only reach public addresses."
            )),
            None => Ok(()),
        }
    }

    /// The addresses of a name that may be contacted; refused if none may.
    /// Only those are ever connected to (`localhost` may resolve to both
    /// `127.0.0.1` and `::1` with only one of them allowed).
    pub fn permitted<T: Copy>(
        &self,
        addrs: &[T],
        ip: impl Fn(T) -> IpAddr,
    ) -> Result<Vec<T>, String> {
        let mut first_refusal = None;
        let mut out = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match self.check_ip(ip(*addr)) {
                Ok(()) => out.push(*addr),
                Err(reason) => {
                    first_refusal.get_or_insert(reason);
                }
            }
        }
        match first_refusal {
            _ if !out.is_empty() => Ok(out),
            Some(reason) => Err(reason),
            None => Err("The host did not resolve to any address.".into()),
        }
    }
}

/// Why an address is not public, if it is not.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (0, _, _) => "an unspecified address",
        (10, _, _) => "a private address",
        (100, 64..=127, _) => "a shared (CGNAT) address",
        (127, _, _) => "a loopback address",
        (169, 254, _) => "a link-local (cloud metadata) address",
        (172, 16..=31, _) => "a private address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (192, 88, 99) => "a relay address",
        (192, 168, _) => "a private address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    };
    Some(reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return v4_reason(v4).or(Some("an IPv4-embedding address"));
    }
    let s = ip.segments();
    let reason = if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a unique-local (private) address"
    } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
        "a link-local address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        "an IETF protocol address"
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        "a local-use NAT64 address"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "a discard address"
    } else {
        return None;
    };
    Some(reason)
}

/// The IPv4 address inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[0..5] == [0, 0, 0, 0, 0]
        && (s[5] == 0xffff || (s[5] == 0 && !ip.is_loopback() && !ip.is_unspecified()))
    {
        return Some(tail);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(tail);
    }
    // IPv4-translated (SIIT): ::ffff:0:a.b.c.d.
    if s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_urls_are_refused() {
        let policy = Policy::default();
        let hostile = [
            "http://127.0.0.1/hook",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:169.254.169.254]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1:8080/",
            "http://0.0.0.0/",
            "http://0/",
            "http://localhost/",
            "http://localhost./",
            "http://LOCALHOST/",
            "http://foo.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://192.0.2.10/",
            "http://198.18.0.1/",
            "http://[fe80::1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[2002:7f00:1::]/",
            "http://[ff02::1]/",
            "http://[::ffff:0:127.0.0.1]/",
            "http://[64:ff9b:1::7f00:1]/",
            "http://user:pass@example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "ftp://example.com/",
            "not a url",
        ];
        for url in hostile {
            assert!(policy.check_url(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn public_urls_pass_and_allow_list_opens_ranges() {
        let policy = Policy::default();
        for url in [
            "https://example.com/hook",
            "http://93.184.216.34/x",
            "https://[2606:4700::1]/",
        ] {
            assert!(policy.check_url(url).is_ok(), "{url}");
        }
        let open = Policy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..Policy::default()
        };
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.check_url("http://10.0.0.1/").is_err());
        let strict = Policy {
            https_only: true,
            ..Policy::default()
        };
        assert!(strict.check_url("http://example.com/").is_err());
    }

    #[test]
    fn only_permitted_resolved_addresses_are_used() {
        let policy = Policy::default();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let private: IpAddr = "10.1.2.3".parse().unwrap();
        let check = |addrs: &[IpAddr]| policy.permitted(addrs, |ip| ip);
        assert_eq!(check(&[public]), Ok(vec![public]));
        assert_eq!(check(&[private, public]), Ok(vec![public]));
        assert!(check(&[private]).unwrap_err().contains("private"));
        assert!(check(&[]).is_err());
    }

    #[test]
    fn the_gateway_itself_is_refused_even_when_allowed() {
        let policy = Policy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            https_only: false,
            own_port: 5000,
            own_authority: Some(("conduit.example.com".into(), 443)),
        };
        for url in [
            "http://127.0.0.1:5000/v1/events/evt_1/redeliver",
            "http://127.0.0.2:5000/",
            "http://[::1]:5000/",
            "http://localhost:5000/",
            "http://LOCALHOST.:5000/",
            "https://conduit.example.com/v1/tasks",
            "https://conduit.example.com:443/",
            "http://127.0.0.1:0/",
        ] {
            let err = policy.check_url(url).expect_err(url);
            assert!(
                err.contains("gateway itself") || err.contains("port 0"),
                "{url}: {err}"
            );
        }
        for url in [
            "http://127.0.0.1:5001/hook",
            "http://localhost:3000/webhooks",
            "https://conduit.example.com:8443/",
        ] {
            assert!(policy.check_url(url).is_ok(), "{url}");
        }
        // Without loopback in the allow-list, `localhost` stays a private name.
        let closed = Policy::default();
        assert!(closed.check_url("http://localhost:3000/").is_err());
    }
}
