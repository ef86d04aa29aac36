//! Lists kept one state key per item: a head (length, sum of values, ends) and one link per
//! item (its neighbours and value). Adding and removing an item costs a few reads and writes
//! whatever the list's length, and no record grows with it; the head's sum makes the
//! conservation check O(1).
//!
//! * `coins/{generation}`: each federation's spendable coins, in the order they became
//!   spendable.
//! * `pending`: claims in their contest period, in claim order.
//! * `queue`: peg-out requests waiting for a batch, oldest first.
//! * `maturing/{height}`: claims whose contest period ends at that main-chain height (checked
//!   again when read: a claim voided by a reorganisation may still be listed).

use consort_execution::{BlockError, Runtime, Store};
use consort_types::{
    peg::{ListHead, ListLink, Outpoint},
    state_key::peg as key,
};

/// An item of a list: encodes to the bytes that name its link.
pub(crate) trait Item:
    commonware_codec::Encode
    + commonware_codec::Read<Cfg = ()>
    + commonware_codec::EncodeSize
    + Copy
    + Eq
    + std::fmt::Debug
{
}
impl Item for Outpoint {}
impl Item for u64 {}

/// A list named `name`.
#[derive(Clone, Debug)]
pub(crate) struct List {
    name: Vec<u8>,
}

/// The spendable coins of federation `generation`.
pub(crate) fn coins(generation: u32) -> List {
    let mut name = b"coins/".to_vec();
    name.extend_from_slice(&generation.to_be_bytes());
    List { name }
}

/// Claims in their contest period.
pub(crate) fn pending() -> List {
    List {
        name: b"pending".to_vec(),
    }
}

/// Peg-out requests waiting for a batch.
pub(crate) fn queue() -> List {
    List {
        name: b"queue".to_vec(),
    }
}

/// Claims whose contest period ends at main-chain height `height`.
pub(crate) fn maturing(height: u32) -> List {
    let mut name = b"maturing/".to_vec();
    name.extend_from_slice(&height.to_be_bytes());
    List { name }
}

fn corrupt(key: consort_types::Digest) -> BlockError {
    BlockError::CorruptState(key)
}

impl List {
    fn link_key<T: Item>(&self, item: &T) -> consort_types::Digest {
        key::link(&self.name, &item.encode())
    }

    /// The head (empty if the list never had an item).
    pub(crate) async fn head<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<ListHead<T>, BlockError> {
        Ok(store.get(&key::list(&self.name)).await?.unwrap_or_default())
    }

    async fn put_head<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        head: &ListHead<T>,
    ) -> Result<(), BlockError> {
        if head.len == 0 {
            store.delete(&key::list(&self.name)).await?;
        } else {
            store.put(&key::list(&self.name), head).await?;
        }
        Ok(())
    }

    async fn link<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: &T,
    ) -> Result<Option<ListLink<T>>, BlockError> {
        Ok(store.get(&self.link_key(item)).await?)
    }

    /// Whether `item` is in the list.
    pub(crate) async fn contains<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: &T,
    ) -> Result<bool, BlockError> {
        Ok(self.link(store, item).await?.is_some())
    }

    /// Append `item` worth `value`; `false` (and nothing changes) if it is already listed.
    pub(crate) async fn push<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: T,
        value: u64,
    ) -> Result<bool, BlockError> {
        self.insert(store, item, value, false).await
    }

    /// Put `item` worth `value` first; `false` (and nothing changes) if it is already listed.
    pub(crate) async fn push_front<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: T,
        value: u64,
    ) -> Result<bool, BlockError> {
        self.insert(store, item, value, true).await
    }

    /// Insert `item` worth `value` at the front or the back.
    async fn insert<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: T,
        value: u64,
        front: bool,
    ) -> Result<bool, BlockError> {
        if self.contains(store, &item).await? {
            return Ok(false);
        }
        let mut head: ListHead<T> = self.head(store).await?;
        let sum = head
            .sum
            .checked_add(value)
            .ok_or_else(|| BlockError::Invariant("a peg list's sum overflows".into()))?;
        // The end it goes to, and its neighbour there (if any).
        let neighbour = if front { head.first } else { head.last };
        if let Some(neighbour) = neighbour {
            let key = self.link_key(&neighbour);
            let mut link: ListLink<T> = store.get(&key).await?.ok_or(corrupt(key))?;
            if front {
                link.prev = Some(item);
            } else {
                link.next = Some(item);
            }
            store.put(&key, &link).await?;
        } else if front {
            head.last = Some(item);
        } else {
            head.first = Some(item);
        }
        let (prev, next) = if front {
            (None, neighbour)
        } else {
            (neighbour, None)
        };
        store
            .put(&self.link_key(&item), &ListLink { prev, next, value })
            .await?;
        if front {
            head.first = Some(item);
        } else {
            head.last = Some(item);
        }
        head.len += 1;
        head.sum = sum;
        self.put_head(store, &head).await?;
        Ok(true)
    }

    /// Take `item` out; its value, or `None` (and nothing changes) if it is not listed.
    pub(crate) async fn remove<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: &T,
    ) -> Result<Option<u64>, BlockError> {
        let own = self.link_key(item);
        let Some(link) = store.get::<ListLink<T>>(&own).await? else {
            return Ok(None);
        };
        let mut head: ListHead<T> = self.head(store).await?;
        match link.prev {
            Some(prev) => {
                let key = self.link_key(&prev);
                let mut before: ListLink<T> = store.get(&key).await?.ok_or(corrupt(key))?;
                before.next = link.next;
                store.put(&key, &before).await?;
            }
            None => head.first = link.next,
        }
        match link.next {
            Some(next) => {
                let key = self.link_key(&next);
                let mut after: ListLink<T> = store.get(&key).await?.ok_or(corrupt(key))?;
                after.prev = link.prev;
                store.put(&key, &after).await?;
            }
            None => head.last = link.prev,
        }
        store.delete(&own).await?;
        head.len = head.len.checked_sub(1).ok_or(corrupt(own))?;
        head.sum = head.sum.checked_sub(link.value).ok_or(corrupt(own))?;
        self.put_head(store, &head).await?;
        Ok(Some(link.value))
    }

    /// The first `n` items (oldest first) and their values.
    pub(crate) async fn first<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        n: usize,
    ) -> Result<Vec<(T, u64)>, BlockError> {
        let head: ListHead<T> = self.head(store).await?;
        self.walk(store, head.first, n).await
    }

    /// Up to `n` items after `item` (or from the start if `None`); `None` if `item` is no
    /// longer listed (a pager's cursor that left the list: start again).
    pub(crate) async fn after<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        item: Option<T>,
        n: usize,
    ) -> Result<Option<Vec<(T, u64)>>, BlockError> {
        let start = match item {
            None => self.head::<T, E>(store).await?.first,
            Some(item) => match self.link(store, &item).await? {
                Some(link) => link.next,
                None => return Ok(None),
            },
        };
        Ok(Some(self.walk(store, start, n).await?))
    }

    async fn walk<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        mut cursor: Option<T>,
        n: usize,
    ) -> Result<Vec<(T, u64)>, BlockError> {
        let mut items = Vec::new();
        while let Some(item) = cursor {
            if items.len() >= n {
                break;
            }
            let key = self.link_key(&item);
            let link: ListLink<T> = store.get(&key).await?.ok_or(corrupt(key))?;
            items.push((item, link.value));
            cursor = link.next;
        }
        Ok(items)
    }

    /// Remove every item (a maturity bucket once read).
    pub(crate) async fn clear<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<(), BlockError> {
        let head: ListHead<T> = self.head(store).await?;
        let mut cursor = head.first;
        while let Some(item) = cursor {
            let key = self.link_key(&item);
            let link: ListLink<T> = store.get(&key).await?.ok_or(corrupt(key))?;
            store.delete(&key).await?;
            cursor = link.next;
        }
        store.delete(&key::list(&self.name)).await?;
        Ok(())
    }

    /// Walk the whole list and check every link against its neighbours and the head's length
    /// and sum; the items, oldest first. For tests and audits: O(length).
    ///
    /// # Errors
    /// [`BlockError::Invariant`] naming the first inconsistency.
    pub(crate) async fn verify<T: Item, E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<Vec<(T, u64)>, BlockError> {
        let name = String::from_utf8_lossy(&self.name).into_owned();
        let broken = |what: String| BlockError::Invariant(format!("peg list {name}: {what}"));
        let head: ListHead<T> = self.head(store).await?;
        let mut items = Vec::new();
        let mut sum = 0u64;
        let mut prev = None;
        let mut cursor = head.first;
        while let Some(item) = cursor {
            if items.len() as u64 > head.len {
                return Err(broken("longer than its head says (a cycle?)".into()));
            }
            let link: ListLink<T> = self
                .link(store, &item)
                .await?
                .ok_or_else(|| broken(format!("{item:?} has no link")))?;
            if link.prev != prev {
                return Err(broken(format!("{item:?} points back to the wrong item")));
            }
            sum = sum
                .checked_add(link.value)
                .ok_or_else(|| broken("sum overflows".into()))?;
            items.push((item, link.value));
            prev = Some(item);
            cursor = link.next;
        }
        if prev != head.last || items.len() as u64 != head.len || sum != head.sum {
            return Err(broken(format!(
                "head says {} items worth {} ending at {:?}; the links give {} worth {sum} \
                 ending at {prev:?}",
                head.len,
                head.sum,
                head.last,
                items.len()
            )));
        }
        Ok(items)
    }
}
