//! Addresses: `tcp://HOST:PORT`, `tls://HOST:PORT`, or a bare `HOST:PORT`
//! (plain TCP), checked before anything connects so that a typo is named as
//! one instead of surfacing as a DNS or connection error.

use super::codec::WireError;

/// The transport an address names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `tcp://` (or no scheme): plain TCP.
    Tcp,
    /// `tls://`: TLS over TCP with mutual authentication.
    Tls,
}

/// Splits `tcp://host:port`, `tls://host:port` or `host:port` (plain TCP)
/// into the scheme and `host:port`. Anything else (another or a misspelt
/// scheme such as `tcp:/h:1`, no port, a port that is not a number, an
/// empty host, a path) is [`WireError::Address`].
pub fn parse_address(address: &str) -> Result<(Scheme, &str), WireError> {
    let malformed = || WireError::Address(address.to_string());
    let (scheme, rest) = if let Some(rest) = address.strip_prefix("tcp://") {
        (Scheme::Tcp, rest)
    } else if let Some(rest) = address.strip_prefix("tls://") {
        (Scheme::Tls, rest)
    } else {
        (Scheme::Tcp, address)
    };
    let (host, port) = rest.rsplit_once(':').ok_or_else(malformed)?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        // An IPv6 literal: [::1]:8786.
        inner
            .strip_suffix(']')
            .is_some_and(|h| !h.is_empty() && h.contains(':'))
    } else {
        !host.is_empty() && !host.contains([':', '/', '[', ']', ' '])
    };
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(malformed());
    }
    Ok((scheme, rest))
}

/// `tcp://host:port`, `tls://host:port` or `host:port` to `host:port`.
pub fn socket_address(address: &str) -> Result<&str, WireError> {
    parse_address(address).map(|(_, rest)| rest)
}

/// The host part of `host:port` (IPv6 brackets removed), for TLS's server
/// name; rdask does not check it against the certificate (see
/// [`super::security`]), but rustls needs one.
pub(crate) fn server_name(target: &str) -> rustls::pki_types::ServerName<'static> {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("rdask").expect("a valid DNS name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses_parse() {
        assert_eq!(
            parse_address("tcp://127.0.0.1:8786").unwrap(),
            (Scheme::Tcp, "127.0.0.1:8786")
        );
        assert_eq!(parse_address("tls://sched:1").unwrap(), (Scheme::Tls, "sched:1"));
        assert_eq!(parse_address("localhost:0").unwrap(), (Scheme::Tcp, "localhost:0"));
        assert_eq!(parse_address("tcp://[::1]:8786").unwrap(), (Scheme::Tcp, "[::1]:8786"));
    }

    #[test]
    fn malformed_addresses_are_named() {
        for bad in [
            "tcp:/127.0.0.1:8786",
            "tcp//127.0.0.1:8786",
            "xyz://127.0.0.1:8786",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:port",
            "tcp://:8786",
            "tcp://127.0.0.1:99999",
            "http://127.0.0.1:8787/metrics",
            "",
        ] {
            let e = parse_address(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("malformed address {bad:?}: expected tcp://HOST:PORT or tls://HOST:PORT")
            );
        }
    }
}
