//! JSON text exactly as JavaScript's `JSON.stringify` would write it.
//!
//! Webhook receivers commonly verify a signature over `JSON.stringify(req.body)`,
//! i.e. over a re-serialisation of the body they parsed. That only matches the
//! signed bytes if the body already is in the form JavaScript writes:
//! - no white space;
//! - numbers in JavaScript's shortest form (`5`, not `5.0`; `1e+21`, not `1e21`);
//! - object members whose names are array indices (`"0"`, `"17"`) first, in
//!   ascending numeric order, then the others in insertion order — the order in
//!   which a JavaScript object enumerates its properties;
//! - strings escaped only where JSON requires it (serde_json already agrees).

use serde_json::{Map, Number, Value};

/// Writes `value` in JavaScript's `JSON.stringify` form.
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => out.push_str(&serde_json::to_string(s).expect("strings serialize")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut indexed: Vec<(u32, &String, &Value)> = Vec::new();
    let mut named: Vec<(&String, &Value)> = Vec::new();
    for (name, value) in map {
        match array_index(name) {
            Some(index) => indexed.push((index, name, value)),
            None => named.push((name, value)),
        }
    }
    indexed.sort_by_key(|(index, _, _)| *index);

    out.push('{');
    let members = indexed
        .into_iter()
        .map(|(_, name, value)| (name, value))
        .chain(named);
    for (i, (name, value)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).expect("strings serialize"));
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

/// A property name JavaScript treats as an array index: a canonical decimal
/// integer below 2^32 - 1.
fn array_index(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    if !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse::<u64>()
        .ok()
        .filter(|n| *n < u32::MAX as u64)
        .map(|n| n as u32)
}

fn write_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
        return;
    }
    let f = n.as_f64().unwrap_or(0.0);
    out.push_str(&js_number(f));
}

/// JavaScript's Number-to-String for a finite double.
fn js_number(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{}", f as i128);
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as JavaScript does;
    // only the layout differs.
    let sci = format!("{:e}", f);
    let (mantissa, exponent) = sci.split_once('e').expect("scientific form");
    let exponent: i32 = exponent.parse().expect("exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let k = digits.len() as i32;
    let n = exponent + 1;
    let sign = if negative { "-" } else { "" };
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        if k == 1 {
            format!("{digits}e{e}")
        } else {
            format!("{}.{}e{e}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_follow_javascript() {
        let cases = [
            (5.0, "5"),
            (-2.0, "-2"),
            (0.1, "0.1"),
            (0.04, "0.04"),
            (1.5e-7, "1.5e-7"),
            (1e21, "1e+21"),
            (1.25e22, "1.25e+22"),
            (123456789.125, "123456789.125"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (-0.5, "-0.5"),
        ];
        for (value, expected) in cases {
            assert_eq!(js_number(value), expected, "{value}");
        }
        assert_eq!(to_string(&json!(3.0)), "3");
        assert_eq!(to_string(&json!(7)), "7");
    }

    #[test]
    fn index_like_names_come_first_in_numeric_order() {
        let value: Value =
            serde_json::from_str(r#"{"b":1,"10":2,"9":3,"a":4,"01":5,"4294967295":6}"#).unwrap();
        assert_eq!(
            to_string(&value),
            r#"{"9":3,"10":2,"b":1,"a":4,"01":5,"4294967295":6}"#
        );
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        let value = json!({"s": "quote\" slash\\ nl\n tab\t ctl\u{1} emoji😀 é \u{2028}"});
        assert_eq!(
            to_string(&value),
            "{\"s\":\"quote\\\" slash\\\\ nl\\n tab\\t ctl\\u0001 emoji😀 é \u{2028}\"}"
        );
    }
}
