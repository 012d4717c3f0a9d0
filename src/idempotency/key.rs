//! The `Idempotency-Key` field (draft-ietf-httpapi-idempotency-key-header-07): one field,
//! whose value is a Structured Field String (RFC 8941 section 3.3.3), such as
//! `"8e03978e-40d5-43e8-bc93-6894a57f9324"`.

use http::HeaderMap;

/// The field's name.
pub const HEADER: &str = "idempotency-key";

/// Keys longer than this are refused: a key names one operation, not a document.
pub const MAX_KEY_CHARS: usize = 255;

#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    Missing,
    /// More than one field, or a value that is not a non-empty sf-string.
    Invalid(&'static str),
}

/// The request's key, unescaped.
pub fn key_of(headers: &HeaderMap) -> Result<String, KeyError> {
    let mut fields = headers.get_all(HEADER).iter();
    let field = fields.next().ok_or(KeyError::Missing)?;
    if fields.next().is_some() {
        return Err(KeyError::Invalid("more than one Idempotency-Key field"));
    }
    let text = field
        .to_str()
        .map_err(|_| KeyError::Invalid("the key is not ASCII"))?;
    sf_string(text.trim_matches(' '))
}

/// An RFC 8941 String and nothing else: `"`, then printable ASCII with `\"` and `\\` as the
/// only escapes, then `"`.
fn sf_string(text: &str) -> Result<String, KeyError> {
    let inner = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|_| text.len() >= 2)
        .ok_or(KeyError::Invalid("the key must be a quoted string"))?;
    let mut key = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\')) => key.push(escaped),
                _ => return Err(KeyError::Invalid("a backslash may escape only \" and \\")),
            },
            '"' => return Err(KeyError::Invalid("an unescaped quote inside the key")),
            ' '..='~' => key.push(c),
            _ => {
                return Err(KeyError::Invalid(
                    "the key holds a character a String may not",
                ))
            }
        }
    }
    if key.is_empty() {
        return Err(KeyError::Invalid("the key is empty"));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(KeyError::Invalid("the key is longer than 255 characters"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<String, KeyError> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, value.parse().unwrap());
        }
        key_of(&headers)
    }

    #[test]
    fn keys_are_structured_field_strings() {
        // The draft's own example, and RFC 8941's escapes.
        assert_eq!(
            parse(&["\"8e03978e-40d5-43e8-bc93-6894a57f9324\""]).unwrap(),
            "8e03978e-40d5-43e8-bc93-6894a57f9324"
        );
        assert_eq!(parse(&[r#""a \"b\" \\c""#]).unwrap(), r#"a "b" \c"#);
        assert_eq!(parse(&[" \"padded\" "]).unwrap(), "padded");
        assert_eq!(parse(&[]), Err(KeyError::Missing));
        for bad in [
            "8e03978e",  // a Token, not a String
            "\"\"",      // empty
            "\"a\\nb\"", // an escape RFC 8941 does not have
            "\"open",    // unterminated
            "\"a\"b\"",  // a quote inside
            "\"a\";p=1", // parameters: not a bare String
        ] {
            assert!(matches!(parse(&[bad]), Err(KeyError::Invalid(_))), "{bad}");
        }
        assert!(matches!(
            parse(&["\"a\"", "\"a\""]),
            Err(KeyError::Invalid(_))
        ));
        assert!(parse(&[&format!("\"{}\"", "k".repeat(255))]).is_ok());
        assert!(parse(&[&format!("\"{}\"", "k".repeat(256))]).is_err());
    }
}
