//! The weekly Merkle tree of payouts, so a holder can check their payout against the week's
//! published root without trusting anything else.
//!
//! - **Leaf** (one per holder, in ascending account order): SHA-256 of `0x00`, the close
//!   (u64), the account (u64), the holding (u128), the number of payouts (u16), then each
//!   payout's asset (u32) and amount (u128), ascending by asset, all big-endian. So one leaf
//!   commits to every (account, asset, amount) of the holder in that week.
//! - **Node**: SHA-256 of `0x01`, left, right. A level's last node without a partner moves
//!   up unchanged. The root of an empty week is 32 zero bytes.
//! - **Proof**: the partner hashes from the leaf up, each marked left or right.
//!
//! One leaf per holder rather than per (holder, asset) keeps the tree a fiftieth of the size
//! for fifty assets (a million holders hash in well under a second) and lets a holder check all
//! of a week's payouts with one proof.

use coss_types::AssetId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A hash in the tree.
pub type Hash = [u8; 32];

/// The leaf of one holder.
#[must_use]
pub fn leaf_hash(close_ms: u64, account: u64, holding: u128, payouts: &[(AssetId, u128)]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(close_ms.to_be_bytes());
    hasher.update(account.to_be_bytes());
    hasher.update(holding.to_be_bytes());
    hasher.update(
        u16::try_from(payouts.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    for (asset, amount) in payouts {
        hasher.update(asset.0.to_be_bytes());
        hasher.update(amount.to_be_bytes());
    }
    hasher.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// One step of a proof: the partner's hash and whether it is on the left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    /// The partner (hex).
    #[serde(with = "hex_hash")]
    pub hash: Hash,
    /// The partner is the left child.
    pub left: bool,
}

/// A whole tree, every level kept (about two hashes per leaf) so proofs are cheap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (in leaf order).
    #[must_use]
    pub fn build(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|level| level.len() > 1) {
            let below = levels.last().map_or(&[][..], Vec::as_slice);
            let next: Vec<Hash> = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => [0; 32],
                })
                .collect();
            levels.push(next);
        }
        Self { levels }
    }

    /// The root (zero for no leaves).
    /// The tree over this tree's level `k` (its nodes of `2^k` leaves each; the top level if
    /// `k` is above it): the same upper levels and root. With it, a leaf's proof is its
    /// `2^k`-leaf block's own proof followed by the block's proof here, so a server can keep
    /// only this small tree and rebuild one block per proof.
    #[must_use]
    pub fn above(&self, k: usize) -> MerkleTree {
        let level = self.levels.get(k).or(self.levels.last());
        MerkleTree::build(level.cloned().unwrap_or_default())
    }

    #[must_use]
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|top| top.first())
            .copied()
            .unwrap_or([0; 32])
    }

    /// Leaf `index`.
    #[must_use]
    pub fn leaf(&self, index: usize) -> Option<Hash> {
        self.levels
            .first()
            .and_then(|leaves| leaves.get(index))
            .copied()
    }

    /// Leaves.
    #[must_use]
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether there are no leaves.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The proof of leaf `index`.
    #[must_use]
    pub fn proof(&self, index: usize) -> Option<Vec<ProofStep>> {
        if index >= self.len() {
            return None;
        }
        let mut steps = Vec::new();
        let mut at = index;
        for level in &self.levels[..self.levels.len() - 1] {
            let partner = at ^ 1;
            if let Some(hash) = level.get(partner) {
                steps.push(ProofStep {
                    hash: *hash,
                    left: partner < at,
                });
            }
            at /= 2;
        }
        Some(steps)
    }
}

/// Whether `leaf` with `proof` leads to `root`.
#[must_use]
pub fn verify(leaf: Hash, proof: &[ProofStep], root: &Hash) -> bool {
    let mut hash = leaf;
    for step in proof {
        hash = if step.left {
            node_hash(&step.hash, &hash)
        } else {
            node_hash(&hash, &step.hash)
        };
    }
    &hash == root
}

/// Serde for hashes as 64 hex digits.
pub mod hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes hex.
    pub fn serialize<S: Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    /// Reads hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text.trim_start_matches("0x"), &mut hash)
            .map_err(serde::de::Error::custom)?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u64)
            .map(|i| leaf_hash(7, i, u128::from(i), &[(AssetId(1), u128::from(i) * 3)]))
            .collect()
    }

    #[test]
    fn an_empty_week_has_the_zero_root_and_one_leaf_is_its_own_root() {
        assert_eq!(MerkleTree::build(Vec::new()).root(), [0; 32]);
        let one = leaves(1);
        let tree = MerkleTree::build(one.clone());
        assert_eq!(tree.root(), one[0]);
        assert_eq!(tree.proof(0), Some(Vec::new()));
        assert!(verify(one[0], &[], &tree.root()));
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_no_other_leaf_does(n in 1usize..70, pick in any::<prop::sample::Index>()) {
            let all = leaves(n);
            let tree = MerkleTree::build(all.clone());
            let root = tree.root();
            for (i, leaf) in all.iter().enumerate() {
                let proof = tree.proof(i).unwrap();
                prop_assert!(verify(*leaf, &proof, &root));
            }
            let i = pick.index(n);
            let proof = tree.proof(i).unwrap();
            let forged = leaf_hash(7, i as u64, i as u128, &[(AssetId(1), i as u128 * 3 + 1)]);
            prop_assert!(!verify(forged, &proof, &root));
            if n > 1 {
                let other = (i + 1) % n;
                prop_assert!(!verify(all[other], &proof, &root));
            }
        }

        #[test]
        fn a_blocks_proof_then_the_upper_trees_proof_is_the_whole_trees_proof(
            n in 1usize..300,
            k in 0usize..6,
            pick in any::<prop::sample::Index>(),
        ) {
            let all = leaves(n);
            let tree = MerkleTree::build(all.clone());
            let upper = tree.above(k);
            prop_assert_eq!(upper.root(), tree.root());
            let i = pick.index(n);
            let block = 1usize << k;
            let start = i / block * block;
            let own = MerkleTree::build(all[start..(start + block).min(n)].to_vec());
            let mut proof = own.proof(i - start).unwrap();
            proof.extend(upper.proof(i / block).unwrap_or_default());
            prop_assert_eq!(proof, tree.proof(i).unwrap());
        }
    }
}
