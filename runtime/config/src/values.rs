//! Parsers for the value syntaxes the config adds on top of TOML. Durations are not here: they
//! are `hmrt_domain::duration`, the one grammar of the project.

/// A memory size: digits, then optionally a unit: `B`, decimal `KB` `MB` `GB` `TB`, binary
/// `KiB` `MiB` `GiB` `TiB` (units case-insensitive). No unit means bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let shape = "write it as \"512KiB\", \"64MiB\", \"1GiB\", \"10MB\" or a number of bytes";
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    if digits == 0 {
        return Err(format!("invalid size {text:?}: {shape}"));
    }
    let number: u64 = trimmed[..digits]
        .parse()
        .map_err(|_| format!("size {text:?} is too large"))?;
    let multiplier: u64 = match trimmed[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        unit => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {unit:?}; {shape}"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// supervisord's address as supervisorctl's `-s` takes it: `unix:///abs/path` or
/// `http://host[:port]` (no port: 80, as supervisorctl takes it). [`crate::ServerUrl::parse`]
/// is the one parser; this only words its error the way the config's messages read (the key
/// is already named in front of it).
pub(crate) fn parse_serverurl(text: &str) -> Result<crate::ServerUrl, String> {
    crate::ServerUrl::parse(text).map_err(|e| format!("{:?}: {}", e.url, e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("10 mb"), Ok(10_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("7B"), Ok(7));
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "12 parsecs",
            "99999999999TiB",
            "1e3",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn serverurls() {
        use crate::ServerUrl;
        assert_eq!(
            parse_serverurl("unix:///tmp/supervisor.sock"),
            Ok(ServerUrl::Unix("/tmp/supervisor.sock".into()))
        );
        assert_eq!(
            parse_serverurl("http://127.0.0.1:9001"),
            Ok(ServerUrl::Http {
                host: "127.0.0.1".into(),
                port: 9001
            })
        );
        // No port is port 80, as supervisorctl reads it.
        assert_eq!(
            parse_serverurl("http://127.0.0.2"),
            Ok(ServerUrl::Http {
                host: "127.0.0.2".into(),
                port: 80
            })
        );
        assert_eq!(
            parse_serverurl("http://h:1/RPC2"),
            Err("\"http://h:1/RPC2\": it must not have a path, query or fragment".to_owned())
        );
        for bad in [
            "unix://tmp/s.sock",
            "https://h:1",
            "http://h:1/RPC2",
            "http://u:p@h:1",
            "tcp://h:1",
            "/tmp/s.sock",
        ] {
            assert!(parse_serverurl(bad).is_err(), "{bad} accepted");
        }
    }
}
