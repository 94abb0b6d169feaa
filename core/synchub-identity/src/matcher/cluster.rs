//! Clustering of accepted links with a guard against long transitive chains:
//! links are applied strongest first, and two clusters are not joined when
//! any compared pair across them was judged a different person, or when the
//! result would exceed a size cap.

/// Union–find with member lists and cannot-link checks.
#[derive(Debug)]
pub struct Clusters {
    parent: Vec<u32>,
    members: Vec<Vec<u32>>,
    conflicts: Vec<Vec<u32>>,
    max_size: usize,
}

impl Clusters {
    /// `n` singleton clusters; `conflicts` are pairs known to be different people.
    pub fn new(n: usize, conflicts: &[(u32, u32)], max_size: usize) -> Self {
        let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n];
        for &(a, b) in conflicts {
            adj[a as usize].push(b);
            adj[b as usize].push(a);
        }
        Clusters {
            parent: (0..u32::try_from(n).unwrap_or(u32::MAX)).collect(),
            members: (0..u32::try_from(n).unwrap_or(u32::MAX))
                .map(|i| vec![i])
                .collect(),
            conflicts: adj,
            max_size,
        }
    }

    /// Root of a record's cluster.
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Join the clusters of `a` and `b` unless guarded; true when joined (or already one).
    pub fn link(&mut self, a: u32, b: u32) -> bool {
        self.link_unless(a, b, |_, _| false)
    }

    /// [`Clusters::link`], also refused when `disagree(x, y)` holds for any
    /// record `x` of one cluster and `y` of the other.
    pub fn link_unless(
        &mut self,
        a: u32,
        b: u32,
        mut disagree: impl FnMut(u32, u32) -> bool,
    ) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        let (big, small) = if self.members[ra as usize].len() >= self.members[rb as usize].len() {
            (ra, rb)
        } else {
            (rb, ra)
        };
        if self.members[big as usize].len() + self.members[small as usize].len() > self.max_size {
            return false;
        }
        let small_members = std::mem::take(&mut self.members[small as usize]);
        let blocked = small_members.iter().any(|x| {
            let others = self.conflicts[*x as usize].clone();
            others.into_iter().any(|y| self.find(y) == big)
        });
        let blocked = blocked
            || small_members
                .iter()
                .any(|x| self.members[big as usize].iter().any(|y| disagree(*x, *y)));
        if blocked {
            self.members[small as usize] = small_members;
            return false;
        }
        self.parent[small as usize] = big;
        self.members[big as usize].extend(small_members);
        true
    }

    /// Cluster label per record: the smallest record index in its cluster.
    pub fn labels(&mut self) -> Vec<u32> {
        let n = self.parent.len();
        let mut label = vec![u32::MAX; n];
        let mut out = Vec::with_capacity(n);
        for i in 0..u32::try_from(n).unwrap_or(u32::MAX) {
            let r = self.find(i) as usize;
            if label[r] == u32::MAX {
                label[r] = i;
            }
            out.push(label[r]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_stops_a_chain() {
        // GIVEN 0-1 and 1-2 linked strongly, but 0 and 2 known to differ
        let mut c = Clusters::new(4, &[(0, 2)], 10);
        assert!(c.link(0, 1));
        // WHEN 2 tries to join through 1
        assert!(!c.link(1, 2));
        assert!(c.link(2, 3));
        // THEN two clusters remain
        assert_eq!(c.labels(), vec![0, 0, 2, 2]);
    }

    #[test]
    fn pairwise_disagreement_across_clusters_stops_a_chain() {
        // GIVEN 0-1 and 2-3 joined, and 0 disagreeing with 3 (never compared directly)
        let mut c = Clusters::new(4, &[], 10);
        assert!(c.link(0, 1));
        assert!(c.link(2, 3));
        // WHEN 1 and 2 link THEN the join is refused because 0 and 3 disagree
        let disagree = |x: u32, y: u32| (x.min(y), x.max(y)) == (0, 3);
        assert!(!c.link_unless(1, 2, disagree));
        assert_eq!(c.labels(), vec![0, 0, 2, 2]);
    }

    #[test]
    fn size_cap_holds() {
        let mut c = Clusters::new(5, &[], 3);
        assert!(c.link(0, 1));
        assert!(c.link(1, 2));
        assert!(!c.link(2, 3));
        assert_eq!(c.labels(), vec![0, 0, 0, 3, 4]);
    }
}
