//! Where a name may lead. A grant that names a host by name (`http://collect.vendor.example`)
//! is a grant to that service on the public network, not to whatever the name resolves to
//! today: DNS can be pointed at 127.0.0.1, a private network or the cloud's metadata service
//! (169.254.169.254) at any time. So every address a name resolves to is vetted, and the
//! connection goes to a vetted address only; a task that means to reach an internal address
//! grants that address literally, and then no name is resolved at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address on the public internet: not loopback, private, link-local
/// (where cloud metadata services live), shared, multicast, reserved or unspecified, also
/// when it is an IPv4 address dressed as IPv6.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x2001 && ip.segments()[1] == 0) // Teredo: the far end is not what it says
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:ab:cd::`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0; 5]
        && (s[5] == 0xffff || (s[5] == 0 && !ip.is_loopback() && !ip.is_unspecified()))
    {
        return Some(tail());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
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

/// The addresses `host` resolves to that may be connected to. An IP literal is returned as
/// it is: the grant named it. A name's addresses are vetted with [`is_public`]; when none is
/// left, the error says what it resolved to and how to grant it.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("cannot resolve {bare}: {e}"))?
        .collect();
    vetted(bare, found)
}

/// `found` without the addresses that are not public, or why none is left.
pub(crate) fn vetted(name: &str, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
        found.into_iter().partition(|a| is_public(a.ip()));
    if !public.is_empty() {
        return Ok(public);
    }
    match refused.first() {
        None => Err(format!("{name} resolves to no address")),
        Some(addr) => Err(format!(
            "{name} resolves to {}, which is not a public address; a name in a grant reaches \
             only public addresses: grant the address itself to reach it",
            addr.ip()
        )),
    }
}

/// The resolver of the shared HTTP client: names resolve to vetted addresses only, and
/// reqwest connects to what this returns, so no second lookup can rebind the name.
#[derive(Debug, Default)]
pub(crate) struct VettingResolver;

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve(&name, 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public(text.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_not_public_in_any_dress() {
        for internal in [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!public(internal), "{internal} passed as public");
        }
        for outside in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(public(outside), "{outside} refused");
        }
    }

    #[test]
    fn a_name_leads_only_to_public_addresses() {
        let found = vec![
            "127.0.0.1:80".parse().unwrap(),
            "1.1.1.1:80".parse().unwrap(),
        ];
        assert_eq!(
            vetted("x.example", found).unwrap(),
            vec!["1.1.1.1:80".parse::<SocketAddr>().unwrap()]
        );
        let err = vetted("x.example", vec!["169.254.169.254:80".parse().unwrap()]).unwrap_err();
        assert!(
            err.contains("169.254.169.254") && err.contains("grant the address"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn localhost_by_name_is_refused_and_by_address_is_not() {
        let err = resolve("localhost", 80).await.unwrap_err();
        assert!(err.contains("not a public address"), "{err}");
        assert_eq!(
            resolve("127.0.0.1", 80).await.unwrap(),
            vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(resolve("[::1]", 80).await.unwrap().len(), 1);
    }
}
