//! The decoder against the shared test vectors in fixtures/records/vectors.json (the TypeScript
//! decoder is tested against the same file).

use linux_obs_core::{Format, Value};
use serde_json::Value as Json;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn int_text(v: &Value) -> String {
    match v {
        Value::Signed(x) => x.to_string(),
        Value::Unsigned(x) | Value::Pointer(x) => x.to_string(),
        other => panic!("not an integer: {other:?}"),
    }
}

/// Checks a decoded value against `{ "type": ..., "value": ... }`; returns a description on mismatch.
fn check(got: &Value, want: &Json) -> Result<(), String> {
    let ty = want["type"].as_str().unwrap();
    let value = &want["value"];
    let ok = match (ty, got) {
        ("number", Value::Signed(_) | Value::Unsigned(_)) => {
            int_text(got)
                == value
                    .as_i64()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| value.to_string())
        }
        ("bigint", Value::Signed(_) | Value::Unsigned(_) | Value::Pointer(_)) => {
            int_text(got) == value.as_str().unwrap()
        }
        ("boolean", Value::Bool(b)) => Some(*b) == value.as_bool(),
        ("string", Value::Str(s)) => Some(s.as_str()) == value.as_str(),
        ("bytes", Value::Bytes(b)) => {
            b.iter().map(|x| format!("{x:02x}")).collect::<String>() == value.as_str().unwrap()
        }
        ("number[]", Value::Array(items)) => {
            let want: Vec<String> = value
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.to_string())
                .collect();
            items.iter().map(int_text).collect::<Vec<_>>() == want
        }
        ("bigint[]", Value::Array(items)) => {
            let want: Vec<&str> = value
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            items.iter().map(int_text).collect::<Vec<_>>() == want
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want}"))
    }
}

#[test]
fn decoder_agrees_with_the_shared_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/records/vectors.json"
    ))
    .unwrap();
    let vectors: Vec<Json> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 10);
    for v in &vectors {
        let name = v["name"].as_str().unwrap();
        let format = Format::parse(v["format"].as_str().unwrap()).unwrap();
        let raw = hex(v["raw"].as_str().unwrap());
        if let Some(err) = v.get("error") {
            let e = format.decode(&raw).expect_err(name);
            assert_eq!(e.code(), "ERR_MALFORMED_RECORD", "{name}");
            let field = err["field"].as_str().unwrap();
            assert!(
                e.to_string().contains(&format!("field '{field}'")),
                "{name}: {e}"
            );
            assert!(format.validate(&raw).is_err(), "{name}");
            continue;
        }
        let decoded = format
            .decode(&raw)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = v["expected"].as_object().unwrap();
        let names: Vec<&str> = decoded.iter().map(|(n, _)| *n).collect();
        let want_names: Vec<&str> = expected.keys().map(String::as_str).collect();
        assert_eq!(names, want_names, "{name}: field order");
        for (field, value) in &decoded {
            check(value, &expected[*field])
                .unwrap_or_else(|e| panic!("{name}: field {field}: {e}"));
        }
        format.validate(&raw).unwrap();
    }
}
