//! What the model-checking tests share: exploring a model breadth first, and reading what
//! the checker found.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;

use stateright::{Checker, HasDiscoveries, Model, Path};

/// Explores every reachable state.
pub fn explore<M>(model: M) -> impl Checker<M>
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: Clone + PartialEq,
{
    model.checker().spawn_bfs().join()
}

/// Explores until `property` has a discovery (or every state was seen).
pub fn explore_until<M>(model: M, property: &'static str) -> impl Checker<M>
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: Clone + PartialEq,
{
    model
        .checker()
        .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([property])))
        .spawn_bfs()
        .join()
}

/// A path, one action a line, then what `last` shows of the state it ends in: for failure
/// messages.
pub fn trace<S: Clone, A: Clone + Debug, T: Debug>(
    path: &Path<S, A>,
    last: impl Fn(&S) -> T,
) -> String {
    let steps: Vec<String> = path
        .clone()
        .into_actions()
        .iter()
        .map(|a| format!("  {a:?}"))
        .collect();
    format!("{}\n  => {:?}", steps.join("\n"), last(path.last_state()))
}

/// The counterexample the checker found for `property`.
pub fn counterexample<M>(
    checker: &impl Checker<M>,
    property: &'static str,
) -> Path<M::State, M::Action>
where
    M: Model,
    M::State: Clone + PartialEq,
    M::Action: Clone + PartialEq,
{
    checker
        .discovery(property)
        .unwrap_or_else(|| panic!("the checker found no counterexample to {property:?}"))
}
