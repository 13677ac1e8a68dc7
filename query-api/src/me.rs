//! `me`: the signed-in caller's account, sign-in history and passkey count (null when anonymous).

use async_graphql::{ComplexObject, Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use event_store::{parse_timestamp, text_column};
use sqlx::Row;

use crate::auth::Viewer;
use crate::error::{FieldResult, QueryError, Result};
use crate::movies::page_size;
use crate::QueryApi;

#[derive(Default)]
pub struct MeQuery;

#[Object]
impl MeQuery {
    /// The signed-in caller, or null.
    async fn me(&self, ctx: &Context<'_>) -> FieldResult<Option<User>> {
        let Some(session) = ctx.data_opt::<Viewer>().and_then(Viewer::session) else {
            return Ok(None);
        };
        let api = QueryApi::of(ctx);
        let row =
            sqlx::query("SELECT id, username, email, roles, passkeys FROM rm_users WHERE id = ?")
                .bind(session.user_id.to_string())
                .fetch_optional(api.store.database().pool())
                .await
                .map_err(QueryError::from)?;
        // A user the read model has not caught up with yet is still the session's user.
        let Some(row) = row else {
            return Ok(Some(User {
                id: ID(session.user_id.to_string()),
                username: session.username.clone(),
                email: String::new(),
                roles: session
                    .roles
                    .iter()
                    .map(|r| r.as_str().to_string())
                    .collect(),
                passkeys: 0,
            }));
        };
        let text = |index| -> Result<String> { Ok(text_column(&row, index)?.unwrap_or_default()) };
        let roles = text(3)?;
        Ok(Some(User {
            id: ID(text(0)?),
            username: text(1)?,
            email: text(2)?,
            roles: serde_json::from_str(&roles)
                .map_err(|e| QueryError::internal(format!("rm_users roles: {e}")))?,
            passkeys: row.try_get(4).map_err(QueryError::from)?,
        }))
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct User {
    pub id: ID,
    pub username: String,
    pub email: String,
    pub roles: Vec<String>,
    pub passkeys: i64,
}

#[ComplexObject]
impl User {
    /// The latest sign-in attempts on this account, newest first.
    #[graphql(complexity = "first.unwrap_or(0).clamp(0, 100) as usize * child_complexity + 1")]
    async fn logins(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> FieldResult<Vec<Login>> {
        let first = page_size(first.unwrap_or(20))?;
        let rows = sqlx::query(
            "SELECT at, method, succeeded, ip FROM rm_logins WHERE user_id = ? \
             ORDER BY position DESC LIMIT ?",
        )
        .bind(self.id.to_string())
        .bind(first as i64)
        .fetch_all(QueryApi::of(ctx).store.database().pool())
        .await
        .map_err(QueryError::from)?;
        let logins = rows
            .iter()
            .map(|row| {
                let at = text_column(row, 0)?.unwrap_or_default();
                Ok(Login {
                    at: parse_timestamp(&at)
                        .ok_or_else(|| QueryError::internal(format!("rm_logins at {at:?}")))?,
                    method: text_column(row, 1)?.unwrap_or_default(),
                    succeeded: row.try_get::<i64, _>(2)? != 0,
                    ip: text_column(row, 3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(logins)
    }
}

#[derive(SimpleObject)]
pub struct Login {
    pub at: DateTime<Utc>,
    /// `password` or `passkey`.
    pub method: String,
    pub succeeded: bool,
    pub ip: Option<String>,
}
