use super::*;

/// Strings that are personal data, with the detector that must fire.
const POSITIVE: &[(&str, Pii)] = &[
    ("parent@example.com", Pii::Email),
    ("Contact: Priya.Sharma+kids@mail.co.in please", Pii::Email),
    ("+1 415 555 2671", Pii::Phone),
    ("(415) 555-2671", Pii::Phone),
    ("+91 98765 43210", Pii::Phone),
    ("call 98765 43210", Pii::Phone),
    ("9876543210", Pii::Phone),
    ("+442071838750", Pii::Phone),
    ("4111 1111 1111 1111", Pii::PaymentCard),
    ("5500-0000-0000-0004", Pii::PaymentCard),
    ("340000000000009", Pii::PaymentCard),
    ("ssn 123-45-6789", Pii::UsSsn),
    ("2345 6789 0124", Pii::Aadhaar),
    ("ABCPE1234F", Pii::IndianPan),
    ("client at 203.0.113.42 said", Pii::IpAddress),
    ("2001:db8::8a2e:370:7334", Pii::IpAddress),
    ("fe80::1%eth0", Pii::IpAddress),
    ("12.9716, 77.5946", Pii::LatLong),
    ("-33.8688;151.2093", Pii::LatLong),
    ("https://app.example/reset?token=abc123", Pii::UrlSecret),
    (
        "https://app.example/invite?to=mum%40example.com",
        Pii::UrlSecret,
    ),
    ("www.example.com/a?email=x@y.org", Pii::UrlSecret),
];

/// Strings that look numeric or structured but are not personal data.
const NEGATIVE: &[&str] = &[
    "1763000000",           // epoch seconds
    "1763000000123",        // epoch milliseconds
    "order-000123456789",   // order id
    "ORD1234567890",        // order id
    "3.4.0",                // version
    "10.0.19041.1",         // Windows build
    "v2.45.0-beta.3",       // version
    "2026-11-22T10:00:00Z", // timestamp
    "2026-11-22",           // date
    "4111111111111112",     // Luhn fails
    "1234567812345678",     // Luhn fails
    "000-12-3456",          // invalid SSN area
    "123456789012",         // Aadhaar shape, Verhoeff fails, starts with 1
    "12.5, 3.25",           // low precision numbers
    "https://example.com/stories?page=2&sort=new",
    "no personal data here at all",
    "user@localhost",                       // no TLD
    "1080x1920",                            // screen
    "session 90b485fefda8",                 // hex id
    "a1b2c3d4-e5f6-4a5b-8c9d-0e1f2a3b4c5d", // uuid
    "12:30:45",                             // time of day
    "Score: 1234 / 5678",
];

#[test]
fn every_positive_sample_is_detected() {
    for (s, kind) in POSITIVE {
        let found = detect(s);
        assert!(
            found.contains(*kind),
            "{s:?}: expected {kind:?}, got {:?}",
            found.iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn negative_samples_stay_clean() {
    for s in NEGATIVE {
        let found = detect(s);
        assert!(
            found.is_empty(),
            "{s:?}: false positive {:?}",
            found.iter().collect::<Vec<_>>()
        );
    }
}

#[test]
fn redaction_removes_what_was_found_and_keeps_the_rest() {
    let s = "mail parent@example.com or +1 415 555 2671 from 203.0.113.42, see https://a.example/x?token=t1";
    let r = redact(s).unwrap();
    assert!(detect(&r).is_empty(), "{r}");
    assert!(
        r.starts_with("mail [redacted:email] or [redacted:phone] from [redacted:ip_address]"),
        "{r}"
    );
    assert!(r.ends_with("https://a.example/x"), "{r}");
    assert_eq!(redact("nothing to see"), None);
}

proptest::proptest! {
    /// Whatever surrounds a planted email or card, it is found and redaction leaves none.
    #[test]
    fn planted_pii_is_found_in_any_context(prefix in "[a-zA-Z ,.:;!?]{0,20}", suffix in "[a-zA-Z ,.:;!?]{0,20}", which in 0usize..4) {
        let planted = ["kid.one@example.org", "4111 1111 1111 1111", "+91 98765 43210", "ABCPE1234F"][which];
        let s = format!("{prefix} {planted} {suffix}");
        proptest::prop_assert!(!detect(&s).is_empty());
        let r = redact(&s).unwrap();
        proptest::prop_assert!(detect(&r).is_empty(), "{}", r);
    }

    #[test]
    fn detectors_never_panic(s in "\\PC{0,80}") {
        let _ = detect(&s);
        let _ = redact(&s);
    }
}
