//! A `serde::Deserializer` over a header text that the fast path of §4 ([`crate::fast`]) has
//! accepted: a typed header is read from the text in one pass, with no table of members built
//! at decode time and none copied into the frame.
//!
//! What the fast path accepts is narrow, and this deserializer relies on it: one flat JSON
//! object whose member names have no escapes and whose values are strings, integers in
//! ±(2^53−1), `true`, `false` or `null`, UTF-8 throughout, every escape valid, no duplicate
//! names. So it does not check syntax again: it finds each token by its first octet and each
//! string's end by its closing quote. It still reads only through `get` and never panics: a
//! text that breaks those assumptions (which validation rules out) ends in an error, not in
//! a wrong value or a crash.
//!
//! Values come out as `serde_json` gives them (the differential tests in `typed.rs` check it):
//! strings without escapes are borrowed from the text; a string with escapes is handed to
//! `serde_json` itself, so it unescapes it exactly as `serde_json::from_str` would;
//! non-negative integers are `u64`, negative ones `i64`. Errors are `serde_json::Error`s.

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::fast::plain_run;

/// The header text and where the reading is.
pub(crate) struct Flat<'de> {
    text: &'de str,
    /// The next octet to read.
    i: usize,
    /// The name of the member being read (`text[at.0..at.1]`), for errors.
    pub at: (usize, usize),
    /// The field names a struct asked for, when `T` is a struct.
    pub fields: &'static [&'static str],
}

impl<'de> Flat<'de> {
    /// A reader of `text`, which the fast path accepted.
    pub fn new(text: &'de str) -> Self {
        Flat {
            text,
            i: 0,
            at: (0, 0),
            fields: &[],
        }
    }

    /// The member being read when an error happened.
    pub fn member(&self) -> Option<&'de str> {
        self.text.get(self.at.0..self.at.1)
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    /// Skips JSON's insignificant whitespace (rare: senders write compact text).
    #[inline(always)]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// The string whose opening quote is at `self.i`: its contents' range and whether it has
    /// escapes; `self.i` moves past the closing quote.
    #[inline(always)]
    fn string(&mut self) -> Result<(usize, usize, bool), serde_json::Error> {
        let b = self.text.as_bytes();
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = plain_run(b, i);
            match b.get(i) {
                Some(b'"') => break,
                // The escaped octet (`"`, `\`, or the `u` of `\uXXXX`) is skipped with it.
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                // A non-ASCII octet (valid UTF-8, checked by validation).
                Some(_) => i += 1,
                None => return Err(changed()),
            }
        }
        self.i = i + 1;
        Ok((start, i, escaped))
    }
}

/// The error for a text that is not what validation accepted (never, for a decoded frame).
#[cold]
fn changed() -> serde_json::Error {
    de::Error::custom("the header text is not the one validated")
}

impl<'de> Deserializer<'de> for &mut Flat<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.skip_ws();
        if self.peek() != Some(b'{') {
            return Err(changed());
        }
        self.i += 1;
        visitor.visit_map(Members { de: self })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.fields = fields;
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The object's members, in order.
struct Members<'a, 'de> {
    de: &'a mut Flat<'de>,
}

impl<'de> MapAccess<'de> for Members<'_, 'de> {
    type Error = serde_json::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let de = &mut *self.de;
        de.skip_ws();
        match de.peek() {
            Some(b'"') => {}
            Some(b',') => {
                de.i += 1;
                de.skip_ws();
            }
            Some(b'}') => {
                de.i += 1;
                return Ok(None);
            }
            _ => return Err(changed()),
        }
        if de.peek() != Some(b'"') {
            return Err(changed());
        }
        // The fast path takes only names without escapes.
        let (start, end, _) = de.string()?;
        de.at = (start, end);
        let name = de.text.get(start..end).ok_or_else(changed)?;
        de.skip_ws();
        if de.peek() != Some(b':') {
            return Err(changed());
        }
        de.i += 1;
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.de.skip_ws();
        seed.deserialize(Scalar { de: &mut *self.de })
    }
}

/// One member's value: a string, an integer, a boolean or `null`.
struct Scalar<'a, 'de> {
    de: &'a mut Flat<'de>,
}

/// A value as read from the text.
enum Token<'de> {
    Str(&'de str),
    /// A string with escapes, quotes included: `serde_json` unescapes it.
    Escaped(&'de str),
    U64(u64),
    I64(i64),
    Bool(bool),
    Null,
}

impl<'de> Scalar<'_, 'de> {
    #[inline(always)]
    fn token(self) -> Result<Token<'de>, serde_json::Error> {
        let de = self.de;
        let b = de.text.as_bytes();
        match de.peek() {
            Some(b'"') => {
                let (start, end, escaped) = de.string()?;
                if escaped {
                    let quoted = de.text.get(start - 1..end + 1).ok_or_else(changed)?;
                    return Ok(Token::Escaped(quoted));
                }
                Ok(Token::Str(de.text.get(start..end).ok_or_else(changed)?))
            }
            Some(c @ (b'-' | b'0'..=b'9')) => {
                let neg = c == b'-';
                let mut i = de.i + usize::from(neg);
                // At most 16 digits, |n| ≤ 2^53−1 (validated): no overflow in range.
                let mut n: u64 = 0;
                while let Some(&c) = b.get(i) {
                    let d = c.wrapping_sub(b'0');
                    if d > 9 {
                        break;
                    }
                    n = n.wrapping_mul(10).wrapping_add(u64::from(d));
                    i += 1;
                }
                de.i = i;
                Ok(if neg {
                    Token::I64(0i64.wrapping_sub(n as i64))
                } else {
                    Token::U64(n)
                })
            }
            Some(b't') => {
                de.i += 4;
                Ok(Token::Bool(true))
            }
            Some(b'f') => {
                de.i += 5;
                Ok(Token::Bool(false))
            }
            Some(b'n') => {
                de.i += 4;
                Ok(Token::Null)
            }
            _ => Err(changed()),
        }
    }
}

impl<'de> Deserializer<'de> for Scalar<'_, 'de> {
    type Error = serde_json::Error;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.token()? {
            Token::Str(s) => visitor.visit_borrowed_str(s),
            Token::Escaped(q) => serde_json::Deserializer::from_str(q).deserialize_any(visitor),
            Token::U64(n) => visitor.visit_u64(n),
            Token::I64(n) => visitor.visit_i64(n),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::Null => visitor.visit_unit(),
        }
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.de.peek() == Some(b'n') {
            self.de.i += 4;
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.token()? {
            Token::Str(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            Token::Escaped(q) => {
                serde_json::Deserializer::from_str(q).deserialize_enum(name, variants, visitor)
            }
            Token::U64(n) => visitor.visit_u64(n),
            Token::I64(n) => visitor.visit_i64(n),
            Token::Bool(b) => visitor.visit_bool(b),
            Token::Null => visitor.visit_unit(),
        }
    }

    /// A member the type does not want: skipped without being looked at.
    #[inline]
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.token()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}
