//! Where mail goes: an SMTP server (lettre, STARTTLS when the server offers
//! it unless the URL insists), or `.eml` files under the data dir's `mail/`
//! so the embedded mode shows what it would have sent.

use std::path::PathBuf;

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    transport::smtp::Error as SmtpError,
};

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf, AsyncFileTransport<Tokio1Executor>),
}

/// Why a message did not go: worth another try later, or never.
#[derive(Debug)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

/// The URL lettre is given: a plain `smtp://` URL without a `tls`
/// parameter upgrades with STARTTLS when the server offers it.
fn effective_url(url: &str) -> String {
    if url.starts_with("smtp://") && !url.contains("tls=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}tls=opportunistic")
    } else {
        url.to_string()
    }
}

/// Whether lettre accepts `url` (checked when the configuration is read,
/// so a typo stops the node at start, not at the first order).
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
        return Err("must start with smtp:// or smtps://".into());
    }
    AsyncSmtpTransport::<Tokio1Executor>::from_url(&effective_url(url))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Transport {
    pub fn new(config: &kernel::Config) -> Transport {
        match config.smtp_url.as_deref() {
            Some(url) => {
                match AsyncSmtpTransport::<Tokio1Executor>::from_url(&effective_url(url)) {
                    Ok(b) => {
                        Transport::Smtp(b.timeout(Some(std::time::Duration::from_secs(30))).build())
                    }
                    // The configuration was checked; this is a bug, and mail
                    // then lands in files rather than nowhere.
                    Err(e) => {
                        tracing::error!(error = %e, "the SMTP URL does not parse; writing mail to files");
                        Transport::files(config)
                    }
                }
            }
            None => Transport::files(config),
        }
    }

    fn files(config: &kernel::Config) -> Transport {
        let dir = config.data_dir.join("mail");
        Transport::Files(dir.clone(), AsyncFileTransport::new(dir))
    }

    /// A short description for logs and the mail page.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "SMTP".into(),
            Transport::Files(dir, _) => format!(".eml files in {}", dir.display()),
        }
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        match self {
            Transport::Smtp(t) => t.send(message.clone()).await.map(|_| ()).map_err(classify),
            Transport::Files(dir, t) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| SendError::Transient(format!("{}: {e}", dir.display())))?;
                t.send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError::Transient(e.to_string()))
            }
        }
    }
}

/// A 5xx answer will not change on a retry; everything else may.
fn classify(e: SmtpError) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_upgrades_when_offered_and_explicit_choices_stay() {
        assert_eq!(
            effective_url("smtp://mx:25"),
            "smtp://mx:25?tls=opportunistic"
        );
        assert_eq!(
            effective_url("smtp://u:p@mx:587?tls=required"),
            "smtp://u:p@mx:587?tls=required"
        );
        assert_eq!(effective_url("smtps://mx"), "smtps://mx");
        assert!(check_smtp_url("smtp://user:secret@127.0.0.1:2525").is_ok());
        assert!(check_smtp_url("smtps://mail.example.com").is_ok());
        assert!(check_smtp_url("http://mx").is_err());
        assert!(check_smtp_url("smtp://").is_err());
    }
}
