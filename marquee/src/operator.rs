//! Operator commands run from the shell, recorded as events like any other command.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use command_api::{Argon2Passwords, Sessions};
use domain::{Role, User, UserCommand, UserError, UserId, UserServices, Username};
use event_store::{CommandContext, EventMetadata, EventStore, ExecuteError};

/// Grants `role` to `username`; returns the event's position.
pub async fn grant_role(store: &EventStore, username: &str, role: &str) -> anyhow::Result<i64> {
    let role = Role::from_str(role).context("invalid role")?;
    let command = UserCommand::GrantRole {
        role,
        by: None,
        at: chrono::Utc::now(),
    };
    let (_, position) = run(store, username, command).await?;
    position.ok_or_else(|| anyhow!("granting {role} recorded nothing"))
}

/// Erases `username`'s personal data: the store destroys their key as it records
/// `PersonalDataErased`, then their sessions end. Returns the event's position.
pub async fn forget(store: &EventStore, username: &str) -> anyhow::Result<i64> {
    let command = UserCommand::ErasePersonalData {
        by: None,
        at: chrono::Utc::now(),
    };
    let (id, position) = run(store, username, command).await?;
    Sessions::new(store.database().pool().clone())
        .revoke_all(id)
        .await
        .map_err(|error| anyhow!("the user is forgotten, but their sessions: {error}"))?;
    position.ok_or_else(|| anyhow!("forgetting {username} recorded nothing"))
}

/// Runs a user command as the operator; answers the user's id and the last event's position.
async fn run(
    store: &EventStore,
    username: &str,
    command: UserCommand,
) -> anyhow::Result<(UserId, Option<i64>)> {
    let username = Username::parse(username).context("invalid username")?;
    let id = UserId::for_username(&username);
    let context = CommandContext {
        metadata: EventMetadata::system("operator"),
        data_subject: Some(id.to_string()),
    };
    let services = UserServices {
        passwords: Arc::new(Argon2Passwords),
    };
    match store
        .execute::<User>(&id.to_string(), command, &services, &context)
        .await
    {
        Ok(executed) => Ok((id, executed.position())),
        Err(ExecuteError::Domain(UserError::NotFound)) => {
            Err(anyhow!("there is no user named {username}"))
        }
        Err(ExecuteError::Domain(UserError::AlreadyErased)) => Err(anyhow!(
            "{username}'s personal data is already erased (forgotten before)"
        )),
        Err(error) => Err(error.into()),
    }
}
