//! Index-linked LRU lists over a slab: the building block of the eviction policies (safe Rust,
//! O(1) moves, no per-node allocation).

/// The null link.
pub(super) const NIL: usize = usize::MAX;

/// Which segment of W-TinyLFU a node is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Seg {
    Window,
    Probation,
    Protected,
}

/// One tracked key.
pub(super) struct Node<K> {
    pub(super) key: Option<K>,
    pub(super) size: u64,
    prev: usize,
    next: usize,
    pub(super) seg: Seg,
}

/// An intrusive doubly linked list over slab indices; `head` is the most recently used.
#[derive(Clone, Copy)]
pub(super) struct List {
    pub(super) head: usize,
    pub(super) tail: usize,
    pub(super) bytes: u64,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }
}

/// Nodes and a free list.
pub(super) struct Slab<K> {
    pub(super) nodes: Vec<Node<K>>,
    free: Vec<usize>,
}

impl<K> Slab<K> {
    pub(super) fn new() -> Self {
        Slab {
            nodes: Vec::new(),
            free: Vec::new(),
        }
    }
    pub(super) fn alloc(&mut self, key: K, size: u64, seg: Seg) -> usize {
        let node = Node {
            key: Some(key),
            size,
            prev: NIL,
            next: NIL,
            seg,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }
    pub(super) fn release(&mut self, i: usize) -> Option<K> {
        self.free.push(i);
        self.nodes[i].key.take()
    }
    pub(super) fn push_front(&mut self, list: &mut List, i: usize) {
        self.nodes[i].prev = NIL;
        self.nodes[i].next = list.head;
        if list.head != NIL {
            self.nodes[list.head].prev = i;
        } else {
            list.tail = i;
        }
        list.head = i;
        list.bytes += self.nodes[i].size;
    }
    pub(super) fn unlink(&mut self, list: &mut List, i: usize) {
        let (p, n) = (self.nodes[i].prev, self.nodes[i].next);
        if p != NIL {
            self.nodes[p].next = n;
        } else {
            list.head = n;
        }
        if n != NIL {
            self.nodes[n].prev = p;
        } else {
            list.tail = p;
        }
        list.bytes -= self.nodes[i].size;
    }
}
