//! The checked-in SDL is the reviewed public schema: any change to it must be deliberate.

use std::path::Path;

#[test]
fn the_schema_matches_the_checked_in_sdl() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let current = query_api::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).expect("write schema.graphql");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == current,
        "the GraphQL schema changed: review the difference, then rewrite {} with \
         `UPDATE_SCHEMA=1 cargo test -p query-api --test schema` and commit it",
        path.display()
    );
}

#[test]
fn the_contract_names_are_in_the_schema() {
    let sdl = query_api::sdl();
    for name in [
        "movies(first: Int = 20, after: String, filter: MovieFilter, orderBy: MovieOrder = ADDED_AT_DESC): MovieConnection!",
        "movie(id: ID!): Movie",
        "movieAsOf(id: ID!, at: DateTime, version: Int): Movie",
        "me: User",
        "events(first: Int = 50, after: String, aggregateId: ID, aggregateType: String, eventTypes: [String!], from: DateTime, to: DateTime): EventConnection!",
        "metrics(name: String!, from: DateTime, to: DateTime, periodSeconds: Int = 60): [MetricPoint!]!",
        "logins(first: Int = 20): [Login!]!",
        "ledger(incremental: Boolean = false): LedgerStatus!",
        "stats: Stats!",
        "projections: [ProjectionStatus!]!",
        "movieChanged(id: ID): MovieChange!",
        "eventAppended(aggregateType: String): Event!",
        "scalar DateTime",
        "scalar JSON",
        "enum ChangeKind",
        "totalCount: Int!",
    ] {
        assert!(sdl.contains(name), "the schema lacks `{name}`:\n{sdl}");
    }
}
