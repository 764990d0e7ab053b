//! Mixpanel segmentation expressions (reference §15.3), the subset export's `where` needs:
//! `properties["k"]` operands; string, number, boolean and list literals; `== != > >= < <=`,
//! `in` (membership, or substring between strings); `and`, `or`, `not`; `defined(...)`.
//! The analytics filters will share it. Pure and fuzzed (`fuzz/fuzz_targets/where_expr.rs`).
//! Typing follows Mixpanel: `==` across types is false, ordering across types is undefined
//! (false), `and`/`or` treat undefined as false.

use serde_json::{Map, Value};

const MAX_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Property(String),
    Literal(Value),
    List(Vec<Expr>),
    Defined(Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Op, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

pub fn parse(input: &str) -> Result<Expr, String> {
    if input.len() > MAX_LEN {
        return Err(format!("longer than {MAX_LEN} characters"));
    }
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err("unexpected trailing input".into());
    }
    Ok(e)
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' || ch == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        v.push(*c.get(i + 1).ok_or("unterminated string")?);
                        i += 2;
                    }
                    Some(x) if *x == ch => {
                        i += 1;
                        break;
                    }
                    Some(x) => {
                        v.push(*x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if ch.is_ascii_digit()
            || (ch == '-' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < c.len()
                && (c[i].is_ascii_digit() || c[i] == '.' || c[i] == 'e' || c[i] == 'E')
            {
                i += 1;
            }
            let text: String = c[start..i].iter().collect();
            out.push(Tok::Num(
                text.parse()
                    .map_err(|_| format!("bad number at character {start}"))?,
            ));
        } else if ch.is_alphabetic() || ch == '_' || ch == '$' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            let sym = ["==", "!=", ">=", "<="].into_iter().find(|s| *s == two);
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += 2;
            } else {
                let one = ["(", ")", "[", "]", ",", ">", "<"]
                    .into_iter()
                    .find(|s| s.starts_with(ch));
                out.push(Tok::Sym(
                    one.ok_or_else(|| format!("unexpected character {ch:?}"))?,
                ));
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(x)) if x == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn require(&mut self, s: &str) -> Result<(), String> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(format!("expected {s:?}"))
        }
    }
    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err("nested too deeply".into())
        } else {
            Ok(())
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        self.nest()?;
        let mut l = self.and()?;
        while self.eat_word("or") {
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        self.depth -= 1;
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.not()?;
        while self.eat_word("and") {
            l = Expr::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_word("not") {
            self.nest()?;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.primary()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Ident(w)) if w == "in" => Op::In,
            _ => return Ok(l),
        };
        self.pos += 1;
        let r = self.primary()?;
        Ok(Expr::Cmp(op, Box::new(l), Box::new(r)))
    }
    fn primary(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Sym("(")) => {
                self.pos += 1;
                let e = self.or()?;
                self.require(")")?;
                Ok(e)
            }
            Some(Tok::Sym("[")) => {
                self.pos += 1;
                self.nest()?;
                let mut items = Vec::new();
                if !self.eat_sym("]") {
                    loop {
                        items.push(self.primary()?);
                        if self.eat_sym("]") {
                            break;
                        }
                        self.require(",")?;
                    }
                }
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Literal(Value::String(s)))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Literal(
                    serde_json::Number::from_f64(n)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                ))
            }
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                match w.as_str() {
                    "true" => Ok(Expr::Literal(Value::Bool(true))),
                    "false" => Ok(Expr::Literal(Value::Bool(false))),
                    "properties" | "user" | "event" => {
                        self.require("[")?;
                        let Some(Tok::Str(name)) = self.toks.get(self.pos).cloned() else {
                            return Err("expected a property name in quotes".into());
                        };
                        self.pos += 1;
                        self.require("]")?;
                        Ok(Expr::Property(name))
                    }
                    "defined" => {
                        self.require("(")?;
                        let e = self.or()?;
                        self.require(")")?;
                        Ok(Expr::Defined(Box::new(e)))
                    }
                    // The word is the client's text (maybe a value typed without quotes): not repeated.
                    _ => Err(format!("unknown word (token {})", self.pos)),
                }
            }
            _ => Err("expected a value".into()),
        }
    }
}

impl Expr {
    /// The property names the expression reads, each once, in first-use order — so a caller
    /// can build a map of just those properties instead of all of an event's.
    pub fn properties(&self) -> Vec<&str> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
            match e {
                Expr::Property(k) => {
                    if !out.contains(&k.as_str()) {
                        out.push(k);
                    }
                }
                Expr::Literal(_) => {}
                Expr::List(items) => items.iter().for_each(|i| walk(i, out)),
                Expr::Defined(i) | Expr::Not(i) => walk(i, out),
                Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

/// Evaluates `e` as a condition over one event's properties.
pub fn matches(e: &Expr, props: &Map<String, Value>) -> bool {
    truthy(&eval(e, props))
}

fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(_)) => true,
    }
}

fn eval(e: &Expr, props: &Map<String, Value>) -> Option<Value> {
    match e {
        Expr::Property(k) => props.get(k).cloned(),
        Expr::Literal(v) => Some(v.clone()),
        Expr::List(items) => Some(Value::Array(
            items.iter().filter_map(|i| eval(i, props)).collect(),
        )),
        Expr::Defined(inner) => Some(Value::Bool(eval(inner, props).is_some())),
        Expr::Not(inner) => Some(Value::Bool(!truthy(&eval(inner, props)))),
        Expr::And(a, b) => Some(Value::Bool(matches(a, props) && matches(b, props))),
        Expr::Or(a, b) => Some(Value::Bool(matches(a, props) || matches(b, props))),
        Expr::Cmp(op, a, b) => {
            let (l, r) = (eval(a, props)?, eval(b, props)?);
            compare(*op, &l, &r).map(Value::Bool)
        }
    }
}

fn compare(op: Op, l: &Value, r: &Value) -> Option<bool> {
    use std::cmp::Ordering;
    match op {
        Op::Eq => Some(json_eq(l, r)),
        Op::Ne => Some(!json_eq(l, r)),
        Op::In => match (l, r) {
            (Value::String(a), Value::String(b)) => Some(b.contains(a.as_str())),
            (_, Value::Array(items)) => Some(items.iter().any(|i| json_eq(l, i))),
            _ => None,
        },
        _ => {
            let ord = match (l, r) {
                (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?)?,
                (Value::String(a), Value::String(b)) => a.cmp(b),
                _ => return None,
            };
            Some(match op {
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                Op::Lt => ord == Ordering::Less,
                _ => ord != Ordering::Greater,
            })
        }
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(expr: &str, props: Value) -> bool {
        matches(&parse(expr).unwrap(), props.as_object().unwrap())
    }

    #[test]
    fn mixpanel_semantics() {
        let p = json!({"os": "iOS", "n": 3, "paid": true});
        assert!(check(r#"properties["os"] == "iOS""#, p.clone()));
        assert!(
            !check(r#"properties["n"] == "3""#, p.clone()),
            "== across types is false"
        );
        assert!(check(
            r#"properties["n"] >= 3 and properties["paid"]"#,
            p.clone()
        ));
        assert!(check(
            r#"not defined(properties["missing"]) or properties["x"] > 1"#,
            p.clone()
        ));
        assert!(
            !check(r#"properties["os"] > 3"#, p.clone()),
            "cross-type ordering is undefined"
        );
        assert!(check(r#""OS" in properties["os"]"#, json!({"os": "macOS"})));
        assert!(check(r#"properties["os"] in ["Android", "iOS"]"#, p));
    }

    #[test]
    fn referenced_properties_are_listed_once() {
        let e = parse(r#"properties["a"] == 1 and (defined(properties["b"]) or properties["a"] in ["x", properties["c"]])"#).unwrap();
        assert_eq!(e.properties(), vec!["a", "b", "c"]);
    }

    #[test]
    fn bad_expressions_are_errors() {
        for bad in [
            "properties[",
            "1 ==",
            "(((",
            "foo",
            "properties[\"a\"] ==",
            "\"open",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(&"(".repeat(100)).is_err());
        assert!(parse(&"not ".repeat(100)).is_err());
        assert!(parse(&"[".repeat(1000)).is_err());
    }

    #[test]
    fn errors_do_not_repeat_the_words_or_numbers_typed() {
        // A value typed without quotes (an email's local part, a phone number) stays out of
        // the message, which goes back to the client and into nothing else.
        for (bad, secret) in [
            ("kidparent == 1", "kidparent"),
            ("properties[\"a\"] == 9198765e43210e1", "9198765"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains(secret), "{bad}: {e}");
        }
    }
}
