//! Parsers for the value syntaxes the config adds on top of TOML. Durations are not here: they
//! are `hmrt_domain::duration`, the one grammar of the project.

/// A memory size: [`hmrt_domain::size::parse`], the one grammar of the project.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    hmrt_domain::size::parse(text)
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
