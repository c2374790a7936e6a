//! How a [`WriteBatch`](crate::store::WriteBatch) keeps the meaning of its rows applied
//! one by one when each backend sends them as a few multi-row statements.
//!
//! An `UPDATE … FROM` (a `VALUES` list on SQLite, `UNNEST` of arrays on PostgreSQL)
//! touches each target row at most once, so claims are sent in [`rounds`] in which no
//! row appears twice: a second claim on the same job (or run) goes in the next round and
//! sees the first one's effect, exactly as if they ran one after the other. Where only
//! the last write to a row counts (marks, finishes), [`last_per_run`] keeps that one.

use std::collections::{HashMap, HashSet};

/// Splits claims on `keys` into rounds in which no key appears twice; each key's claims
/// keep their order across rounds. Returns indexes into `keys`.
pub(crate) fn rounds(keys: impl Iterator<Item = i64>) -> Vec<Vec<usize>> {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (index, key) in keys.enumerate() {
        let round = seen.entry(key).or_default();
        if rounds.len() <= *round {
            rounds.push(Vec::new());
        }
        rounds[*round].push(index);
        *round += 1;
    }
    rounds
}

/// The last of `items` for each key, in the order of those last ones.
pub(crate) fn last_per_run<T>(items: &[T], key: impl Fn(&T) -> i64) -> Vec<&T> {
    let mut seen = HashSet::new();
    let mut unique: Vec<&T> = items
        .iter()
        .rev()
        .filter(|item| seen.insert(key(item)))
        .collect();
    unique.reverse();
    unique
}

#[cfg(test)]
mod tests {
    use super::{last_per_run, rounds};

    #[test]
    fn rounds_never_repeat_a_key_and_keep_each_keys_claims_in_order() {
        let keys = [7, 8, 7, 9, 7, 8];
        assert_eq!(
            rounds(keys.into_iter()),
            vec![vec![0, 1, 3], vec![2, 5], vec![4]]
        );
    }

    #[test]
    fn the_last_write_of_each_row_is_kept_in_the_order_of_those_last_writes() {
        let writes = [(1, 'a'), (2, 'b'), (1, 'c'), (3, 'd'), (2, 'e')];
        let kept: Vec<char> = last_per_run(&writes, |w| w.0)
            .into_iter()
            .map(|w| w.1)
            .collect();
        assert_eq!(kept, ['c', 'd', 'e']);
    }
}
