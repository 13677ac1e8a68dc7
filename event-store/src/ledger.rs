//! Proof that no stored event was altered, removed or reordered: every stream's hash chain, the
//! density of global positions, and the signed-off checkpoint ranges over the whole log.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use crate::error::Result;
use crate::hash::{event_hash, running_hash};
use crate::model::{format_timestamp, now_micros, parse_timestamp, Checkpoint, StreamId};
use crate::store::{read_head, EventStore};

/// Events read per round trip while verifying.
const PAGE: u32 = 2_000;

/// Events read per round trip while sealing, which `serve` does every minute beside its own
/// work: a page's rows and events are alive at once (17 MB at 2,000), and the allocators keep
/// such a peak on whichever thread ran it (README, Soak).
const SEAL_PAGE: u32 = 200;

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerReport {
    pub intact: bool,
    pub checked_events: i64,
    pub first_broken_position: Option<i64>,
    pub last_checkpoint: Option<i64>,
    pub head: i64,
    pub problems: Vec<Problem>,
}

/// One break in the ledger, at the first position it affects.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub position: i64,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A position with no event: an event was deleted.
    MissingEvent,
    /// The stored hash is not the hash of the stored event: it was altered.
    HashMismatch,
    /// The event does not follow the previous event of its stream: reordered or removed.
    SequenceBroken,
    /// The next event's link does not match this event's hash: this event was rewritten.
    ChainBroken,
    /// A signed-off range no longer hashes to its checkpoint.
    CheckpointMismatch,
    /// The head row and the stored events disagree.
    HeadMismatch,
}

struct StreamState {
    sequence: i64,
    hash: String,
    position: i64,
}

impl EventStore {
    /// Checks every stream's chain, the density of positions and every checkpoint.
    pub async fn verify(&self) -> Result<LedgerReport> {
        let checkpoints = self.checkpoints().await?;
        self.verify_after(checkpoints, None).await
    }

    /// The same checks over only the events after the last checkpoint, trusting the sealed
    /// ranges before it: the first event of a stream in that tail is not checked against its
    /// predecessor (only `verify` reads those).
    pub async fn verify_since_last_checkpoint(&self) -> Result<LedgerReport> {
        let mut checkpoints = self.checkpoints().await?;
        let last = checkpoints.pop();
        self.verify_after(last.clone().into_iter().collect(), last)
            .await
    }

    /// Verifies from the start, or after the checkpoint `sealed` (whose running hash seeds the
    /// next range), against `checkpoints`.
    async fn verify_after(
        &self,
        checkpoints: Vec<Checkpoint>,
        sealed: Option<Checkpoint>,
    ) -> Result<LedgerReport> {
        let head = read_head(self.database()).await?;
        let mut problems = Vec::new();
        let mut streams: HashMap<StreamId, StreamState> = HashMap::new();
        let start = sealed.as_ref().map_or(0, |c| c.to_position);
        let remaining: Vec<&Checkpoint> = checkpoints
            .iter()
            .filter(|c| c.to_position > start)
            .collect();
        let mut pending_checkpoints = remaining.into_iter().peekable();
        let mut broken_checkpoints = Vec::new();
        let mut running: Option<String> = sealed.as_ref().map(|c| c.running_hash.clone());
        let mut range_start = start + 1;
        let mut expected_position = start + 1;
        let mut checked = 0;
        let mut after = start;
        loop {
            let page = self.read_raw(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for event in page {
                checked += 1;
                if event.position > expected_position {
                    problems.push(Problem {
                        position: expected_position,
                        kind: ProblemKind::MissingEvent,
                        detail: missing_range(expected_position, event.position - 1),
                    });
                }
                expected_position = event.position + 1;
                let stream = event.stream();
                let previous = streams.get(&stream);
                let expected_sequence = previous.map_or(1, |s| s.sequence + 1);
                // After a checkpoint, a stream's predecessor lies in the trusted range.
                let continues_sealed = sealed.is_some() && previous.is_none();
                if event.sequence != expected_sequence && !continues_sealed {
                    problems.push(Problem {
                        position: event.position,
                        kind: ProblemKind::SequenceBroken,
                        detail: format!(
                            "{stream} has sequence {} where {expected_sequence} was due",
                            event.sequence
                        ),
                    });
                }
                match previous {
                    // The link was written with the genuine hash of the event before, so when
                    // they disagree it is that event that changed.
                    Some(previous)
                        if event.sequence == previous.sequence + 1
                            && event.prev_hash.as_deref() != Some(previous.hash.as_str()) =>
                    {
                        problems.push(Problem {
                            position: previous.position,
                            kind: ProblemKind::ChainBroken,
                            detail: format!(
                                "the event at position {} links to a different hash than {stream} \
                                 sequence {} carries",
                                event.position, previous.sequence
                            ),
                        });
                    }
                    None if event.prev_hash.is_some() && !continues_sealed => {
                        problems.push(Problem {
                            position: event.position,
                            kind: ProblemKind::SequenceBroken,
                            detail: format!("the first event of {stream} links to an earlier one"),
                        })
                    }
                    _ => {}
                }
                // The stored link is part of what the hash covers, so a rewritten link shows here.
                if event_hash(event.prev_hash.as_deref(), &event) != event.hash {
                    problems.push(Problem {
                        position: event.position,
                        kind: ProblemKind::HashMismatch,
                        detail: format!("{stream} sequence {} was altered", event.sequence),
                    });
                }
                running = Some(running_hash(running.as_deref(), &event.hash));
                while let Some(checkpoint) =
                    pending_checkpoints.next_if(|c| c.to_position <= event.position)
                {
                    if checkpoint.from_position != range_start
                        || running.as_deref() != Some(checkpoint.running_hash.as_str())
                        || checkpoint.to_position != event.position
                    {
                        broken_checkpoints.push(checkpoint);
                    }
                    range_start = checkpoint.to_position + 1;
                }
                streams.insert(
                    stream,
                    StreamState {
                        sequence: event.sequence,
                        hash: event.hash,
                        position: event.position,
                    },
                );
            }
        }
        let last_seen = expected_position - 1;
        if head > last_seen {
            problems.push(Problem {
                position: last_seen + 1,
                kind: ProblemKind::MissingEvent,
                detail: format!(
                    "the head says {head} events were committed; {}",
                    missing_range(last_seen + 1, head)
                ),
            });
        } else if head < last_seen {
            problems.push(Problem {
                position: head + 1,
                kind: ProblemKind::HeadMismatch,
                detail: format!("events up to {last_seen} are stored beyond the head {head}"),
            });
        }
        broken_checkpoints.extend(pending_checkpoints);
        let located: Vec<Problem> = broken_checkpoints
            .into_iter()
            .map(|checkpoint| checkpoint_mismatch(checkpoint, &problems))
            .collect();
        problems.extend(located);
        problems.sort_by_key(|p| p.position);
        Ok(LedgerReport {
            intact: problems.is_empty(),
            checked_events: checked,
            first_broken_position: problems.first().map(|p| p.position),
            last_checkpoint: checkpoints.last().map(|c| c.to_position),
            head,
            problems,
        })
    }

    /// Signs off everything committed since the last checkpoint, after checking that each event
    /// still carries its own hash. Returns `None` when there is nothing new to seal.
    pub async fn seal_checkpoint(&self) -> Result<Option<Checkpoint>> {
        let last = self.checkpoints().await?.pop();
        let head = read_head(self.database()).await?;
        let mut after = last.as_ref().map_or(0, |c| c.to_position);
        if head <= after {
            return Ok(None);
        }
        let from_position = after + 1;
        let mut running = last.map(|c| c.running_hash);
        while after < head {
            let page = self
                .read_contiguous_raw(after, SEAL_PAGE.min((head - after) as u32))
                .await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for event in page {
                if event_hash(event.prev_hash.as_deref(), &event) != event.hash {
                    return Err(crate::StoreError::Corrupt {
                        position: event.position,
                        reason: "the event no longer matches its hash; refusing to seal".into(),
                    });
                }
                running = Some(running_hash(running.as_deref(), &event.hash));
            }
        }
        let checkpoint = Checkpoint {
            from_position,
            to_position: after,
            running_hash: running.unwrap_or_default(),
            sealed_at: now_micros(),
        };
        let inserted = sqlx::query(
            "INSERT INTO ledger_checkpoints (to_position, from_position, running_hash, sealed_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(checkpoint.to_position)
        .bind(checkpoint.from_position)
        .bind(&checkpoint.running_hash)
        .bind(format_timestamp(checkpoint.sealed_at))
        .execute(self.database().pool())
        .await;
        match inserted {
            Ok(_) => Ok(Some(checkpoint)),
            // Another process sealed the same range first; its checkpoint stands.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query(
            "SELECT from_position, to_position, running_hash, sealed_at \
             FROM ledger_checkpoints ORDER BY to_position",
        )
        .fetch_all(self.database().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let sealed_at: String = row.try_get(3)?;
                let to_position = row.try_get(1)?;
                Ok(Checkpoint {
                    from_position: row.try_get(0)?,
                    to_position,
                    running_hash: row.try_get(2)?,
                    sealed_at: parse_timestamp(&sealed_at).ok_or_else(|| {
                        crate::StoreError::Corrupt {
                            position: to_position,
                            reason: format!("checkpoint sealed_at {sealed_at:?}"),
                        }
                    })?,
                })
            })
            .collect()
    }
}

fn missing_range(from: i64, to: i64) -> String {
    if from == to {
        format!("position {from} is missing")
    } else {
        format!("positions {from} to {to} are missing")
    }
}

/// A checkpoint can only say that its range changed; when the chains already pinned a break
/// inside that range, the checkpoint's problem is placed there too.
fn checkpoint_mismatch(checkpoint: &Checkpoint, found: &[Problem]) -> Problem {
    let range = checkpoint.from_position..=checkpoint.to_position;
    let position = found
        .iter()
        .map(|p| p.position)
        .filter(|p| range.contains(p))
        .min()
        .unwrap_or(checkpoint.from_position);
    Problem {
        position,
        kind: ProblemKind::CheckpointMismatch,
        detail: format!(
            "checkpoint {}..={} sealed at {} no longer matches the events in its range",
            checkpoint.from_position,
            checkpoint.to_position,
            format_timestamp(checkpoint.sealed_at)
        ),
    }
}
