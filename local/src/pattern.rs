//! EventBridge event patterns: the matching rules of the deployed bus, so local rules
//! route exactly as the deployed ones do.
//!
//! Supported: exact values (strings, numbers compared numerically, booleans, null),
//! `prefix`, `suffix`, `equals-ignore-case`, `wildcard`, `anything-but` (value, list,
//! `prefix`, `suffix`, `equals-ignore-case`, `wildcard`), `numeric` ranges, `exists`,
//! nested objects, array-valued event fields (any element matches), and `$or`.

use serde_json::{Map, Value};
use std::fmt;

/// A pattern that EventBridge would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid event pattern: {}", self.0)
    }
}

impl std::error::Error for PatternError {}

/// A validated pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern(Map<String, Value>);

impl Pattern {
    pub fn parse(pattern: &Value) -> Result<Self, PatternError> {
        let object = pattern
            .as_object()
            .ok_or_else(|| PatternError("a pattern is a JSON object".into()))?;
        validate_object(object)?;
        Ok(Self(object.clone()))
    }

    pub fn matches(&self, event: &Value) -> bool {
        match_object(&self.0, Some(event))
    }
}

fn validate_object(object: &Map<String, Value>) -> Result<(), PatternError> {
    for (key, value) in object {
        match (key.as_str(), value) {
            ("$or", Value::Array(alternatives)) if alternatives.len() >= 2 => {
                for alternative in alternatives {
                    let inner = alternative
                        .as_object()
                        .ok_or_else(|| PatternError("$or takes objects".into()))?;
                    validate_object(inner)?;
                }
            }
            ("$or", _) => {
                return Err(PatternError(
                    "$or takes an array of at least two patterns".into(),
                ))
            }
            (_, Value::Object(inner)) => validate_object(inner)?,
            (_, Value::Array(matchers)) if !matchers.is_empty() => {
                matchers.iter().try_for_each(validate_matcher)?
            }
            (key, _) => {
                return Err(PatternError(format!(
                    "field {key:?} must hold a non-empty array or an object"
                )))
            }
        }
    }
    Ok(())
}

fn validate_matcher(matcher: &Value) -> Result<(), PatternError> {
    let Value::Object(rule) = matcher else {
        return Ok(());
    };
    let (operator, operand) =
        single(rule).ok_or_else(|| PatternError("a matcher object has exactly one key".into()))?;
    let ok = match operator {
        "prefix" | "suffix" => {
            operand.is_string()
                || operand
                    .get("equals-ignore-case")
                    .is_some_and(Value::is_string)
        }
        "equals-ignore-case" | "wildcard" => operand.is_string(),
        // Refused when the rules load unless it is a block this matcher can evaluate.
        "cidr" => operand.as_str().is_some_and(|range| {
            range.split_once('/').is_some_and(|(n, b)| {
                n.parse::<std::net::IpAddr>().is_ok() && b.parse::<u8>().is_ok()
            })
        }),
        "exists" => operand.is_boolean(),
        "numeric" => numeric_bounds(operand).is_some(),
        "anything-but" => match operand {
            Value::Array(items) => items.iter().all(|i| i.is_string() || i.is_number()),
            Value::Object(inner) => single(inner).is_some_and(|(op, v)| {
                matches!(op, "prefix" | "suffix" | "equals-ignore-case" | "wildcard")
                    && (v.is_string() || v.is_array())
            }),
            other => other.is_string() || other.is_number(),
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(PatternError(format!(
            "unsupported or malformed matcher {operator:?}"
        )))
    }
}

fn single(map: &Map<String, Value>) -> Option<(&str, &Value)> {
    let mut entries = map.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) => Some((k.as_str(), v)),
        _ => None,
    }
}

fn match_object(pattern: &Map<String, Value>, event: Option<&Value>) -> bool {
    pattern.iter().all(|(key, expected)| {
        if key == "$or" {
            return expected.as_array().is_some_and(|alternatives| {
                alternatives
                    .iter()
                    .filter_map(Value::as_object)
                    .any(|alt| match_object(alt, event))
            });
        }
        let field = event.and_then(|e| e.get(key));
        match expected {
            Value::Object(inner) => match field {
                Some(value @ Value::Object(_)) => match_object(inner, Some(value)),
                // An absent object can still satisfy `exists: false` leaves below it.
                None => match_object(inner, None),
                Some(_) => false,
            },
            Value::Array(matchers) => match_field(matchers, field),
            _ => false,
        }
    })
}

fn match_field(matchers: &[Value], field: Option<&Value>) -> bool {
    match field {
        None => matchers.iter().any(|m| exists_operand(m) == Some(false)),
        Some(Value::Array(items)) => {
            items
                .iter()
                .any(|item| matchers.iter().any(|m| match_value(m, item)))
                || matchers.iter().any(|m| exists_operand(m) == Some(true))
        }
        Some(value) => matchers.iter().any(|m| match_value(m, value)),
    }
}

fn exists_operand(matcher: &Value) -> Option<bool> {
    matcher
        .as_object()
        .and_then(single)
        .and_then(|(op, v)| (op == "exists").then(|| v.as_bool()).flatten())
}

fn equal_scalars(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => expected == actual,
    }
}

/// Whether an IP address (v4 or v6) lies in a CIDR block, as EventBridge's `cidr` matches.
fn in_cidr(range: &str, address: &str) -> bool {
    use std::net::IpAddr;
    let Some((network, bits)) = range.split_once('/') else {
        return false;
    };
    let (Ok(network), Ok(bits), Ok(address)) = (
        network.parse::<IpAddr>(),
        bits.parse::<u32>(),
        address.parse::<IpAddr>(),
    ) else {
        return false;
    };
    let (network, address, width) = match (network, address) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (u128::from(u32::from(n)), u128::from(u32::from(a)), 32),
        (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
        _ => return false,
    };
    if bits > width {
        return false;
    }
    let shift = width - bits;
    // A /0 matches everything of the family (shifting by the full width would overflow).
    shift >= width || (network >> shift) == (address >> shift)
}

fn match_value(matcher: &Value, value: &Value) -> bool {
    let Value::Object(rule) = matcher else {
        return equal_scalars(matcher, value);
    };
    let Some((operator, operand)) = single(rule) else {
        return false;
    };
    let text = value.as_str();
    match operator {
        "exists" => operand.as_bool() == Some(true) && !value.is_object(),
        "prefix" => text.is_some_and(|t| affix(operand, t, |t, p| t.starts_with(p))),
        "suffix" => text.is_some_and(|t| affix(operand, t, |t, s| t.ends_with(s))),
        "equals-ignore-case" => text
            .zip(operand.as_str())
            .is_some_and(|(t, o)| t.to_lowercase() == o.to_lowercase()),
        "wildcard" => text
            .zip(operand.as_str())
            .is_some_and(|(t, o)| wildcard(o, t)),
        "cidr" => text
            .zip(operand.as_str())
            .is_some_and(|(t, range)| in_cidr(range, t)),
        "numeric" => value
            .as_f64()
            .zip(numeric_bounds(operand))
            .is_some_and(|(n, bounds)| bounds.iter().all(|(op, b)| compare(op, n, *b))),
        "anything-but" => match operand {
            Value::Array(items) => !items.iter().any(|i| equal_scalars(i, value)),
            Value::Object(inner) => single(inner).is_some_and(|(op, v)| {
                let candidates: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    one => vec![one],
                };
                text.is_some_and(|t| {
                    !candidates.iter().any(|c| {
                        match_value(&serde_json::json!({ op: c }), &Value::String(t.into()))
                    })
                })
            }),
            single_value => !equal_scalars(single_value, value),
        },
        _ => false,
    }
}

fn affix(operand: &Value, text: &str, test: fn(&str, &str) -> bool) -> bool {
    match operand {
        Value::String(p) => test(text, p),
        Value::Object(inner) => inner
            .get("equals-ignore-case")
            .and_then(Value::as_str)
            .is_some_and(|p| test(&text.to_lowercase(), &p.to_lowercase())),
        _ => false,
    }
}

fn numeric_bounds(operand: &Value) -> Option<Vec<(String, f64)>> {
    let items = operand.as_array()?;
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return None;
    }
    items
        .chunks(2)
        .map(|pair| {
            let op = pair[0].as_str()?;
            matches!(op, "=" | "<" | "<=" | ">" | ">=").then_some(())?;
            Some((op.to_owned(), pair[1].as_f64()?))
        })
        .collect()
}

fn compare(op: &str, n: f64, bound: f64) -> bool {
    match op {
        "=" => n == bound,
        "<" => n < bound,
        "<=" => n <= bound,
        ">" => n > bound,
        ">=" => n >= bound,
        _ => false,
    }
}

/// `*` matches any run of characters (EventBridge wildcard filters).
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example event of EventBridge's content-filtering documentation.
    fn ec2_event() -> Value {
        json!({
            "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
            "account": "111122223333", "time": "2017-12-22T18:43:48Z", "region": "us-west-1",
            "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
            "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated",
                       "c-count": 5, "d-count": 3, "x-limit": 301.8, "source-ip": "10.0.0.33"}
        })
    }

    fn check(pattern: Value, expected: bool) {
        let parsed = Pattern::parse(&pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(parsed.matches(&ec2_event()), expected, "{pattern}");
    }

    #[test]
    fn exact_and_nested_values() {
        check(json!({"source": ["aws.ec2"]}), true);
        check(json!({"source": ["aws.s3", "aws.ec2"]}), true);
        check(json!({"detail": {"state": ["running"]}}), false);
        check(json!({"detail": {"c-count": [5]}}), true);
        check(json!({"detail": {"x-limit": [301.80]}}), true);
        check(
            json!({"resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]}),
            true,
        );
    }

    #[test]
    fn cidr_blocks_match_addresses_and_bad_blocks_are_refused_at_load() {
        check(
            json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}),
            true,
        );
        check(
            json!({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}),
            false,
        );
        check(
            json!({"detail": {"source-ip": [{"cidr": "0.0.0.0/0"}]}}),
            true,
        );
        check(
            json!({"detail": {"source-ip": [{"cidr": "10.0.0.33/32"}]}}),
            true,
        );
        check(
            json!({"detail": {"source-ip": [{"cidr": "2001:db8::/32"}]}}),
            false,
        );
        assert!(in_cidr("2001:db8::/32", "2001:db8:1::7"));
        assert!(!in_cidr("10.0.0.0/33", "10.0.0.1"));
        for bad in ["10.0.0.0", "10.0.0.0/x", "not-an-ip/8"] {
            assert!(
                Pattern::parse(&json!({"detail": {"source-ip": [{"cidr": bad}]}})).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_suffix_and_case() {
        check(json!({"time": [{"prefix": "2017-12-22"}]}), true);
        check(json!({"time": [{"prefix": "2018"}]}), false);
        check(
            json!({"detail": {"instance-id": [{"suffix": "def0"}]}}),
            true,
        );
        check(
            json!({"source": [{"prefix": {"equals-ignore-case": "AWS."}}]}),
            true,
        );
        check(
            json!({"detail": {"state": [{"equals-ignore-case": "TERMINATED"}]}}),
            true,
        );
        check(
            json!({"detail": {"instance-id": [{"wildcard": "i-*abc*0"}]}}),
            true,
        );
        check(
            json!({"detail": {"instance-id": [{"wildcard": "i-*xyz*"}]}}),
            false,
        );
    }

    #[test]
    fn anything_but() {
        check(
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            true,
        );
        check(
            json!({"detail": {"state": [{"anything-but": ["stopped", "terminated"]}]}}),
            false,
        );
        check(
            json!({"detail": {"c-count": [{"anything-but": [1, 2, 3]}]}}),
            true,
        );
        check(
            json!({"detail": {"state": [{"anything-but": {"prefix": "term"}}]}}),
            false,
        );
        check(
            json!({"detail": {"state": [{"anything-but": {"suffix": "ing"}}]}}),
            true,
        );
        check(
            json!({"detail": {"missing": [{"anything-but": "x"}]}}),
            false,
        );
    }

    #[test]
    fn numeric_ranges() {
        check(
            json!({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}),
            true,
        );
        check(
            json!({"detail": {"d-count": [{"numeric": ["<", 10]}]}}),
            true,
        );
        check(
            json!({"detail": {"x-limit": [{"numeric": ["=", 3.018e2]}]}}),
            true,
        );
        check(
            json!({"detail": {"c-count": [{"numeric": [">", 5]}]}}),
            false,
        );
        check(json!({"detail": {"state": [{"numeric": [">", 0]}]}}), false);
    }

    #[test]
    fn exists() {
        check(json!({"detail": {"state": [{"exists": true}]}}), true);
        check(json!({"detail": {"nope": [{"exists": false}]}}), true);
        check(json!({"detail": {"state": [{"exists": false}]}}), false);
        check(json!({"other": {"deep": [{"exists": false}]}}), true);
    }

    #[test]
    fn or_alternatives() {
        check(
            json!({"source": ["aws.ec2"], "$or": [{"detail": {"c-count": [{"numeric": [">", 10]}]}}, {"detail": {"d-count": [3]}}]}),
            true,
        );
        check(
            json!({"$or": [{"source": ["aws.s3"]}, {"detail-type": ["Other"]}]}),
            false,
        );
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            json!([]),
            json!({"source": "aws.ec2"}),
            json!({"source": []}),
            json!({"a": [{"nope": 1}]}),
            json!({"a": [{"numeric": [">"]}]}),
            json!({"$or": [{"a": ["b"]}]}),
            json!({"a": [{"prefix": 1}]}),
        ] {
            assert!(Pattern::parse(&bad).is_err(), "{bad}");
        }
    }
}
