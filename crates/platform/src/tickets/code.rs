//! Ticket codes. Two formats verify; new tickets get the second.
//!
//! - `VG1.<kid>.<base64url(ticket id ‖ event id)>.<base64url(signature)>`,
//!   the signature covering everything before the last dot (byte mode in
//!   a QR code, ~145 characters).
//! - `VG2<base32(payload ‖ signature)>`: RFC 4648 base32 without padding,
//!   so every character is in the QR code's alphanumeric set (5.5 bits a
//!   character instead of 8) and a person can type it (any case). The
//!   44-byte payload: kid (4) ‖ ticket id (16) ‖ the event's id, last 8
//!   bytes ‖ the ticket type's id, last 8 bytes ‖ valid from ‖ valid until
//!   (minutes since the Unix epoch, big-endian u32; 0: open). The Ed25519
//!   signature covers `VG2` ‖ payload. The ids are shortened to their
//!   random halves (a v7 id's first bytes are its time: two ids made in
//!   one millisecond share them), 62 random bits each: the signature
//!   makes them unforgeable, and a device matches them against the ids its
//!   manifest names (the server compares the whole ticket it loads).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use data_encoding::BASE32_NOPAD;
use kernel::{
    auth::{Signature, SigningKey, VerifyingKey},
    ids::{EventId, TicketId, TicketTypeId},
};

const PREFIX: &str = "VG1";
const PREFIX2: &str = "VG2";
const PAYLOAD2: usize = 44;
/// Longer than any code we issue; anything longer is garbage.
pub const MAX_CODE_LEN: usize = 256;

/// A ticket's validity window as a code carries it (microseconds; `None`:
/// open on that side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub from: Option<i64>,
    pub until: Option<i64>,
}

const MICROS_PER_MINUTE: i64 = 60_000_000;

fn minutes(at: Option<i64>, round_up: bool) -> u32 {
    at.map_or(0, |us| {
        let m = us.div_euclid(MICROS_PER_MINUTE)
            + i64::from(round_up && us.rem_euclid(MICROS_PER_MINUTE) != 0);
        u32::try_from(m.max(1)).unwrap_or(u32::MAX)
    })
}

fn micros(m: u32) -> Option<i64> {
    (m != 0).then(|| i64::from(m) * MICROS_PER_MINUTE)
}

fn kid_bytes(kid: &str) -> Option<[u8; 4]> {
    if kid.len() != 8 || !kid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&kid[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The first format (kept so tests and tools can make one; every old code
/// still verifies).
pub fn sign(kid: &str, key: &SigningKey, ticket: TicketId, event: EventId) -> String {
    use kernel::auth::Signer;
    let mut payload = [0u8; 32];
    payload[..16].copy_from_slice(ticket.0.as_bytes());
    payload[16..].copy_from_slice(event.0.as_bytes());
    let signed = format!("{PREFIX}.{kid}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// A compact code (`VG2`) for a ticket; the first format when the kid is
/// not one this format carries (8 hex digits, as every key's kid is).
pub fn sign_compact(
    kid: &str,
    key: &SigningKey,
    ticket: TicketId,
    event: EventId,
    ticket_type: TicketTypeId,
    window: Window,
) -> String {
    use kernel::auth::Signer;
    let Some(kid4) = kid_bytes(kid) else {
        return sign(kid, key, ticket, event);
    };
    let mut bytes = Vec::with_capacity(PAYLOAD2 + 64);
    bytes.extend_from_slice(&kid4);
    bytes.extend_from_slice(ticket.0.as_bytes());
    bytes.extend_from_slice(&event.0.as_bytes()[8..]);
    bytes.extend_from_slice(&ticket_type.0.as_bytes()[8..]);
    bytes.extend_from_slice(&minutes(window.from, false).to_be_bytes());
    bytes.extend_from_slice(&minutes(window.until, true).to_be_bytes());
    let mut signed = PREFIX2.as_bytes().to_vec();
    signed.extend_from_slice(&bytes);
    bytes.extend_from_slice(&key.sign(&signed).to_bytes());
    format!("{PREFIX2}{}", BASE32_NOPAD.encode(&bytes))
}

/// The event a code names: the whole id (VG1) or its last 8 bytes (VG2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventRef {
    Id(EventId),
    Prefix([u8; 8]),
}

/// A code whose shape is right; its signature is not checked yet.
#[derive(Debug, Clone)]
pub struct ParsedCode {
    pub kid: String,
    pub ticket: TicketId,
    pub event: EventRef,
    /// The ticket type's id, last 8 bytes (VG2 only).
    pub ticket_type: Option<[u8; 8]>,
    pub window: Window,
    signed: Vec<u8>,
    signature: Signature,
}

impl ParsedCode {
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(&self.signed, &self.signature).is_ok()
    }

    /// Whether the code names `event`.
    pub fn is_for(&self, event: EventId) -> bool {
        match self.event {
            EventRef::Id(e) => e == event,
            EventRef::Prefix(p) => event.0.as_bytes()[8..] == p,
        }
    }

    /// Whether the code names `tt` (a VG1 code names no type: any).
    pub fn is_of_type(&self, tt: TicketTypeId) -> bool {
        self.ticket_type.is_none_or(|p| tt.0.as_bytes()[8..] == p)
    }
}

/// Parses the shape of a code; `None` for anything that is not one.
pub fn parse_code(code: &str) -> Option<ParsedCode> {
    if code.len() > MAX_CODE_LEN {
        return None;
    }
    if code.len() > 3 && code.is_char_boundary(3) && code[..3].eq_ignore_ascii_case(PREFIX2) {
        return parse_compact(&code[3..]);
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
        event: EventRef::Id(event),
        ticket_type: None,
        window: Window::default(),
        signed: signed.as_bytes().to_vec(),
        signature,
    })
}

fn parse_compact(body: &str) -> Option<ParsedCode> {
    let bytes = BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .ok()?;
    if bytes.len() != PAYLOAD2 + 64 {
        return None;
    }
    let (payload, sig) = bytes.split_at(PAYLOAD2);
    let take8 = |at: usize| -> Option<[u8; 8]> { payload.get(at..at + 8)?.try_into().ok() };
    let take4 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            payload.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let kid: String = payload[..4].iter().map(|b| format!("{b:02x}")).collect();
    let ticket = TicketId(uuid::Uuid::from_slice(&payload[4..20]).ok()?);
    let mut signed = PREFIX2.as_bytes().to_vec();
    signed.extend_from_slice(payload);
    Some(ParsedCode {
        kid,
        ticket,
        event: EventRef::Prefix(take8(20)?),
        ticket_type: Some(take8(28)?),
        window: Window {
            from: micros(take4(36)?),
            until: micros(take4(40)?),
        },
        signed,
        signature: Signature::from_slice(sig).ok()?,
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

    fn compact(key: &SigningKey) -> (String, TicketId, EventId, TicketTypeId) {
        let (t, e, tt) = (TicketId::new(), EventId::new(), TicketTypeId::new());
        let w = Window {
            from: Some(1_800_000_000_000_000),
            until: Some(1_900_000_000_000_000),
        };
        (sign_compact("0a1b2c3d", key, t, e, tt, w), t, e, tt)
    }

    #[test]
    fn a_signed_code_verifies_with_its_key_and_no_other() {
        let key = kernel::auth::generate_signing_key();
        let other = kernel::auth::generate_signing_key();
        let (t, e) = (TicketId::new(), EventId::new());
        let code = sign("k1", &key, t, e);
        let parsed = parse_code(&code).expect("parses");
        assert_eq!(parsed.ticket, t);
        assert!(parsed.is_for(e) && !parsed.is_for(EventId::new()));
        assert_eq!(parsed.kid, "k1");
        assert!(parsed.verify(&key.verifying_key()));
        assert!(!parsed.verify(&other.verifying_key()));
    }

    #[test]
    fn a_compact_code_carries_its_ticket_event_type_and_window() {
        let key = kernel::auth::generate_signing_key();
        let (code, t, e, tt) = compact(&key);
        assert!(code.starts_with("VG2"));
        assert!(
            code.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
            "{code}"
        );
        let p = parse_code(&code).expect("parses");
        assert_eq!((p.kid.as_str(), p.ticket), ("0a1b2c3d", t));
        assert!(p.is_for(e) && !p.is_for(EventId::new()));
        assert!(p.is_of_type(tt) && !p.is_of_type(TicketTypeId::new()));
        // Ids made in the same millisecond as the code's (a series' dates)
        // are never taken for its event or type.
        for _ in 0..10_000 {
            assert!(!p.is_for(EventId::new()) && !p.is_of_type(TicketTypeId::new()));
        }
        // Minutes: the start rounds down, the end up.
        assert_eq!(
            p.window.from,
            Some(1_800_000_000_000_000 / 60_000_000 * 60_000_000)
        );
        assert!(p.window.until.unwrap() >= 1_900_000_000_000_000);
        assert!(p.verify(&key.verifying_key()));
        assert!(!p.verify(&kernel::auth::generate_signing_key().verifying_key()));
        // Typed by hand: any case.
        let lower = format!("vg2{}", code[3..].to_lowercase());
        assert!(parse_code(&lower).unwrap().verify(&key.verifying_key()));
    }

    #[test]
    fn a_compact_code_makes_a_smaller_qr_code() {
        let key = kernel::auth::generate_signing_key();
        let (code, t, e, _) = compact(&key);
        let old = sign("0a1b2c3d", &key, t, e);
        let version = |c: &str| {
            fast_qr::QRBuilder::new(c)
                .ecl(fast_qr::ECL::M)
                .build()
                .unwrap()
                .size
        };
        assert!(
            version(&code) < version(&old),
            "{} vs {}",
            version(&code),
            version(&old)
        );
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
        // A compact code's payload under another's signature.
        let (a, ..) = compact(&key);
        let (b, ..) = compact(&key);
        let split = 3 + (PAYLOAD2 * 8).div_ceil(5);
        let spliced = format!("{}{}", &a[..split], &b[split..]);
        assert!(parse_code(&spliced).is_none_or(|p| !p.verify(&key.verifying_key())));
        for garbage in [
            "",
            "VG1",
            "VG1...",
            "VG2",
            "VG2AAAA",
            "VG2!!!!",
            "hello world",
            "VG1.k1.AAAA.BBBB",
            &"x".repeat(10_000),
            &format!("VG2{}", "A".repeat(173)),
        ] {
            assert!(
                parse_code(garbage).is_none_or(|p| !p.verify(&key.verifying_key())),
                "{garbage:?}"
            );
        }
    }

    proptest::proptest! {
        /// Any bytes as a code: no panic, and nothing verifies.
        #[test]
        fn arbitrary_input_never_parses_into_an_admission(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let key = kernel::auth::generate_signing_key();
            for text in [String::from_utf8_lossy(&bytes).into_owned(), format!("VG2{}", BASE32_NOPAD.encode(&bytes))] {
                if let Some(p) = parse_code(&text) {
                    proptest::prop_assert!(!p.verify(&key.verifying_key()));
                }
            }
        }

        /// A genuine code (either format) with any character changed, or
        /// cut short, never verifies as a code of its ticket.
        #[test]
        fn a_damaged_code_never_verifies(pos in 0usize..200, byte in proptest::num::u8::ANY, cut in 0usize..200) {
            let key = kernel::auth::generate_signing_key();
            let (ticket, event) = (TicketId::new(), EventId::new());
            let (v2, t2, e2, _) = compact(&key);
            for (code, ticket, event) in [(sign("k1", &key, ticket, event), ticket, event), (v2, t2, e2)] {
                let mut damaged = code.clone().into_bytes();
                let i = pos % damaged.len();
                damaged[i] = byte;
                let damaged = String::from_utf8_lossy(&damaged).into_owned();
                if !damaged.eq_ignore_ascii_case(&code)
                    && let Some(p) = parse_code(&damaged)
                {
                    proptest::prop_assert!(!(p.verify(&key.verifying_key()) && p.ticket == ticket && p.is_for(event)));
                }
                let truncated = &code[..cut % code.len()];
                if let Some(p) = parse_code(truncated) {
                    proptest::prop_assert!(!p.verify(&key.verifying_key()));
                }
            }
        }
    }

    #[test]
    fn a_code_renders_as_svg() {
        let svg = qr_svg("VG1.k1.abc.def").unwrap();
        assert!(svg.starts_with("<svg"));
    }
}
