//! `smtp`: sending email through the relays (`host:port`) a task grants. The host builds the
//! message from checked parts (addresses parsed, a one-line subject, a plain-text body), so a
//! guest cannot add headers or recipients beyond `to`, and speaks SMTP itself with `lettre`:
//! STARTTLS whenever the relay offers it, with the relay's certificate verified.

use std::str::FromStr;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Capability;
use crate::sandbox::HostState;
use crate::sandbox::bindings::smtp::{Host, Message as Mail};
use crate::sandbox::bindings::types::HostError;

/// Recipients one message may have.
const MAX_RECIPIENTS: usize = 50;
/// The largest body a guest may send.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// The longest subject.
const MAX_SUBJECT_CHARS: usize = 998;

impl Host for HostState {
    async fn send(&mut self, mail: Mail) -> Result<String, HostError> {
        let call = &mut self.call;
        let (host, port) = hmrt_config::parse_endpoint(&mail.relay, "smtp")
            .map_err(|e| HostError::Invalid(format!("relay {e}")))?;
        if !call.grants.smtp.allows(&host, port) {
            return Err(call.deny(Capability::Smtp, format!("{host}:{port}")));
        }
        let message = build(&mail)?;
        let timeout = call.timeout(mail.timeout_ms).ok_or(HostError::Timeout)?;
        let tls = TlsParameters::new(host.clone())
            .map_err(|e| HostError::Failed(format!("TLS setup for {host}: {e}")))?;
        // The relay is dialled at a vetted address; TLS still checks the granted name.
        let addr = super::addr::resolve(&host, port)
            .await
            .map_err(HostError::Failed)?
            .first()
            .map(|a| a.ip().to_string())
            .ok_or_else(|| HostError::Failed(format!("{host} resolves to no address")))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr)
            .port(port)
            .tls(Tls::Opportunistic(tls))
            .timeout(Some(timeout))
            .build();
        match tokio::time::timeout(timeout, transport.send(message)).await {
            Err(_) => Err(HostError::Timeout),
            Ok(Err(e)) => Err(HostError::Failed(format!("smtp {host}:{port}: {e}"))),
            Ok(Ok(response)) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
        }
    }
}

/// The message, or why the guest's parts do not make one.
fn build(mail: &Mail) -> Result<Message, HostError> {
    let invalid = |what: String| HostError::Invalid(what);
    let mailbox = |text: &str| {
        Mailbox::from_str(text).map_err(|e| {
            invalid(format!(
                "{} is not an address: {e}",
                crate::sandbox::untrusted::line(text, crate::sandbox::untrusted::ASKED)
            ))
        })
    };
    if mail.to.is_empty() {
        return Err(invalid("no recipients".into()));
    }
    if mail.to.len() > MAX_RECIPIENTS {
        return Err(invalid(format!("more than {MAX_RECIPIENTS} recipients")));
    }
    if mail.subject.chars().any(char::is_control) {
        return Err(invalid("the subject must be one line".into()));
    }
    if mail.subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(invalid(format!(
            "a subject longer than {MAX_SUBJECT_CHARS} characters"
        )));
    }
    if mail.body.len() > MAX_BODY_BYTES {
        return Err(invalid(format!(
            "a body of more than {MAX_BODY_BYTES} bytes"
        )));
    }
    let mut builder = Message::builder()
        .from(mailbox(&mail.from)?)
        .subject(mail.subject.as_str())
        .header(ContentType::TEXT_PLAIN);
    for to in &mail.to {
        builder = builder.to(mailbox(to)?);
    }
    builder
        .body(mail.body.clone())
        .map_err(|e| invalid(format!("cannot build the message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> Mail {
        Mail {
            relay: "127.0.0.1:25".into(),
            from: "hmrt@example.org".into(),
            to: vec!["ops@example.org".into()],
            subject: "web is unhealthy".into(),
            body: "status 500".into(),
            timeout_ms: 0,
        }
    }

    #[test]
    fn a_guest_cannot_add_headers_or_recipients() {
        let bad = [
            Mail {
                subject: "x\r\nBcc: evil@example.org".into(),
                ..mail()
            },
            Mail {
                to: vec!["ops@example.org\r\nBcc: evil@example.org".into()],
                ..mail()
            },
            Mail {
                from: "a@b, evil@example.org".into(),
                ..mail()
            },
            Mail {
                to: vec![],
                ..mail()
            },
        ];
        for m in bad {
            assert!(
                matches!(build(&m), Err(HostError::Invalid(_))),
                "{m:?} accepted"
            );
        }
        let built = String::from_utf8(build(&mail()).unwrap().formatted()).unwrap();
        assert!(built.contains("Subject: web is unhealthy"), "{built}");
        assert!(built.contains("To: ops@example.org"), "{built}");
    }
}
