use chain_core::Context;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12_f64..1e12).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Unique keys in a chosen order, with values.
fn fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec((".{0,10}", json_value()), 0..12).prop_map(|entries| {
        let mut seen = std::collections::HashSet::new();
        entries
            .into_iter()
            .filter(|(key, _)| seen.insert(key.clone()))
            .collect()
    })
}

proptest! {
    #[test]
    fn json_round_trip_keeps_fields_and_order(entries in fields()) {
        let ctx: Context = entries.iter().cloned().collect();
        let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();

        let text = serde_json::to_string(&ctx).unwrap();
        let back: Context = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &ctx);
        prop_assert_eq!(back.keys().collect::<Vec<_>>(), keys.clone());

        let from_value = Context::from_json(ctx.to_json()).unwrap();
        prop_assert_eq!(&from_value, &ctx);
        for (key, value) in &entries {
            prop_assert_eq!(from_value.get_value(key), Some(value));
        }
    }

    #[test]
    fn typed_get_agrees_with_the_stored_value(entries in fields()) {
        let ctx: Context = entries.iter().cloned().collect();
        for (key, value) in &entries {
            prop_assert_eq!(ctx.get::<Value>(key).unwrap(), Some(value.clone()));
            if let Some(n) = value.as_i64() {
                prop_assert_eq!(ctx.get::<i64>(key).unwrap(), Some(n));
            } else if !value.is_u64() && !value.is_f64() {
                prop_assert!(ctx.get::<i64>(key).is_err(), "{:?} read as i64", value);
            }
        }
    }
}
