//! The few bucket calls the SDK's stateful logic (transactions, paging
//! iterators) makes, behind a private trait so that logic can be tested
//! natively against a fake host.

use crate::bindings::state::Bucket;
use crate::bindings::types as w;

type R<T> = Result<T, w::Error>;

/// The bucket calls used by [`Transaction`](crate::Transaction),
/// [`Keys`](crate::Keys) and [`MapScan`](crate::MapScan). Implemented by the
/// WIT `bucket` and by the fake host of the unit tests.
pub(crate) trait Host {
    fn get_entry(&self, key: &str) -> R<Option<w::Entry>>;
    fn info(&self, key: &str) -> R<Option<w::KeyInfo>>;
    fn map_get(&self, key: &str, field: &str) -> R<Option<Vec<u8>>>;
    fn map_get_all(&self, key: &str) -> R<Vec<w::MapEntry>>;
    fn map_keys(&self, key: &str) -> R<Vec<String>>;
    fn map_length(&self, key: &str) -> R<u64>;
    fn list_range(&self, key: &str, start: i64, stop: i64) -> R<Vec<Vec<u8>>>;
    fn list_length(&self, key: &str) -> R<u64>;
    fn list_index(&self, key: &str, index: i64) -> R<Option<Vec<u8>>>;
    fn keys(&self, listing: &w::KeyListing) -> R<w::KeyPage>;
    fn map_scan(
        &self,
        key: &str,
        cursor: &str,
        pattern: Option<&str>,
        count: u32,
    ) -> R<w::ScanPage>;
    fn commit(&self, ops: &[w::Op]) -> Result<Vec<w::OpResult>, w::CommitError>;
}

impl Host for Bucket {
    fn get_entry(&self, key: &str) -> R<Option<w::Entry>> {
        Bucket::get_entry(self, key)
    }
    fn info(&self, key: &str) -> R<Option<w::KeyInfo>> {
        Bucket::info(self, key)
    }
    fn map_get(&self, key: &str, field: &str) -> R<Option<Vec<u8>>> {
        Bucket::map_get(self, key, field)
    }
    fn map_get_all(&self, key: &str) -> R<Vec<w::MapEntry>> {
        Bucket::map_get_all(self, key)
    }
    fn map_keys(&self, key: &str) -> R<Vec<String>> {
        Bucket::map_keys(self, key)
    }
    fn map_length(&self, key: &str) -> R<u64> {
        Bucket::map_length(self, key)
    }
    fn list_range(&self, key: &str, start: i64, stop: i64) -> R<Vec<Vec<u8>>> {
        Bucket::list_range(self, key, start, stop)
    }
    fn list_length(&self, key: &str) -> R<u64> {
        Bucket::list_length(self, key)
    }
    fn list_index(&self, key: &str, index: i64) -> R<Option<Vec<u8>>> {
        Bucket::list_index(self, key, index)
    }
    fn keys(&self, listing: &w::KeyListing) -> R<w::KeyPage> {
        Bucket::keys(self, listing)
    }
    fn map_scan(
        &self,
        key: &str,
        cursor: &str,
        pattern: Option<&str>,
        count: u32,
    ) -> R<w::ScanPage> {
        Bucket::map_scan(self, key, cursor, pattern, count)
    }
    fn commit(&self, ops: &[w::Op]) -> Result<Vec<w::OpResult>, w::CommitError> {
        Bucket::commit(self, ops)
    }
}
