use super::*;

fn doc(code: &str) -> TicketDoc {
    TicketDoc {
        organizer: "Voelgoed Demo".into(),
        event: "Kaapse Klopse Karnaval, the long night of the minstrels in the city bowl".into(),
        when: "Sat 2 Jan 2027, 20:00 (Africa/Johannesburg)".into(),
        venue: Some("Cape Town Stadium".into()),
        ticket_type: "General admission".into(),
        holder: "Zoë van der Merwe".into(),
        details: vec![("Dietary needs".into(), "Vegetarian".into())],
        seat: None,
        order_number: "0194-ABCD".into(),
        code: code.into(),
    }
}

#[test]
fn the_qr_code_decodes_to_the_ticket_code_and_the_page_says_what_it_admits() {
    let code = "VG1.k1.AZQ3b2xvZ2ljYWwtdGlja2V0LWlkLWFuZC1ldmVudA.c2lnbmF0dXJlLW9mLXNpeHR5LWZvdXItYnl0ZXMtZWQyNTUxOS1zaWduYXR1cmUtaGVyZQ";
    let pdf = render(&doc(code)).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    assert_eq!(decode::qr_codes(&pdf).unwrap(), vec![code.to_string()]);
    let text = decode::text(&pdf).unwrap();
    for want in [
        "Kaapse Klopse",
        "20:00 (Africa/Johannesburg)",
        "Cape Town Stadium",
        "General admission",
        "Dietary needs: Vegetarian",
        "Order 0194-ABCD",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
}

#[test]
fn a_seat_is_printed_when_there_is_one() {
    let mut d = doc("VG1.k.a.b");
    d.seat = Some("Block C, row 12, seat 7".into());
    let text = decode::text(&render(&d).unwrap()).unwrap();
    assert!(text.contains("Seat Block C, row 12, seat 7"), "{text}");
}

#[test]
fn a_code_too_long_for_a_qr_code_is_an_error_not_a_panic() {
    let long = "x".repeat(5000);
    assert!(render(&doc(&long)).is_err());
}

#[test]
fn long_lines_wrap_at_spaces_and_long_words_are_cut() {
    assert_eq!(wrap("one two three", 7), vec!["one two", "three"]);
    assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    assert_eq!(wrap("", 4), vec![""]);
}
