//! Wiping JSON that held card data or an OTP: a parsed request body, decrypted card or token
//! data. serde_json's strings are ordinary `String`s, freed without being cleared; this walks a
//! value when it is dropped and zeroises every string in it (object keys excepted: they are field
//! names, and serde_json's map gives no mutable access to them). Numbers are small inline values
//! and cannot be reached after the fact; a PAN or OTP sent as a number is refused anyway.

use serde_json::Value;
use zeroize::Zeroize;

/// A JSON value whose strings are zeroised when it is dropped.
pub struct WipedJson(pub Value);

impl Drop for WipedJson {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Zeroises every string of `value` (arrays and objects walked), leaving empty strings.
pub fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_cleared() {
        let mut v = serde_json::json!({"fpan": "4111111111111111", "x": [{"otp": "123456"}, 5]});
        wipe(&mut v);
        assert_eq!(v, serde_json::json!({"fpan": "", "x": [{"otp": ""}, 5]}));
    }
}
