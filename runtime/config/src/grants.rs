//! Grants: what a check or an action may touch. Deny by default: a kind not written grants
//! nothing, and every kind is an exact allow-list with no wildcards (the one exception, `*` and
//! `**` in an exec grant's `args`, stands for whole arguments), so what a task may reach can be
//! read off the config line by line.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::Location;
use crate::host_grants::{FileGrants, NamedGrants};

/// The grants of one check or one action.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grants {
    /// Origins the plugin may send HTTP requests to.
    pub http: HttpGrants,
    /// Programs the plugin may run.
    pub exec: ExecGrants,
    /// supervisord programs the plugin may query and control.
    pub supervisor: SupervisorGrants,
    /// Endpoints the plugin may open TCP connections to.
    pub tcp: TcpGrants,
    /// SMTP relays (`host:port`) the plugin may send email through.
    pub smtp: TcpGrants,
    /// Host resources the plugin may read (`cpu`, `memory`, `load`, `disk:/`, `network:eth0`).
    pub system: NamedGrants,
    /// Services whose process figures the plugin may read (`supervisor:web`, `docker:app`,
    /// `systemd:nginx.service`).
    pub process: NamedGrants,
    /// Paths the plugin may read.
    pub files: FileGrants,
    /// Docker containers the plugin may inspect and control.
    pub docker: NamedGrants,
    /// systemd units the plugin may inspect and control.
    pub systemd: NamedGrants,
}

impl Grants {
    /// Whether nothing at all is granted.
    pub fn is_empty(&self) -> bool {
        self.kinds().is_empty()
    }

    /// The capabilities something is granted for, as the `grants` keys spell them.
    pub fn kinds(&self) -> Vec<&'static str> {
        [
            ("http", self.http.origins.is_empty()),
            ("exec", self.exec.programs.is_empty()),
            ("supervisor", self.supervisor.programs.is_empty()),
            ("tcp", self.tcp.endpoints.is_empty()),
            ("smtp", self.smtp.endpoints.is_empty()),
            ("system", self.system.is_empty()),
            ("process", self.process.is_empty()),
            ("files", self.files.is_empty()),
            ("docker", self.docker.is_empty()),
            ("systemd", self.systemd.is_empty()),
        ]
        .into_iter()
        .filter(|(_, empty)| !empty)
        .map(|(kind, _)| kind)
        .collect()
    }
}

/// One HTTP origin: scheme, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// The host as the URL parser normalises it (lowercase; IPv6 in brackets).
    pub host: String,
    /// The port, the scheme's default when not written.
    pub port: u16,
    /// Where the grant is written.
    pub location: Location,
}

/// HTTP grants: a list of origins (`scheme://host[:port]`).
///
/// A URL is allowed when its scheme, host and port equal one origin's exactly. There are no
/// wildcards: `http://example.com` does not cover `http://api.example.com`, `localhost` does not
/// cover `127.0.0.1`, and `http://x` does not cover `https://x`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpGrants {
    /// The granted origins, in the order written.
    pub origins: Vec<HttpOrigin>,
}

impl HttpGrants {
    /// Whether a request to `url` is allowed.
    pub fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let Some(port) = url.port_or_known_default() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.origins
            .iter()
            .any(|o| o.scheme == url.scheme() && o.host == host && o.port == port)
    }

    /// The origin that allows `url`, if any (to say which grant a request was allowed by).
    pub fn origin_for(&self, url: &Url) -> Option<&HttpOrigin> {
        let host = url.host_str()?.to_ascii_lowercase();
        let port = url.port_or_known_default()?;
        self.origins
            .iter()
            .find(|o| o.scheme == url.scheme() && o.host == host && o.port == port)
    }
}

/// Parses an HTTP grant. It must be an origin: no path other than `/`, no query, no fragment,
/// no user or password.
pub(crate) fn parse_http_origin(text: &str) -> Result<(String, String, u16), String> {
    const SHAPE: &str = "a grant is an origin (scheme://host[:port])";
    let url = Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}; {SHAPE}"))?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "{text:?} has scheme {scheme:?}; the scheme must be http or https"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?} contains a user or password; {SHAPE}, and credentials do not belong in grants"
        ));
    }
    if url.path() != "/" {
        return Err(format!(
            "{text:?} has a path ({:?}); {SHAPE}, and it allows every path on it",
            url.path()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} has a query or fragment; {SHAPE}"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{text:?} has no host; {SHAPE}"))?
        .to_ascii_lowercase();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{text:?} has no port and its scheme has no default"))?;
    Ok((scheme.to_string(), host, port))
}

/// One granted program, with the arguments it may be run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecProgram {
    /// The program as written in the grant: a bare name or an absolute path.
    pub name: String,
    /// The absolute path it resolved to when the config was loaded.
    pub path: PathBuf,
    /// The arguments this grant allows: any for a bare-string grant, else the `args` patterns.
    pub args: ExecArgs,
    /// Where the grant is written.
    pub location: Location,
}

impl fmt::Display for ExecProgram {
    /// `find with args ["/var/log", "-name", "*"]`, `pg_isready with any arguments`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.args {
            ExecArgs::Any => write!(f, "{} with any arguments", self.name),
            args => write!(f, "{} with args {args}", self.name),
        }
    }
}

/// One element of an exec grant's `args` pattern; each matches one argument, except `**`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgPattern {
    /// This argument, byte for byte.
    Exact(String),
    /// `*`: exactly one argument, of any value (a literal `*` included).
    One,
    /// `**`, only as the last element: zero or more remaining arguments, of any value.
    Rest,
}

/// The arguments an exec grant allows.
///
/// A bare-string grant (`exec = ["pg_isready"]`) allows any arguments. The table form
/// (`exec = [{ program = "find", args = ["/var/log", "-name", "*"] }]`) allows exactly the
/// argument lists its pattern matches: each element matches one argument exactly, `*` matches
/// one argument of any value, `**` (only last) matches whatever arguments remain, and
/// `args = []` allows no arguments at all. Nothing else is special: no prefixes, no globs
/// inside an argument, so `-name` never matches `-exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecArgs {
    /// Any arguments (a bare-string grant).
    Any,
    /// Arguments matching these patterns, element by element.
    Pattern(Vec<ArgPattern>),
}

impl ExecArgs {
    /// Reads an `args` pattern as written. `Err` names the index of an element it refuses (a
    /// `**` that is not last) and why.
    pub fn parse<S: AsRef<str>>(written: &[S]) -> Result<ExecArgs, (usize, String)> {
        let last = written.len().saturating_sub(1);
        let mut patterns = Vec::with_capacity(written.len());
        for (i, element) in written.iter().enumerate() {
            patterns.push(match element.as_ref() {
                "*" => ArgPattern::One,
                "**" if i == last => ArgPattern::Rest,
                "**" => {
                    let why = "\"**\" matches all the remaining arguments, so it may only be the \
                               last element of args";
                    return Err((i, why.to_string()));
                }
                exact => ArgPattern::Exact(exact.to_string()),
            });
        }
        Ok(ExecArgs::Pattern(patterns))
    }

    /// Whether a call with these arguments (not counting the program itself) is allowed.
    pub fn matches<S: AsRef<str>>(&self, args: &[S]) -> bool {
        let ExecArgs::Pattern(patterns) = self else {
            return true;
        };
        let mut args = args.iter();
        for pattern in patterns {
            match pattern {
                ArgPattern::Rest => return true,
                ArgPattern::One => {
                    if args.next().is_none() {
                        return false;
                    }
                }
                ArgPattern::Exact(want) => {
                    if args.next().is_none_or(|a| a.as_ref() != want) {
                        return false;
                    }
                }
            }
        }
        args.next().is_none()
    }
}

impl fmt::Display for ExecArgs {
    /// As written in the config: `["/var/log", "-name", "*"]`; `any arguments` for a bare grant.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ExecArgs::Pattern(patterns) = self else {
            return f.write_str("any arguments");
        };
        f.write_str("[")?;
        for (i, pattern) in patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match pattern {
                ArgPattern::Exact(arg) => write!(f, "{arg:?}")?,
                ArgPattern::One => f.write_str("\"*\"")?,
                ArgPattern::Rest => f.write_str("\"**\"")?,
            }
        }
        f.write_str("]")
    }
}

/// Exec grants: programs, resolved to absolute paths when the config loads (a bare name through
/// the `PATH` of the hmrt process), so a later change of `PATH` cannot change what runs, each
/// with the arguments it may be given. Several grants of one program are alternatives: a call
/// is allowed when any of them allows its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecGrants {
    /// The granted programs, in the order written.
    pub programs: Vec<ExecProgram>,
}

impl ExecGrants {
    /// The absolute path to run for `requested`, if it is granted with any arguments at all. A
    /// guest may ask for a program by the name written in the grant or by its resolved absolute
    /// path; nothing else matches. Whether a call's arguments are allowed is [`Self::allow`].
    pub fn resolve(&self, requested: &str) -> Option<&Path> {
        self.programs
            .iter()
            .find(|p| p.name == requested || p.path.as_os_str() == OsStr::new(requested))
            .map(|p| p.path.as_path())
    }

    /// The grant that allows running `requested` with `args`, if one does. Grants are of the
    /// same program when they resolved to the same path (`find` and `/usr/bin/find` are one
    /// program), and any of them may allow the call.
    pub fn allow<S: AsRef<str>>(&self, requested: &str, args: &[S]) -> Option<&ExecProgram> {
        let path = self.resolve(requested)?;
        self.programs
            .iter()
            .find(|p| p.path == path && p.args.matches(args))
    }
}

/// Resolves an exec grant to an absolute path: a bare name is searched in `path_env` (absolute
/// directories only: an empty or relative `PATH` entry would make the result depend on the
/// working directory), an absolute path must be an executable file, and a relative path with a
/// slash is refused for the same reason.
pub(crate) fn resolve_exec(name: &str, path_env: Option<&OsStr>) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("the program name is empty".to_string());
    }
    let path = Path::new(name);
    if path.is_absolute() {
        return match executable_file(path) {
            Ok(()) => Ok(path.to_path_buf()),
            Err(why) => Err(format!("program {name:?} {why}")),
        };
    }
    if name.contains('/') {
        return Err(format!(
            "program {name:?} is a relative path; write a bare name (searched in PATH) or an \
             absolute path"
        ));
    }
    let Some(path_env) = path_env else {
        return Err(format!(
            "program {name:?} not found: PATH is not set for hmrt"
        ));
    };
    std::env::split_paths(path_env)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| executable_file(candidate).is_ok())
        .ok_or_else(|| format!("program {name:?} not found in PATH"))
}

fn executable_file(path: &Path) -> Result<(), &'static str> {
    let meta = std::fs::metadata(path).map_err(|_| "does not exist")?;
    if !meta.is_file() {
        return Err("is not a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("is not executable");
        }
    }
    Ok(())
}

/// One granted supervisord program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorProgram {
    /// The program name, exactly as supervisord knows it (`name` or `group:name`).
    pub name: String,
    /// Where the grant is written (for the grant implied by a shorthand `on_failure`, where that
    /// is written).
    pub location: Location,
}

/// Supervisor grants: exact program names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SupervisorGrants {
    /// The granted programs, in the order written.
    pub programs: Vec<SupervisorProgram>,
}

impl SupervisorGrants {
    /// Whether `program` may be queried and controlled (exact, case-sensitive, as supervisord
    /// compares names).
    pub fn allows(&self, program: &str) -> bool {
        self.programs.iter().any(|p| p.name == program)
    }
}

/// One granted TCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpEndpoint {
    /// The host, lowercased, without the brackets of an IPv6 address.
    pub host: String,
    /// The port (1..=65535).
    pub port: u16,
    /// Where the grant is written.
    pub location: Location,
}

/// TCP grants: exact `host:port` endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpGrants {
    /// The granted endpoints, in the order written.
    pub endpoints: Vec<TcpEndpoint>,
}

impl TcpGrants {
    /// Whether a connection to `host`:`port` is allowed. Hosts compare case-insensitively and an
    /// IPv6 address may be given with or without brackets; nothing else is normalised (no name
    /// resolution: `localhost` does not cover `127.0.0.1`).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = unbracket(host);
        self.endpoints
            .iter()
            .any(|e| e.port == port && e.host.eq_ignore_ascii_case(host))
    }
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Parses a `kind` (tcp, smtp) grant `host:port` (`[v6addr]:port` for IPv6).
pub fn parse_endpoint(text: &str, kind: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: unclosed '[' in an IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("{text:?} has no port; a {kind} grant is host:port"))?;
        (host, port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port; a {kind} grant is host:port"))?;
        if host.contains(':') {
            return Err(format!(
                "{text:?}: write an IPv6 address in brackets, as [::1]:5432"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("{text:?} has no host; a {kind} grant is host:port"));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("{text:?}: {host:?} is not a host name or address"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{text:?}: the port must be a number from 1 to 65535"))?;
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc() -> Location {
        Location::whole_file(Path::new("t.toml"))
    }

    fn http(grants: &[&str]) -> HttpGrants {
        HttpGrants {
            origins: grants
                .iter()
                .map(|g| {
                    let (scheme, host, port) = parse_http_origin(g).unwrap();
                    HttpOrigin {
                        scheme,
                        host,
                        port,
                        location: loc(),
                    }
                })
                .collect(),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn http_origins_match_exactly() {
        let g = http(&["http://127.0.0.1:18080", "https://Example.COM"]);
        assert!(g.allows(&url("http://127.0.0.1:18080/health?x=1")));
        assert!(!g.allows(&url("http://127.0.0.1:18081/health")));
        assert!(!g.allows(&url("https://127.0.0.1:18080/health")));
        assert!(!g.allows(&url("http://localhost:18080/")));
        assert!(g.allows(&url("https://example.com/a")));
        assert!(g.allows(&url("https://EXAMPLE.com:443/a")));
        assert!(!g.allows(&url("https://api.example.com/a")));
        assert!(!g.allows(&url("http://example.com/a")));
        assert_eq!(g.origins[1].port, 443);
        assert_eq!(
            g.origin_for(&url("https://example.com/"))
                .map(|o| o.host.as_str()),
            Some("example.com")
        );
    }

    #[test]
    fn http_grants_must_be_origins() {
        assert!(parse_http_origin("http://h:1/").is_ok());
        for bad in [
            "http://h/health",
            "http://h?x=1",
            "http://h#f",
            "http://u:p@h",
            "ftp://h",
            "h:80",
            "not a url",
        ] {
            assert!(parse_http_origin(bad).is_err(), "{bad} accepted");
        }
        assert!(
            parse_http_origin("http://h/health")
                .unwrap_err()
                .contains("a grant is an origin")
        );
    }

    #[test]
    fn tcp_endpoints() {
        assert_eq!(
            parse_endpoint("DB.local:5432", "tcp").unwrap(),
            ("db.local".to_string(), 5432)
        );
        assert_eq!(
            parse_endpoint("[::1]:80", "tcp").unwrap(),
            ("::1".to_string(), 80)
        );
        for bad in [
            "db", "db:", "db:0", "db:65536", ":80", "::1:80", "[::1]", "a b:1",
        ] {
            assert!(parse_endpoint(bad, "tcp").is_err(), "{bad} accepted");
        }
        let g = TcpGrants {
            endpoints: vec![
                TcpEndpoint {
                    host: "db.local".into(),
                    port: 5432,
                    location: loc(),
                },
                TcpEndpoint {
                    host: "::1".into(),
                    port: 80,
                    location: loc(),
                },
            ],
        };
        assert!(g.allows("DB.Local", 5432));
        assert!(!g.allows("db.local", 5433));
        assert!(g.allows("[::1]", 80));
        assert!(g.allows("::1", 80));
        assert!(!g.allows("127.0.0.1", 80));
    }

    #[test]
    fn exec_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("tool");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let path_env =
            std::env::join_paths(["relative/dir", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(resolve_exec("tool", Some(&path_env)).unwrap(), bin);
        assert!(
            resolve_exec("tool", None)
                .unwrap_err()
                .contains("PATH is not set")
        );
        assert!(
            resolve_exec("missing", Some(&path_env))
                .unwrap_err()
                .contains("not found in PATH")
        );
        assert_eq!(resolve_exec(bin.to_str().unwrap(), None).unwrap(), bin);
        assert!(
            resolve_exec("./tool", Some(&path_env))
                .unwrap_err()
                .contains("relative path")
        );
        #[cfg(unix)]
        {
            assert!(resolve_exec("plain", Some(&path_env)).is_err());
            assert!(
                resolve_exec(plain.to_str().unwrap(), None)
                    .unwrap_err()
                    .contains("not executable")
            );
        }
        assert!(
            resolve_exec(dir.path().to_str().unwrap(), None)
                .unwrap_err()
                .contains("not a file")
        );

        let g = ExecGrants {
            programs: vec![ExecProgram {
                name: "tool".into(),
                path: bin.clone(),
                args: ExecArgs::Any,
                location: loc(),
            }],
        };
        assert_eq!(g.resolve("tool"), Some(bin.as_path()));
        assert_eq!(g.resolve(bin.to_str().unwrap()), Some(bin.as_path()));
        assert_eq!(g.resolve("plain"), None);
        assert_eq!(g.resolve("/bin/tool"), None);
    }

    fn pattern(written: &[&str]) -> ExecArgs {
        ExecArgs::parse(written).unwrap()
    }

    #[test]
    fn exec_args_exact_and_one() {
        let p = pattern(&["/var/log", "-name", "*"]);
        assert!(p.matches(&["/var/log", "-name", "x.log"]));
        assert!(p.matches(&["/var/log", "-name", "*"]));
        assert!(p.matches(&["/var/log", "-name", ""]));
        // `*` is exactly one argument: not none, not two.
        assert!(!p.matches(&["/var/log", "-name"]));
        assert!(!p.matches(&["/var/log", "-name", "x", "-exec"]));
        // Exact elements compare whole arguments, byte for byte.
        assert!(!p.matches(&["/", "-name", "x"]));
        assert!(!p.matches(&["/var/log", "-exec", "x"]));
        assert!(!p.matches(&["/var/log/", "-name", "x"]));
        assert!(!p.matches(&["/var/log", "-Name", "x"]));
        assert!(!p.matches(&["/var/log", "-name=x", "x"]));
    }

    #[test]
    fn exec_args_rest_and_none() {
        let none = pattern(&[]);
        assert!(none.matches::<&str>(&[]));
        assert!(!none.matches(&[""]));
        let rest = pattern(&["status", "**"]);
        assert!(rest.matches(&["status"]));
        assert!(rest.matches(&["status", "a", "b", "c"]));
        assert!(!rest.matches::<&str>(&[]));
        assert!(!rest.matches(&["stop", "a"]));
        assert!(pattern(&["**"]).matches::<&str>(&[]));
        assert!(pattern(&["**"]).matches(&["--checkpoint-action=exec=sh"]));
        assert!(pattern(&["*", "**"]).matches(&["a"]));
        assert!(!pattern(&["*", "**"]).matches::<&str>(&[]));
        assert!(ExecArgs::Any.matches(&["-exec", "rm", "{}", ";"]));
    }

    #[test]
    fn exec_args_double_star_only_last() {
        assert_eq!(ExecArgs::parse(&["**", "x"]).unwrap_err().0, 0);
        assert_eq!(ExecArgs::parse(&["a", "**", "**"]).unwrap_err().0, 1);
        assert!(
            ExecArgs::parse(&["**", "x"])
                .unwrap_err()
                .1
                .contains("last element")
        );
        // A star inside an argument is not a wildcard.
        let p = pattern(&["-name", "*.log"]);
        assert!(p.matches(&["-name", "*.log"]));
        assert!(!p.matches(&["-name", "x.log"]));
    }

    #[test]
    fn exec_args_display_as_written() {
        assert_eq!(
            pattern(&["/var/log", "*", "**"]).to_string(),
            r#"["/var/log", "*", "**"]"#
        );
        assert_eq!(pattern(&[]).to_string(), "[]");
        assert_eq!(ExecArgs::Any.to_string(), "any arguments");
        let program = |args| ExecProgram {
            name: "find".into(),
            path: "/usr/bin/find".into(),
            args,
            location: loc(),
        };
        assert_eq!(
            program(pattern(&["-name", "*"])).to_string(),
            r#"find with args ["-name", "*"]"#
        );
        assert_eq!(
            program(ExecArgs::Any).to_string(),
            "find with any arguments"
        );
    }

    #[test]
    fn exec_grants_load_in_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("probe");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let text = r#"
[[task]]
name = "web"
check = "command"
grants = { exec = [
  "probe",
  { program = "probe", args = ["-c", "*", "**"] },
  { program = "probe", args = [] },
] }
"#;
        let path_env = dir.path().as_os_str();
        let config = crate::Config::parse(text, Path::new("t.toml"), Some(path_env)).unwrap();
        let exec = &config.tasks[0].grants.exec;
        let args: Vec<String> = exec.programs.iter().map(|p| p.args.to_string()).collect();
        assert_eq!(args, ["any arguments", r#"["-c", "*", "**"]"#, "[]"]);
        assert!(exec.programs.iter().all(|p| p.path == bin));
        assert_eq!(exec.programs[1].location.line, 7);
        assert_eq!(exec.programs[1].location.column, 15);
    }

    #[test]
    fn exec_grants_of_one_program_are_alternatives() {
        let grant = |name: &str, args| ExecProgram {
            name: name.into(),
            path: "/usr/bin/find".into(),
            args,
            location: loc(),
        };
        let g = ExecGrants {
            programs: vec![
                grant("find", pattern(&["/var/log", "-name", "*"])),
                grant("/usr/bin/find", pattern(&["/tmp"])),
                ExecProgram {
                    name: "tar".into(),
                    path: "/usr/bin/tar".into(),
                    args: pattern(&["-tf", "*"]),
                    location: loc(),
                },
            ],
        };
        assert!(g.allow("find", &["/var/log", "-name", "a"]).is_some());
        // The second grant, of the same path, is an alternative for either name.
        assert_eq!(
            g.allow("find", &["/tmp"]).map(|p| p.name.as_str()),
            Some("/usr/bin/find")
        );
        assert!(
            g.allow("/usr/bin/find", &["/var/log", "-name", "a"])
                .is_some()
        );
        assert!(g.allow("find", &["/", "-exec", "sh", ";"]).is_none());
        assert!(g.allow("find", &["/tmp", "-delete"]).is_none());
        // Another program's pattern never helps.
        assert!(g.allow("find", &["-tf", "x"]).is_none());
        assert!(g.allow("tar", &["-tf", "x"]).is_some());
        assert!(
            g.allow("tar", &["-xf", "x", "--checkpoint-action=exec=sh"])
                .is_none()
        );
        assert!(g.allow("sh", &["-c", "x"]).is_none());
        assert_eq!(g.resolve("find"), Some(Path::new("/usr/bin/find")));
    }
}
