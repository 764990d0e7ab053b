//! PII detectors over one string (regulation-controls.md A4, C): email, phone (libphonenumber
//! metadata through the `phonenumber` crate, E.164 and US/Indian national formats), payment
//! card (Luhn + issuer prefix), US SSN, Aadhaar (Verhoeff), Indian PAN, IPv4/IPv6 addresses,
//! latitude/longitude pairs, and URLs whose query carries an email or a credential. Tuned
//! against false positives (order ids, epoch timestamps, version strings): each detector wants
//! the shape *and* a check the shape alone does not pass.

use regex::Regex;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pii {
    Email,
    Phone,
    PaymentCard,
    UsSsn,
    Aadhaar,
    IndianPan,
    IpAddress,
    LatLong,
    UrlSecret,
}

impl Pii {
    pub const ALL: [Pii; 9] = [
        Pii::Email,
        Pii::Phone,
        Pii::PaymentCard,
        Pii::UsSsn,
        Pii::Aadhaar,
        Pii::IndianPan,
        Pii::IpAddress,
        Pii::LatLong,
        Pii::UrlSecret,
    ];

    /// The label used in metrics and the privacy lint report.
    pub fn label(self) -> &'static str {
        match self {
            Pii::Email => "email",
            Pii::Phone => "phone",
            Pii::PaymentCard => "payment_card",
            Pii::UsSsn => "us_ssn",
            Pii::Aadhaar => "aadhaar",
            Pii::IndianPan => "indian_pan",
            Pii::IpAddress => "ip_address",
            Pii::LatLong => "lat_long",
            Pii::UrlSecret => "url_secret",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of detector hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PiiSet(u16);

impl PiiSet {
    pub fn insert(&mut self, p: Pii) {
        self.0 |= p.bit();
    }
    pub fn contains(self, p: Pii) -> bool {
        self.0 & p.bit() != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Pii> {
        Pii::ALL.into_iter().filter(move |p| self.contains(*p))
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file; a typo fails every test at once.
    Regex::new(pattern).unwrap_or_else(|e| panic!("detector pattern {pattern}: {e}"))
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)[a-z0-9][a-z0-9._%+-]{0,63}@[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)*\.[a-z]{2,24}",
    )
});
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{3})[- ](\d{2})[- ](\d{4})\b"));
static CARD: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d(?:[ -]?\d){12,18}\b"));
static AADHAAR: LazyLock<Regex> = LazyLock::new(|| re(r"\b[2-9]\d{3}[ -]?\d{4}[ -]?\d{4}\b"));
static PAN: LazyLock<Regex> = LazyLock::new(|| re(r"\b[A-Z]{3}[PCHFATBLJG][A-Z]\d{4}[A-Z]\b"));
static IPV4: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)[0-9a-f:]*:[0-9a-f:]*:[0-9a-f:.]*"));
static LATLONG: LazyLock<Regex> =
    LazyLock::new(|| re(r"(-?\d{1,2}\.\d{3,})\s*[,;/ ]\s*(-?\d{1,3}\.\d{3,})"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| re(r"\+?\(?\d[\d\s().-]{6,18}\d"));
static URL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(?:https?://|www\.)[^\s]+"));

/// Query parameters that carry credentials or contact details.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "authorization",
    "key",
    "api_key",
    "apikey",
    "password",
    "pass",
    "pwd",
    "secret",
    "session",
    "sessionid",
    "sid",
    "sig",
    "signature",
    "code",
    "otp",
    "email",
    "mail",
    "phone",
    "mobile",
];

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn card_issuer(d: &[u32]) -> bool {
    let prefix = |n: usize| d.iter().take(n).fold(0u32, |acc, x| acc * 10 + x);
    let (p1, p2, p4) = (prefix(1), prefix(2), prefix(4));
    let len = d.len();
    (p1 == 4 && matches!(len, 13 | 16 | 19))
        || ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16
        || matches!(p2, 34 | 37) && len == 15
        || (p4 == 6011 || p2 == 65 || (644..=649).contains(&prefix(3))) && (16..=19).contains(&len)
        || (3528..=3589).contains(&p4) && (16..=19).contains(&len)
        || matches!(p2, 36 | 38 | 39) && (14..=19).contains(&len)
        || (p2 == 60 || p2 == 65 || p2 == 81 || p2 == 82 || p4 == 5085) && len == 16
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

fn verhoeff(digits: &[u32]) -> bool {
    let mut c = 0u8;
    for (i, d) in digits.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[i % 8][*d as usize] as usize];
    }
    c == 0
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let a: u32 = area.parse().unwrap_or(0);
    a != 0 && a != 666 && a < 900 && group != "00" && serial != "0000"
}

fn phone_valid(candidate: &str) -> bool {
    let d = digits(candidate);
    let formatted = candidate
        .chars()
        .any(|c| matches!(c, ' ' | '-' | '(' | ')' | '.'));
    let international = candidate.starts_with('+');
    // Bare digit runs are mostly ids and timestamps; only an Indian mobile (10 digits, 6–9
    // first) is taken without formatting.
    if !(international || formatted || d.len() == 10 && d[0] >= 6) {
        return false;
    }
    if d.len() < 7 || d.len() > 15 {
        return false;
    }
    let regions: &[Option<phonenumber::country::Id>] = if international {
        &[None]
    } else {
        &[
            Some(phonenumber::country::Id::US),
            Some(phonenumber::country::Id::IN),
        ]
    };
    regions
        .iter()
        .any(|r| phonenumber::parse(*r, candidate).is_ok_and(|n| phonenumber::is_valid(&n)))
}

fn url_has_secret(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    query.split(['&', '#', ';']).any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.to_ascii_lowercase();
        SECRET_PARAMS.contains(&k.as_str()) || EMAIL.is_match(v) || v.contains("%40")
    })
}

/// Every kind of personal data `s` contains.
pub fn detect(s: &str) -> PiiSet {
    let mut found = PiiSet::default();
    if s.len() < 6 {
        return found;
    }
    // One pass over the bytes says which detectors could match at all: most property names
    // and values are short words or small numbers and need none of them.
    let (mut at, mut colons, mut digit_count, mut dot) = (false, 0usize, 0usize, false);
    for b in s.bytes() {
        match b {
            b'@' => at = true,
            b':' => colons += 1,
            b'.' => dot = true,
            b'0'..=b'9' => digit_count += 1,
            _ => {}
        }
    }
    if !at && colons == 0 && !dot && digit_count < 4 {
        return found;
    }
    if at && EMAIL.is_match(s) {
        found.insert(Pii::Email);
    }
    if ((colons > 0 && s.contains("://")) || (dot && s.contains("www.")))
        && URL.find_iter(s).any(|m| url_has_secret(m.as_str()))
    {
        found.insert(Pii::UrlSecret);
    }
    if digit_count >= 4 {
        if SSN.captures_iter(s).any(|c| ssn_valid(&c[1], &c[2], &c[3])) {
            found.insert(Pii::UsSsn);
        }
        if digit_count >= 13
            && CARD.find_iter(s).any(|m| {
                let d = digits(m.as_str());
                card_issuer(&d) && luhn(&d)
            })
        {
            found.insert(Pii::PaymentCard);
        }
        if AADHAAR.find_iter(s).any(|m| verhoeff(&digits(m.as_str()))) {
            found.insert(Pii::Aadhaar);
        }
        if PAN.is_match(s) {
            found.insert(Pii::IndianPan);
        }
        if IPV4.find_iter(s).any(|m| {
            m.as_str().parse::<Ipv4Addr>().is_ok_and(|ip| {
                // Version strings rarely have four parts of which one is above 9 and none 0-led.
                !ip.is_unspecified()
                    && m.as_str()
                        .split('.')
                        .all(|p| p == "0" || !p.starts_with('0'))
            })
        }) {
            found.insert(Pii::IpAddress);
        }
        if LATLONG.captures_iter(s).any(|c| {
            let lat: f64 = c[1].parse().unwrap_or(999.0);
            let lon: f64 = c[2].parse().unwrap_or(999.0);
            lat.abs() <= 90.0 && lon.abs() <= 180.0 && (lat != 0.0 || lon != 0.0)
        }) {
            found.insert(Pii::LatLong);
        }
        if !found.contains(Pii::PaymentCard)
            && !found.contains(Pii::Aadhaar)
            && !found.contains(Pii::UsSsn)
            && digit_count >= 7
            && PHONE.find_iter(s).any(|m| phone_valid(m.as_str().trim()))
        {
            found.insert(Pii::Phone);
        }
    }
    if colons >= 2 {
        let v6 = IPV6.find_iter(s).any(|m| {
            let t = m.as_str().trim_matches(':');
            m.as_str().matches(':').count() >= 2
                && (m.as_str().parse::<Ipv6Addr>().is_ok() || t.parse::<Ipv6Addr>().is_ok())
                && m.as_str().len() >= 6
        });
        if v6 {
            found.insert(Pii::IpAddress);
        }
    }
    found
}

thread_local! {
    /// The last identifier checked on this thread: a batch is mostly one person's events.
    static LAST_CONTACT_CHECK: std::cell::RefCell<Option<(String, bool)>> =
        const { std::cell::RefCell::new(None) };
}

/// Is `id` an email address or a phone number (contact details used as an identifier)?
pub fn is_contact(id: &str) -> bool {
    LAST_CONTACT_CHECK.with(|last| {
        if let Some((prev, answer)) = &*last.borrow()
            && prev == id
        {
            return *answer;
        }
        let found = detect(id);
        let answer = found.contains(Pii::Email) || found.contains(Pii::Phone);
        *last.borrow_mut() = Some((id.to_string(), answer));
        answer
    })
}

/// `s` with every detected span replaced by `[redacted:<kind>]`, and URL queries that carry
/// secrets removed. Returns `None` when nothing was found.
pub fn redact(s: &str) -> Option<String> {
    let found = detect(s);
    if found.is_empty() {
        return None;
    }
    let mut out = s.to_string();
    if found.contains(Pii::UrlSecret) {
        out = URL
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let u = &c[0];
                if url_has_secret(u) {
                    u.split('?').next().unwrap_or(u).to_string()
                } else {
                    u.to_string()
                }
            })
            .into_owned();
    }
    let mut apply = |re: &Regex, kind: Pii, check: &dyn Fn(&str) -> bool| {
        out = re
            .replace_all(&out, |c: &regex::Captures<'_>| {
                if check(&c[0]) {
                    format!("[redacted:{}]", kind.label())
                } else {
                    c[0].to_string()
                }
            })
            .into_owned();
    };
    apply(&EMAIL, Pii::Email, &|_| true);
    apply(&SSN, Pii::UsSsn, &|m| {
        let p: Vec<&str> = m.split(['-', ' ']).collect();
        p.len() == 3 && ssn_valid(p[0], p[1], p[2])
    });
    apply(&CARD, Pii::PaymentCard, &|m| {
        let d = digits(m);
        card_issuer(&d) && luhn(&d)
    });
    apply(&AADHAAR, Pii::Aadhaar, &|m| verhoeff(&digits(m)));
    apply(&PAN, Pii::IndianPan, &|_| true);
    apply(&IPV4, Pii::IpAddress, &|m| m.parse::<Ipv4Addr>().is_ok());
    apply(&LATLONG, Pii::LatLong, &|m| !detect(m).is_empty());
    apply(&PHONE, Pii::Phone, &|m| phone_valid(m.trim()));
    apply(&IPV6, Pii::IpAddress, &|m| {
        m.matches(':').count() >= 2 && m.trim_matches(':').parse::<Ipv6Addr>().is_ok()
    });
    Some(out)
}

#[cfg(test)]
mod tests;
