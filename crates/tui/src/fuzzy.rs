//! Fuzzy matching for the quick switcher: the query's characters must appear in order
//! (case-insensitive); consecutive runs, word starts and a prefix score higher.

/// The score of `candidate` for `query`, or `None` when it does not match. An empty
/// query matches everything with score 0.
pub fn score(query: &str, candidate: &str) -> Option<i64> {
    let q: Vec<char> = query
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    if q.is_empty() {
        return Some(0);
    }
    let c: Vec<char> = candidate.chars().flat_map(char::to_lowercase).collect();
    let mut qi = 0;
    let mut total = 0i64;
    let mut prev_match: Option<usize> = None;
    for (i, ch) in c.iter().enumerate() {
        if qi < q.len() && *ch == q[qi] {
            let mut s = 1;
            if prev_match.is_some_and(|p| p + 1 == i) {
                s += 10;
            }
            if i == 0 {
                s += 8;
            } else if !c[i - 1].is_alphanumeric() {
                s += 4;
            }
            total += s;
            prev_match = Some(i);
            qi += 1;
        }
    }
    if qi < q.len() {
        return None;
    }
    // Shorter candidates win ties.
    Some(total * 100 - c.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_prefix_and_runs_first() {
        assert!(score("ops", "@bob").is_none());
        assert!(score("xyz", "ops").is_none());
        let ops = score("ops", "ops").unwrap();
        let devops = score("ops", "devops").unwrap();
        let scattered = score("ops", "o-p-s-channel").unwrap();
        assert!(ops > devops, "{ops} {devops}");
        assert!(devops > scattered, "{devops} {scattered}");
        assert!(score("BOB", "@bob").is_some());
        assert_eq!(score("", "anything"), Some(0));
        assert!(score("bb", "@bob").is_some());
    }
}
