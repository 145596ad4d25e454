//! How the domain's types are read from and written to their columns: text enums from text columns (each
//! written by the store as the type's `as_str`), milliseconds from 64-bit integers. For both
//! backends at once: each type reads as the built-in type it is stored as, then converts.

use crate::domain::{CardStatus, Channel, IdvKind, LevelOfTrust, Millis, SendOutcome};
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

/// A text column holding one of the type's names.
macro_rules! text_column {
    ($($t:ty),*) => {$(
        impl<DB: Database> Type<DB> for $t
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            String: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <String as Decode<'r, DB>>::decode(value)?;
                <$t>::try_from(text).map_err(Into::into)
            }
        }

        impl<'q, DB: Database> sqlx::Encode<'q, DB> for $t
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, BoxDynError> {
                let text: &'q str = self.as_str();
                <&'q str as sqlx::Encode<'q, DB>>::encode_by_ref(&text, buf)
            }
        }
    )*};
}

text_column!(CardStatus, Channel, IdvKind, LevelOfTrust, SendOutcome);

impl<DB: Database> Type<DB> for Millis
where
    i64: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Millis
where
    i64: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        <i64 as Decode<'r, DB>>::decode(value).map(Millis)
    }
}

impl<'q, DB: Database> sqlx::Encode<'q, DB> for Millis
where
    i64: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        <i64 as sqlx::Encode<'q, DB>>::encode_by_ref(&self.0, buf)
    }
}
