//! Iterators that follow the host's cursors page by page: [`Keys`] and
//! [`MapScan`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::bindings::types as w;
use crate::error::Result;
use crate::host::Host;
use crate::types::from_json;

/// The keys of a listing, fetched one page (one host call) at a time as the
/// iteration goes; made by [`State::keys`](crate::State::keys).
///
/// Yields `Err` once and then ends if a host call fails. Paging is stable:
/// no key twice, and every key that existed for the whole iteration appears.
pub struct Keys<'a> {
    host: &'a dyn Host,
    listing: w::KeyListing,
    page: std::vec::IntoIter<String>,
    done: bool,
}

impl<'a> Keys<'a> {
    pub(crate) fn new(host: &'a dyn Host, listing: w::KeyListing) -> Self {
        Keys {
            host,
            listing,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Iterator for Keys<'_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            if self.done {
                return None;
            }
            match self.host.keys(&self.listing) {
                Ok(page) => {
                    self.page = page.keys.into_iter();
                    match page.cursor {
                        Some(cursor) => self.listing.cursor = Some(cursor),
                        None => self.done = true,
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

impl std::iter::FusedIterator for Keys<'_> {}

impl fmt::Debug for Keys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("listing", &self.listing)
            .field("buffered", &self.page.len())
            .field("done", &self.done)
            .finish()
    }
}

/// The entries of a map, fetched one `map-scan` step at a time as the
/// iteration goes (Redis HSCAN); made by [`State::map_scan`](crate::State::map_scan).
///
/// Yields `(field, value)` in ascending field order. A value that does not
/// deserialize as `T` yields `Err(Error::Json)` and the scan goes on; a
/// failed host call yields `Err` once and ends it.
pub struct MapScan<'a, T> {
    host: &'a dyn Host,
    map: String,
    pattern: Option<String>,
    count: u32,
    cursor: String,
    page: std::vec::IntoIter<w::MapEntry>,
    done: bool,
    _values: PhantomData<fn() -> T>,
}

impl<'a, T> MapScan<'a, T> {
    pub(crate) fn new(host: &'a dyn Host, map: &str, pattern: Option<&str>, count: u32) -> Self {
        MapScan {
            host,
            map: map.to_owned(),
            pattern: pattern.map(str::to_owned),
            count,
            cursor: "0".to_owned(),
            page: Vec::new().into_iter(),
            done: false,
            _values: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Iterator for MapScan<'_, T> {
    type Item = Result<(String, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.page.next() {
                return Some(from_json(&entry.value).map(|v| (entry.field, v)));
            }
            if self.done {
                return None;
            }
            match self
                .host
                .map_scan(&self.map, &self.cursor, self.pattern.as_deref(), self.count)
            {
                Ok(page) => {
                    self.page = page.entries.into_iter();
                    self.done = page.cursor == "0";
                    self.cursor = page.cursor;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            }
        }
    }
}

impl<T: DeserializeOwned> std::iter::FusedIterator for MapScan<'_, T> {}

impl<T> fmt::Debug for MapScan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapScan")
            .field("map", &self.map)
            .field("pattern", &self.pattern)
            .field("count", &self.count)
            .field("cursor", &self.cursor)
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::KeyListing;
    use crate::test_host::FakeHost;

    #[test]
    fn keys_follow_cursors_across_short_and_empty_pages() {
        let host = FakeHost::default();
        for k in ["a1", "b1", "b2", "c1", "c2", "c3", "d1"] {
            host.put(k, b"0");
        }
        // Pages examine 2 keys each and return those under the prefix, so
        // some pages are empty before the end.
        let listing = KeyListing::prefix("c").page_size(2).to_wit();
        let keys: Vec<String> = Keys::new(&host, listing).collect::<Result<_>>().unwrap();
        assert_eq!(keys, ["c1", "c2", "c3"]);
        assert_eq!(host.keys_calls(), 4);

        let all: Vec<String> = Keys::new(&host, KeyListing::all().to_wit())
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all.len(), 7);
    }

    #[test]
    fn keys_end_after_an_error() {
        let host = FakeHost::default();
        let mut it = Keys::new(&host, KeyListing::all().page_size(0).to_wit());
        assert!(matches!(it.next(), Some(Err(Error::InvalidArgument(_)))));
        assert!(it.next().is_none());
    }

    #[test]
    fn map_scan_follows_cursors_until_zero() {
        let host = FakeHost::default();
        let fields: Vec<(String, i64)> = (0..5).map(|i| (format!("f{i}"), i)).collect();
        host.put_map("m", fields.iter().map(|(f, v)| (f.as_str(), v.to_string())));
        let got: Vec<(String, i64)> = MapScan::new(&host, "m", None, 2)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(got, fields);
        let none: Vec<_> = MapScan::<i64>::new(&host, "missing", None, 2).collect();
        assert!(none.is_empty());
    }

    #[test]
    fn map_scan_reports_bad_values_and_goes_on() {
        let host = FakeHost::default();
        host.put_map(
            "m",
            [
                ("a", "1".to_owned()),
                ("b", "x".to_owned()),
                ("c", "3".to_owned()),
            ],
        );
        let got: Vec<_> = MapScan::<i64>::new(&host, "m", None, 10).collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(got[1], Err(Error::Json(_))));
        assert_eq!(got[2].as_ref().unwrap(), &("c".to_owned(), 3));
    }
}
