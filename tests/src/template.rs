//! `deploy/template.yaml` read the way CloudFormation reads it, for tests that build the deployed
//! system locally: resources by type, and `Ref`, `Fn::Sub`, `Fn::GetAtt` and `Fn::Base64`
//! (short tags such as `!Sub` included) resolved against values the test supplies.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_yaml::Value;

pub struct Template {
    root: Value,
}

/// What `Ref`, `Fn::GetAtt` (`Logical.Attribute`) and `${…}` names resolve to in a test.
pub type Scope = HashMap<String, String>;

impl Template {
    pub fn path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/template.yaml")
    }

    pub fn load() -> Template {
        let path = Self::path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        Template { root }
    }

    /// The resources of one type, as (logical id, properties), in the template's order.
    pub fn resources(&self, kind: &str) -> Vec<(String, &Value)> {
        self.root["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
            .map(|(id, resource)| {
                (
                    id.as_str().expect("a logical id").to_string(),
                    &resource["Properties"],
                )
            })
            .collect()
    }

    /// A section of the template, such as `Globals`.
    pub fn section(&self, name: &str) -> &Value {
        &self.root[name]
    }

    /// Every parameter's default, as CloudFormation would fill them in.
    pub fn parameter_defaults(&self) -> Scope {
        self.root["Parameters"]
            .as_mapping()
            .expect("Parameters")
            .iter()
            .filter_map(|(name, parameter)| {
                let default = scalar(&parameter["Default"])?;
                Some((name.as_str()?.to_string(), default))
            })
            .collect()
    }
}

/// A scalar's text; `None` for anything else.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Resolves `value` to text; panics on a name `scope` does not have or a function it cannot
/// evaluate, so a template change the test does not understand fails loudly.
pub fn resolve(value: &Value, scope: &Scope) -> String {
    if let Some(text) = scalar(value) {
        return text;
    }
    let (function, argument) = match value {
        Value::Tagged(tagged) => (
            tagged.tag.to_string().trim_start_matches('!').to_string(),
            &tagged.value,
        ),
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (name, argument) = mapping.iter().next().expect("one entry");
            (
                name.as_str()
                    .unwrap_or_default()
                    .trim_start_matches("Fn::")
                    .to_string(),
                argument,
            )
        }
        other => panic!("cannot resolve {other:?}"),
    };
    match function.as_str() {
        "Ref" => lookup(scope, &resolve(argument, scope)),
        "GetAtt" => {
            let name = match argument {
                Value::Sequence(parts) => parts
                    .iter()
                    .map(|part| resolve(part, scope))
                    .collect::<Vec<_>>()
                    .join("."),
                other => resolve(other, scope),
            };
            lookup(scope, &name)
        }
        "Sub" => match argument {
            Value::Sequence(parts) if parts.len() == 2 => {
                let mut inner = scope.clone();
                for (name, value) in parts[1].as_mapping().expect("Fn::Sub's variables") {
                    let name = name.as_str().expect("a variable name").to_string();
                    // A value the test set itself wins (such as an `!If` it cannot evaluate).
                    inner.entry(name).or_insert_with(|| resolve(value, scope));
                }
                substitute(&resolve(&parts[0], scope), &inner)
            }
            other => substitute(&resolve(other, scope), scope),
        },
        "Base64" => resolve(argument, scope),
        other => panic!("the test cannot evaluate Fn::{other}"),
    }
}

fn lookup(scope: &Scope, name: &str) -> String {
    scope
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("the template names {name:?}, which the test did not supply"))
}

/// `Fn::Sub`'s `${Name}` substitution; `${!Literal}` stays `${Literal}`.
fn substitute(text: &str, scope: &Scope) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("an unclosed ${ in Fn::Sub");
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(literal) => {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            }
            None => out.push_str(&lookup(scope, name)),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_forms_resolve_alike() {
        let scope: Scope = [
            ("Prefix".to_string(), "p-".to_string()),
            ("Queue.Arn".to_string(), "arn:q".to_string()),
        ]
        .into();
        let value = |yaml: &str| serde_yaml::from_str::<Value>(yaml).unwrap();
        assert_eq!(
            resolve(&value("!Sub '${Prefix}events.fifo'"), &scope),
            "p-events.fifo"
        );
        assert_eq!(resolve(&value("Fn::Sub: '${Prefix}x'"), &scope), "p-x");
        assert_eq!(resolve(&value("!Ref Prefix"), &scope), "p-");
        assert_eq!(resolve(&value("!GetAtt Queue.Arn"), &scope), "arn:q");
        assert_eq!(resolve(&value("Fn::GetAtt: [Queue, Arn]"), &scope), "arn:q");
        assert_eq!(
            resolve(&value("!Sub ['${A}-${!B}', {A: !Ref Prefix}]"), &scope),
            "p--${B}"
        );
        assert_eq!(resolve(&value("30"), &scope), "30");
    }
}
