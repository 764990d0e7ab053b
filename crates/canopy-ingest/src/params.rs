//! Query-string and form parameters, parsed leniently: Python puts `verbose` and `ip` in the
//! form body, everyone else in the query string, and Node sends base64 with raw `+`.

use std::borrow::Cow;

/// The request parameters Canopy acts on, gathered from query string and form body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    pub data: Option<String>,
    pub verbose: bool,
    pub strict: bool,
    pub ip: bool,
    pub img: bool,
    pub callback: Option<String>,
    pub project_id: Option<String>,
    /// Legacy `api_key` (ignored beyond being accepted).
    pub api_key: Option<String>,
}

impl Params {
    /// The parameters of a query string alone (authenticated endpoints read these before the
    /// body; a request whose body is unusable is still answered the way they ask).
    pub fn from_query(query: &str) -> Self {
        let mut p = Params::default();
        p.absorb(parse_form(query.as_bytes()));
        p
    }

    pub(crate) fn absorb(&mut self, pairs: Vec<(String, String)>) {
        for (k, v) in pairs {
            match k.as_str() {
                "data" => self.data = Some(v),
                "verbose" => self.verbose = v != "0" && !v.is_empty(),
                "strict" => self.strict = v == "1" || v.eq_ignore_ascii_case("true"),
                "ip" => self.ip = v == "1",
                "img" => self.img = v == "1",
                "callback" => self.callback = Some(v).filter(|c| is_safe_callback(c)),
                "project_id" => self.project_id = Some(v),
                "api_key" => self.api_key = Some(v),
                _ => {}
            }
        }
    }
}

/// A JSONP callback name we are willing to echo into JavaScript.
fn is_safe_callback(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 128
        && c.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_$.[]".contains(ch))
}

/// Parses `application/x-www-form-urlencoded` (also used for query strings): `+` is a space,
/// `%XX` a byte; malformed escapes are kept literally rather than refused.
pub fn parse_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (
                decode_component(k).into_owned(),
                decode_component(v).into_owned(),
            )
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_component(s: &[u8]) -> Cow<'_, str> {
    if !s.iter().any(|b| *b == b'%' || *b == b'+') {
        return String::from_utf8_lossy(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The first value of `name` in a URL query string, decoded.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    parse_form(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_percent_and_garbage() {
        let pairs = parse_form(b"data=a%2Bb+c&verbose=1&x&bad=%zz%4");
        assert_eq!(pairs[0], ("data".into(), "a+b c".into()));
        assert_eq!(pairs[1], ("verbose".into(), "1".into()));
        assert_eq!(pairs[2], ("x".into(), "".into()));
        assert_eq!(pairs[3], ("bad".into(), "%zz%4".into()));
        assert_eq!(parse_form(b"k=%41%"), vec![("k".into(), "A%".into())]);
    }

    #[test]
    fn unsafe_callbacks_are_dropped() {
        let mut p = Params::default();
        p.absorb(vec![("callback".into(), "alert(1)//".into())]);
        assert_eq!(p.callback, None);
        p.absorb(vec![("callback".into(), "mixpanel._jsc[123]".into())]);
        assert!(p.callback.is_some());
    }
}
