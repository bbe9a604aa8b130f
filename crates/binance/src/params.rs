//! Request parameters as Binance takes them: from the query string and a form body together,
//! each name once, every parameter sent must be one the endpoint reads.

use crate::error::BinanceError;
use std::sync::atomic::{AtomicBool, Ordering};

/// Names every signed request may carry besides the endpoint's own.
const SIGNING: [&str; 3] = ["timestamp", "recvWindow", "signature"];

/// The most parameters one request may carry (query and body together). No endpoint reads
/// more than about twenty; the bound is checked by counting separators before anything is
/// decoded, so the cost of refusing a request with thousands of names is one pass over its
/// text, and the cost of a request that passes is bounded by this many pairs.
pub const MAX_PARAMS: usize = 64;

/// The parameters of one request: every decoded name and value in one text, so parsing a
/// request allocates twice however many parameters it has.
#[derive(Debug, Default)]
pub struct Params {
    text: String,
    /// Each pair's name is `text[start..mid]` and its value `text[mid..end]`.
    spans: Vec<(usize, usize, usize)>,
    /// Whether each pair was read.
    read: Vec<AtomicBool>,
}

impl Params {
    /// Parses the query string and the form body.
    ///
    /// # Errors
    /// -1101 when there are more than [`MAX_PARAMS`] parameters or a name appears twice.
    pub fn parse(query: &str, body: &str) -> Result<Params, BinanceError> {
        let sent: usize = [query, body]
            .iter()
            .filter(|part| !part.is_empty())
            .map(|part| part.bytes().filter(|&b| b == b'&').count() + 1)
            .sum();
        if sent > MAX_PARAMS {
            return Err(BinanceError::new(
                -1101,
                format!(
                    "Too many parameters; expected at most '{MAX_PARAMS}' and received '{sent}'."
                ),
            ));
        }
        let mut params = Params {
            text: String::with_capacity(query.len() + body.len()),
            spans: Vec::with_capacity(sent),
            read: Vec::new(),
        };
        for part in [query, body] {
            for (name, value) in url::form_urlencoded::parse(part.as_bytes()) {
                let start = params.text.len();
                params.text.push_str(&name);
                let mid = params.text.len();
                params.text.push_str(&value);
                params.spans.push((start, mid, params.text.len()));
            }
        }
        // Duplicates by sorting the names: n log n, however the names were chosen.
        let mut names: Vec<&str> = params.names().collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(BinanceError::new(
                -1101,
                format!("Duplicate values for parameter '{}'.", pair[0]),
            ));
        }
        params.read = params
            .spans
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        Ok(params)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.spans
            .iter()
            .map(|&(start, mid, _)| &self.text[start..mid])
    }

    fn value(&self, at: usize) -> &str {
        let (_, mid, end) = self.spans[at];
        &self.text[mid..end]
    }

    /// A parameter's value; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        let at = self.names().position(|n| n == name)?;
        if let Some(read) = self.read.get(at) {
            read.store(true, Ordering::Relaxed);
        }
        Some(self.value(at)).filter(|v| !v.is_empty())
    }

    /// A mandatory parameter.
    ///
    /// # Errors
    /// -1102 when missing or empty.
    pub fn require(&self, name: &str) -> Result<&str, BinanceError> {
        self.get(name).ok_or_else(|| BinanceError::mandatory(name))
    }

    /// An optional integer parameter.
    ///
    /// # Errors
    /// -1100 when not an integer.
    pub fn integer(&self, name: &str) -> Result<Option<u64>, BinanceError> {
        self.get(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| BinanceError::illegal(name, "^[0-9]{1,20}$"))
            })
            .transpose()
    }

    /// A `limit` parameter: `default` when absent, at most `max`.
    ///
    /// # Errors
    /// -1100 when not an integer, -1130 when out of range.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, BinanceError> {
        match self.integer("limit")? {
            None => Ok(default),
            Some(n) if n >= 1 && n <= max as u64 => Ok(usize::try_from(n).unwrap_or(max)),
            Some(_) => Err(BinanceError::new(
                -1130,
                format!("Invalid data sent for a parameter: limit must be 1 to {max}."),
            )),
        }
    }

    /// Whether a parameter was sent (without marking it read).
    pub fn has(&self, name: &str) -> bool {
        self.names()
            .enumerate()
            .any(|(at, n)| n == name && !self.value(at).is_empty())
    }

    /// Checks that every parameter sent was read.
    ///
    /// # Errors
    /// -1104 naming the counts, as Binance does.
    pub fn all_read(&self) -> Result<(), BinanceError> {
        let unread = self
            .names()
            .zip(&self.read)
            .filter(|(n, read)| !read.load(Ordering::Relaxed) && !SIGNING.contains(n))
            .count();
        if unread == 0 {
            return Ok(());
        }
        let sent = self.spans.len();
        Err(BinanceError::new(
            -1104,
            format!(
                "Not all sent parameters were read; read '{}' parameter(s) but was sent '{}'.",
                sent - unread,
                sent
            ),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn query_and_body_together_each_name_once() {
        let params = Params::parse("symbol=ETHTUSD&side=BUY", "quantity=1.5&price=10%2E5").unwrap();
        assert_eq!(params.get("symbol"), Some("ETHTUSD"));
        assert_eq!(params.get("price"), Some("10.5"));
        assert_eq!(Params::parse("a=1", "a=2").unwrap_err().code, -1101);
    }

    #[test]
    fn more_than_the_bound_of_parameters_is_refused_before_decoding() {
        let at_bound: Vec<String> = (0..MAX_PARAMS).map(|n| format!("p{n}=1")).collect();
        assert!(Params::parse(&at_bound.join("&"), "").is_ok());
        let error = Params::parse(&at_bound.join("&"), "one=more").unwrap_err();
        assert_eq!(error.code, -1101);
        assert!(error.msg.contains("received '65'"), "{}", error.msg);
        let flood: Vec<String> = (0..15_000).map(|n| format!("a{n}")).collect();
        let error = Params::parse(&flood.join("&"), "").unwrap_err();
        assert!(error.msg.contains("received '15000'"), "{}", error.msg);
    }

    #[test]
    fn unread_parameters_are_refused() {
        let params = Params::parse("symbol=X&foo=1&timestamp=1&signature=ab", "").unwrap();
        params.get("symbol");
        assert_eq!(params.all_read().unwrap_err().code, -1104);
        params.get("foo");
        params.all_read().unwrap();
    }
}
