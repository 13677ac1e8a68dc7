//! Refuses documents that multiply work through aliases or many root fields, which depth and
//! complexity limits alone let through (`a1: movies(first: 100) … a50: movies(first: 100)` is
//! shallow, and each field's cost is counted once per alias only by the complexity limit).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Aliased fields allowed in one document.
pub const MAX_ALIASES: usize = 15;
/// Fields allowed at the root of one operation.
pub const MAX_ROOT_FIELDS: usize = 15;

pub struct AliasLimit;

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension)
    }
}

struct AliasLimitExtension;

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut aliases = 0;
        for fragment in document.fragments.values() {
            aliases += count_aliases(&fragment.node.selection_set.node);
        }
        for (_, operation) in document.operations.iter() {
            let root = &operation.node.selection_set.node;
            if root.items.len() > MAX_ROOT_FIELDS {
                return Err(refused(format!(
                    "an operation may select at most {MAX_ROOT_FIELDS} root fields"
                )));
            }
            aliases += count_aliases(root);
        }
        if aliases > MAX_ALIASES {
            return Err(refused(format!(
                "a document may use at most {MAX_ALIASES} aliases"
            )));
        }
        Ok(document)
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn refused(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "query_too_expensive");
    error.extensions = Some(extensions);
    error
}
