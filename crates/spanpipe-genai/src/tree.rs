//! MLflow's rule on one trace's span tree, in linear time: for every span, whether MLflow's aggregation reaches
//! it from a root at all, and whether an ancestor carries usage (cost). MLflow walks down from the roots (spans
//! whose parent is absent) carrying "an ancestor has data"; spans on or below a parent-id cycle are never
//! reached, so they never count. Here each span's chain is walked up once with an explicit path and memoised, so
//! a hostile 100,000-span chain costs 100,000 steps, not 100,000².

/// Per span, by index.
#[derive(Debug, Default)]
pub struct Ancestry {
    /// Reached from a root (not on or below a cycle).
    pub reachable: Vec<bool>,
    /// An ancestor has usage.
    pub usage: Vec<bool>,
    /// An ancestor has cost.
    pub cost: Vec<bool>,
}

/// `parents[i]`: index of span `i`'s parent among the spans, `None` for a root (or an absent parent).
pub fn ancestry(parents: &[Option<usize>], has_usage: &[bool], has_cost: &[bool]) -> Ancestry {
    let n = parents.len();
    let mut a = Ancestry {
        reachable: vec![false; n],
        usage: vec![false; n],
        cost: vec![false; n],
    };
    let mut done = vec![false; n];
    let mut on_path = vec![false; n];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..n {
        if done[start] {
            continue;
        }
        path.clear();
        let mut cur = start;
        // What is known above the top of the path: (reachable, ancestor-or-self has usage, ... cost).
        let above = loop {
            if done[cur] {
                break Some((
                    a.reachable[cur],
                    a.usage[cur] || has_usage[cur],
                    a.cost[cur] || has_cost[cur],
                ));
            }
            if on_path[cur] {
                break None; // a cycle: nothing on this path is reachable
            }
            on_path[cur] = true;
            path.push(cur);
            match parents[cur] {
                Some(p) if p < n => cur = p,
                _ => break Some((true, false, false)), // `cur` is a root: nothing above it
            }
        };
        let (reach, mut u, mut c) = above.unwrap_or((false, false, false));
        for &i in path.iter().rev() {
            a.reachable[i] = reach;
            a.usage[i] = u;
            a.cost[i] = c;
            done[i] = true;
            on_path[i] = false;
            u = u || has_usage[i];
            c = c || has_cost[i];
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_branches_and_cycles() {
        // 0 root (usage) ← 1 (none) ← 2 (usage); 3 root (none) ← 4 (usage); 5 ↔ 6 cycle ← 7.
        let parents = [
            None,
            Some(0),
            Some(1),
            None,
            Some(3),
            Some(6),
            Some(5),
            Some(6),
        ];
        let usage = [true, false, true, false, true, true, false, true];
        let a = ancestry(&parents, &usage, &[false; 8]);
        assert_eq!(
            a.usage,
            [false, true, true, false, false, false, false, false]
        );
        assert_eq!(
            a.reachable,
            [true, true, true, true, true, false, false, false]
        );
    }

    #[test]
    fn a_long_chain_is_linear() {
        let n: usize = 200_000;
        let parents: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let usage = vec![true; n];
        let t = std::time::Instant::now();
        let a = ancestry(&parents, &usage, &vec![false; n]);
        assert!(!a.usage[0] && a.usage[n - 1]);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
}
