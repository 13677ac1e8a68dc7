//! Operator commands run from the shell, recorded as events like any other command.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use command_api::Argon2Passwords;
use domain::{Role, User, UserCommand, UserError, UserId, UserServices, Username};
use event_store::{CommandContext, EventMetadata, EventStore, ExecuteError};

/// Grants `role` to `username`; returns the event's position.
pub async fn grant_role(store: &EventStore, username: &str, role: &str) -> anyhow::Result<i64> {
    let username = Username::parse(username).context("invalid username")?;
    let role = Role::from_str(role).context("invalid role")?;
    let id = UserId::for_username(&username);
    let context = CommandContext {
        metadata: EventMetadata::system("operator"),
        data_subject: Some(id.to_string()),
    };
    let services = UserServices {
        passwords: Arc::new(Argon2Passwords),
    };
    let command = UserCommand::GrantRole {
        role,
        by: None,
        at: chrono::Utc::now(),
    };
    match store
        .execute::<User>(&id.to_string(), command, &services, &context)
        .await
    {
        Ok(executed) => executed
            .position()
            .ok_or_else(|| anyhow!("granting {role} recorded nothing")),
        Err(ExecuteError::Domain(UserError::NotFound)) => {
            Err(anyhow!("there is no user named {username}"))
        }
        Err(error) => Err(error.into()),
    }
}
