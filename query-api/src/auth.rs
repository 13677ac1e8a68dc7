//! Who is asking: the session behind the request's token (or the WebSocket's connection_init
//! payload), and the per-field role guards.

use async_graphql::{Context, Guard};
use command_api::Session;
use domain::Role;

use crate::error::{FieldError, QueryError};

/// The caller of one request or subscription: `None` when anonymous.
#[derive(Debug, Clone, Default)]
pub struct Viewer(pub Option<Session>);

impl Viewer {
    pub fn session(&self) -> Option<&Session> {
        self.0.as_ref()
    }
}

/// Lets a field through only for callers holding one of `roles`.
pub struct RoleGuard(pub &'static [Role]);

pub const AUDITOR: RoleGuard = RoleGuard(&[Role::Auditor]);
pub const ADMIN: RoleGuard = RoleGuard(&[Role::Admin]);
pub const AUDITOR_OR_ADMIN: RoleGuard = RoleGuard(&[Role::Auditor, Role::Admin]);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let viewer = ctx.data_opt::<Viewer>().and_then(Viewer::session);
        match viewer {
            None => Err(FieldError(QueryError::Unauthenticated).into()),
            Some(session) if self.0.iter().any(|role| session.roles.contains(role)) => Ok(()),
            Some(_) => {
                let roles: Vec<&str> = self.0.iter().map(|role| role.as_str()).collect();
                Err(FieldError(QueryError::Forbidden(roles.join(" or "))).into())
            }
        }
    }
}
