//! One client of the catalogue search, the same for every contender: a keep-alive connection of
//! its own, one request at a time, each for the next search term, and every answer checked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use marquee_bench::contenders::Contender;
use marquee_bench::driver::CommandFailed;
use serde_json::{json, Value};

/// The page every contender serves: the catalogue's first page of a full-text search.
pub const FIRST: usize = 20;

/// The catalogue query as a GraphQL client sends it: the fields a catalogue page shows.
pub const MOVIES_QUERY: &str = "query Catalogue($search: String!) { \
     movies(first: 20, filter: {search: $search}) { \
       edges { cursor node { id title year director genres description posterUrl addedBy addedAt version } } \
       pageInfo { hasNextPage endCursor } } }";

/// What a contender speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /graphql` with `MOVIES_QUERY`; the page is at `data.movies`.
    Graphql,
    /// `GET /movies?search=…` of the bare handler; the page is the whole body.
    Json,
}

pub struct SearchClient {
    client: reqwest::Client,
    url: String,
    protocol: Protocol,
    terms: Arc<Vec<String>>,
    next: AtomicUsize,
}

impl SearchClient {
    /// Client number `index` starts at its own place in the terms, so clients search for
    /// different terms at the same time.
    pub fn new(
        base_url: &str,
        protocol: Protocol,
        terms: Arc<Vec<String>>,
        index: usize,
    ) -> Result<Self> {
        let path = match protocol {
            Protocol::Graphql => "/graphql",
            Protocol::Json => "/movies",
        };
        Ok(Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?,
            url: format!("{base_url}{path}"),
            protocol,
            next: AtomicUsize::new(index * 7 % terms.len()),
            terms,
        })
    }

    /// Searches for `term`; the ids of the page, or why the answer is not a success.
    pub async fn search(&self, term: &str) -> Result<Vec<String>, CommandFailed> {
        let request = match self.protocol {
            Protocol::Graphql => self.client.post(&self.url).json(&json!({
                "query": MOVIES_QUERY,
                "variables": { "search": term },
            })),
            Protocol::Json => self.client.get(&self.url).query(&[("search", term)]),
        };
        let response = request
            .send()
            .await
            .map_err(|e| CommandFailed(format!("{}: {e}", self.url)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CommandFailed(format!("{}: reading the body: {e}", self.url)))?;
        if status != 200 {
            return Err(CommandFailed(format!(
                "{} answered {status}: {text}",
                self.url
            )));
        }
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| CommandFailed(format!("{}: not JSON ({e}): {text}", self.url)))?;
        // A GraphQL error is not a success, even beside partial data.
        if body.get("errors").is_some() {
            return Err(CommandFailed(format!("{}: errors: {text}", self.url)));
        }
        let page = match self.protocol {
            Protocol::Graphql => &body["data"]["movies"],
            Protocol::Json => &body,
        };
        let ids: Option<Vec<String>> = page["edges"].as_array().and_then(|edges| {
            edges
                .iter()
                .map(|edge| edge["node"]["id"].as_str().map(str::to_string))
                .collect()
        });
        match ids {
            Some(ids) if ids.len() <= FIRST && page["pageInfo"]["hasNextPage"].is_boolean() => {
                Ok(ids)
            }
            _ => Err(CommandFailed(format!(
                "{}: no page of edges with node ids and pageInfo: {text}",
                self.url
            ))),
        }
    }
}

#[async_trait]
impl Contender for SearchClient {
    /// One search (the driver's unit of work; nothing is appended).
    async fn append_one(&self) -> Result<()> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let term = &self.terms[n % self.terms.len()];
        let ids = self.search(term).await?;
        // Every term is in a few hundred movies: a short page is a wrong answer.
        if ids.len() != FIRST {
            return Err(CommandFailed(format!(
                "{}: {} movies for {term}, not {FIRST}",
                self.url,
                ids.len()
            ))
            .into());
        }
        Ok(())
    }

    async fn close(&self) {}
}
