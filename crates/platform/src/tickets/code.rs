//! The ticket code: `VG1.<kid>.<base64url(ticket id ‖ event id)>.<base64url(Ed25519 signature)>`,
//! the signature covering everything before the last dot.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kernel::{
    auth::{Signature, SigningKey, VerifyingKey},
    ids::{EventId, TicketId},
};

const PREFIX: &str = "VG1";
/// Longer than any code we issue; anything longer is garbage.
pub const MAX_CODE_LEN: usize = 256;

pub fn sign(kid: &str, key: &SigningKey, ticket: TicketId, event: EventId) -> String {
    use kernel::auth::Signer;
    let mut payload = [0u8; 32];
    payload[..16].copy_from_slice(ticket.0.as_bytes());
    payload[16..].copy_from_slice(event.0.as_bytes());
    let signed = format!("{PREFIX}.{kid}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// A code whose shape is right; its signature is not checked yet.
#[derive(Debug, Clone)]
pub struct ParsedCode {
    pub kid: String,
    pub ticket: TicketId,
    pub event: EventId,
    signed: String,
    signature: Signature,
}

impl ParsedCode {
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(self.signed.as_bytes(), &self.signature)
            .is_ok()
    }
}

/// Parses the shape of a code; `None` for anything that is not one.
pub fn parse_code(code: &str) -> Option<ParsedCode> {
    if code.len() > MAX_CODE_LEN {
        return None;
    }
    let (signed, sig_b64) = code.rsplit_once('.')?;
    let mut parts = signed.split('.');
    let (prefix, kid, payload_b64) = (parts.next()?, parts.next()?, parts.next()?);
    if prefix != PREFIX || parts.next().is_some() || kid.is_empty() || kid.len() > 16 {
        return None;
    }
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).ok()?;
    if payload.len() != 32 {
        return None;
    }
    let signature = Signature::from_slice(&sig).ok()?;
    let ticket = TicketId(uuid::Uuid::from_slice(&payload[..16]).ok()?);
    let event = EventId(uuid::Uuid::from_slice(&payload[16..]).ok()?);
    Some(ParsedCode {
        kid: kid.to_string(),
        ticket,
        event,
        signed: signed.to_string(),
        signature,
    })
}

/// The code as an SVG QR image.
pub fn qr_svg(code: &str) -> Option<String> {
    let qr = fast_qr::QRBuilder::new(code)
        .ecl(fast_qr::ECL::M)
        .build()
        .ok()?;
    Some(fast_qr::convert::svg::SvgBuilder::default().to_str(&qr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_code_verifies_with_its_key_and_no_other() {
        let key = kernel::auth::generate_signing_key();
        let other = kernel::auth::generate_signing_key();
        let (t, e) = (TicketId::new(), EventId::new());
        let code = sign("k1", &key, t, e);
        let parsed = parse_code(&code).expect("parses");
        assert_eq!(
            (parsed.ticket, parsed.event, parsed.kid.as_str()),
            (t, e, "k1")
        );
        assert!(parsed.verify(&key.verifying_key()));
        assert!(!parsed.verify(&other.verifying_key()));
    }

    #[test]
    fn forged_truncated_and_garbage_codes_do_not_verify() {
        let key = kernel::auth::generate_signing_key();
        let code = sign("k1", &key, TicketId::new(), EventId::new());
        // Truncated.
        assert!(
            parse_code(&code[..code.len() - 5]).is_none_or(|p| !p.verify(&key.verifying_key()))
        );
        // Another ticket's payload under this signature.
        let other = sign("k1", &key, TicketId::new(), EventId::new());
        let forged = format!(
            "{}.{}",
            other.rsplit_once('.').unwrap().0,
            code.rsplit_once('.').unwrap().1
        );
        assert!(!parse_code(&forged).unwrap().verify(&key.verifying_key()));
        for garbage in [
            "",
            "VG1",
            "VG1...",
            "hello world",
            "VG1.k1.AAAA.BBBB",
            &"x".repeat(10_000),
        ] {
            assert!(parse_code(garbage).is_none(), "{garbage:?}");
        }
    }

    proptest::proptest! {
        /// Any bytes as a code: no panic, and nothing verifies.
        #[test]
        fn arbitrary_input_never_parses_into_an_admission(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let key = kernel::auth::generate_signing_key();
            let text = String::from_utf8_lossy(&bytes);
            if let Some(p) = parse_code(&text) {
                proptest::prop_assert!(!p.verify(&key.verifying_key()));
            }
        }

        /// A genuine code with any byte changed, dropped or appended never
        /// verifies as a code of its ticket (it may stop parsing at all).
        #[test]
        fn a_damaged_code_never_verifies(pos in 0usize..200, byte in proptest::num::u8::ANY, cut in 0usize..200) {
            let key = kernel::auth::generate_signing_key();
            let (ticket, event) = (TicketId::new(), EventId::new());
            let code = sign("k1", &key, ticket, event);
            let mut damaged = code.clone().into_bytes();
            let i = pos % damaged.len();
            damaged[i] = byte;
            let damaged = String::from_utf8_lossy(&damaged).into_owned();
            if damaged != code
                && let Some(p) = parse_code(&damaged)
            {
                proptest::prop_assert!(!(p.verify(&key.verifying_key()) && p.ticket == ticket && p.event == event));
            }
            let truncated = &code[..cut % code.len()];
            if let Some(p) = parse_code(truncated) {
                proptest::prop_assert!(!p.verify(&key.verifying_key()));
            }
        }
    }

    #[test]
    fn a_code_renders_as_svg() {
        let svg = qr_svg("VG1.k1.abc.def").unwrap();
        assert!(svg.starts_with("<svg"));
    }
}
