//! What the decision policy reads from the database.

use super::*;

impl Store {
    /// The card's tokens that are active now.
    pub async fn count_active_tokens(&self, card_ref: &str) -> Result<i64, StoreError> {
        with_pool!(self, read, |pool| {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM tokens WHERE card_ref = $1 AND state = 'active'",
            )
            .bind(card_ref)
            .fetch_one(pool)
            .await?;
            Ok(n)
        })
    }
}
