//! The flattened root filesystem, in memory: metadata only, file data as references.
//!
//! Nodes (directory entries) point to inodes; hardlinks are several nodes sharing one
//! inode. Removed subtrees stay in the arena unreachable; writers walk from the root.

use std::collections::BTreeMap;

/// Index of a node (a name in a directory).
pub type NodeId = u32;
/// Index of an inode (shared by hardlinks).
pub type InodeId = u32;

/// The root directory's node.
pub const ROOT: NodeId = 0;

/// Where a regular file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// Bytes held in memory (the files apptainer adds).
    Inline(Vec<u8>),
    /// `len` bytes at `offset` of data source `source` (a layer tar, plain).
    Source { source: u32, offset: u64 },
}

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64, data: Data },
    Symlink(Vec<u8>),
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
    Socket,
}

/// Metadata shared by every name of an inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Extended attributes (full names such as `security.capability`), sorted.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Inode {
    /// A directory owned by root.
    #[must_use]
    pub fn dir(mode: u16, mtime: i64) -> Self {
        Self {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: Vec::new(),
        }
    }
    /// A file owned by root with its bytes in memory.
    #[must_use]
    pub fn inline_file(bytes: Vec<u8>, mode: u16, mtime: i64) -> Self {
        Self {
            kind: Kind::File {
                size: bytes.len() as u64,
                data: Data::Inline(bytes),
            },
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: Vec::new(),
        }
    }
    /// A symlink owned by root (mode 0777, as Linux reports them).
    #[must_use]
    pub fn symlink(target: &[u8], mtime: i64) -> Self {
        Self {
            kind: Kind::Symlink(target.to_vec()),
            mode: 0o777,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: Vec::new(),
        }
    }
    #[must_use]
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir)
    }
}

#[derive(Clone, Debug)]
struct Node {
    parent: NodeId,
    inode: InodeId,
    /// Children of a directory, by name (byte order, as squashfs wants them).
    children: BTreeMap<Vec<u8>, NodeId>,
    /// The layer that last created this path or one below it (0: none).
    stamp: u32,
}

/// The whole tree.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    inodes: Vec<Inode>,
}

impl Tree {
    /// An empty root directory (0755, root-owned, `mtime`).
    #[must_use]
    pub fn new(mtime: i64) -> Self {
        Self {
            nodes: vec![Node {
                parent: ROOT,
                inode: 0,
                children: BTreeMap::new(),
                stamp: 0,
            }],
            inodes: vec![Inode::dir(0o755, mtime)],
        }
    }

    #[must_use]
    pub fn inode_of(&self, node: NodeId) -> InodeId {
        self.nodes[node as usize].inode
    }
    #[must_use]
    pub fn inode(&self, id: InodeId) -> &Inode {
        &self.inodes[id as usize]
    }
    pub fn inode_mut(&mut self, id: InodeId) -> &mut Inode {
        &mut self.inodes[id as usize]
    }
    /// The inode of `node`.
    #[must_use]
    pub fn node_inode(&self, node: NodeId) -> &Inode {
        self.inode(self.inode_of(node))
    }
    pub fn node_inode_mut(&mut self, node: NodeId) -> &mut Inode {
        let id = self.inode_of(node);
        self.inode_mut(id)
    }
    #[must_use]
    pub fn parent(&self, node: NodeId) -> NodeId {
        self.nodes[node as usize].parent
    }
    /// Children of a directory node, sorted by name.
    pub fn children(&self, node: NodeId) -> impl Iterator<Item = (&[u8], NodeId)> + '_ {
        self.nodes[node as usize]
            .children
            .iter()
            .map(|(k, v)| (k.as_slice(), *v))
    }
    #[must_use]
    pub fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.nodes[dir as usize].children.get(name).copied()
    }
    #[must_use]
    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    pub(crate) fn stamp(&self, node: NodeId) -> u32 {
        self.nodes[node as usize].stamp
    }

    /// Marks `node` and its ancestors as created by `layer`.
    pub(crate) fn stamp_path(&mut self, mut node: NodeId, layer: u32) {
        loop {
            self.nodes[node as usize].stamp = layer;
            if node == ROOT {
                break;
            }
            node = self.nodes[node as usize].parent;
        }
    }

    /// Adds a new inode.
    pub fn add_inode(&mut self, inode: Inode) -> InodeId {
        self.inodes.push(inode);
        InodeId::try_from(self.inodes.len() - 1).unwrap_or(InodeId::MAX)
    }

    /// Links `name` in `dir` to `inode`, replacing whatever had that name.
    pub fn link(&mut self, dir: NodeId, name: &[u8], inode: InodeId) -> NodeId {
        let id = NodeId::try_from(self.nodes.len()).unwrap_or(NodeId::MAX);
        self.nodes.push(Node {
            parent: dir,
            inode,
            children: BTreeMap::new(),
            stamp: 0,
        });
        self.nodes[dir as usize].children.insert(name.to_vec(), id);
        id
    }

    /// Adds `inode` as `name` in `dir`, replacing whatever had that name.
    pub fn insert(&mut self, dir: NodeId, name: &[u8], inode: Inode) -> NodeId {
        let id = self.add_inode(inode);
        self.link(dir, name, id)
    }

    /// Removes `name` (and its subtree) from `dir`.
    pub fn remove(&mut self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        self.nodes[dir as usize].children.remove(name)
    }

    /// Looks `path` up lexically (`a/b/c`, no symlinks followed).
    #[must_use]
    pub fn lookup(&self, path: &str) -> Option<NodeId> {
        let mut cur = ROOT;
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            cur = self.child(cur, comp.as_bytes())?;
        }
        Some(cur)
    }

    /// Every reachable node with its path (`""` for the root), depth first, children in
    /// name order.
    #[must_use]
    pub fn walk(&self) -> Vec<(String, NodeId)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), ROOT)];
        while let Some((path, node)) = stack.pop() {
            let children: Vec<_> = self.children(node).collect();
            for (name, child) in children.into_iter().rev() {
                let name = String::from_utf8_lossy(name);
                let p = if path.is_empty() {
                    name.into_owned()
                } else {
                    format!("{path}/{name}")
                };
                stack.push((p, child));
            }
            out.push((path, node));
        }
        out
    }
}
