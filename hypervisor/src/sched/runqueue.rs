//! A per-CPU run queue: a fixed-capacity FIFO of scheduler slots.

/// A FIFO of up to `N` scheduler slot numbers, without allocation. Pushing, popping and
/// length are O(1); removing an arbitrary slot is O(len).
#[derive(Clone, Debug)]
pub struct RunQueue<const N: usize> {
    items: [u16; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for RunQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RunQueue<N> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            items: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Entries in the queue.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the queue is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `slot`; `false` if the queue is full.
    pub fn push_back(&mut self, slot: u16) -> bool {
        if self.len == N {
            return false;
        }
        self.items[(self.head + self.len) % N] = slot;
        self.len += 1;
        true
    }

    /// Takes the first entry.
    pub fn pop_front(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let slot = self.items[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(slot)
    }

    /// The entries, first to last.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.len).map(move |i| self.items[(self.head + i) % N])
    }

    /// Removes `slot` (its first occurrence), keeping the order of the rest. Returns whether
    /// it was there.
    pub fn remove(&mut self, slot: u16) -> bool {
        let Some(pos) = self.iter().position(|s| s == slot) else {
            return false;
        };
        for i in pos..self.len - 1 {
            self.items[(self.head + i) % N] = self.items[(self.head + i + 1) % N];
        }
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn fifo_wraps_and_removes_in_order() {
        let mut q = RunQueue::<4>::new();
        assert!(q.pop_front().is_none());
        for s in 1..=4 {
            assert!(q.push_back(s));
        }
        assert!(!q.push_back(5), "full");
        assert_eq!(q.pop_front(), Some(1));
        assert!(q.push_back(5));
        assert_eq!(q.iter().collect::<Vec<_>>(), [2, 3, 4, 5]);
        assert!(q.remove(3));
        assert!(!q.remove(3));
        assert_eq!(q.iter().collect::<Vec<_>>(), [2, 4, 5]);
        assert_eq!(q.pop_front(), Some(2));
        assert_eq!(q.pop_front(), Some(4));
        assert_eq!(q.pop_front(), Some(5));
        assert!(q.is_empty());
    }
}
