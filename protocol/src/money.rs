//! Money, quantities and order totals.
//!
//! Amounts are integers in the currency's minor unit (fen, cents, yen), quantities are
//! integers in thousandths, discounts and tax rates are basis points. Nothing here is a
//! float, so a total computed on a phone and on the server is the same to the last fen.
//! Totals are always computed from the lines, never typed in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An ISO 4217 currency the product supports, with its number of minor digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

/// Supported currencies and their minor digits. Extend here; nothing else needs to change.
const CURRENCIES: &[(&str, u32)] = &[
    ("CNY", 2),
    ("HKD", 2),
    ("TWD", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("SGD", 2),
    ("INR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("BHD", 3),
];

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");
    pub const USD: Currency = Currency(*b"USD");
    pub const EUR: Currency = Currency(*b"EUR");
    pub const JPY: Currency = Currency(*b"JPY");

    /// Parses a supported ISO 4217 code such as `CNY` (case-insensitive).
    pub fn parse(code: &str) -> Result<Self> {
        let upper = code.trim().to_ascii_uppercase();
        if CURRENCIES.iter().any(|(c, _)| *c == upper) {
            let b = upper.as_bytes();
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(Error::invalid(
                "currency",
                format!(
                    "must be one of {}",
                    CURRENCIES
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    }

    pub fn code(&self) -> &str {
        // Only ever built from the ASCII table above.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Number of digits after the decimal point (2 for CNY, 0 for JPY).
    pub fn minor_digits(&self) -> u32 {
        CURRENCIES
            .iter()
            .find(|(c, _)| c.as_bytes() == self.0)
            .map_or(2, |(_, d)| *d)
    }

    /// Formats an amount in minor units as a plain decimal string (`1234.50`).
    pub fn format_minor(&self, minor: i64) -> String {
        let digits = self.minor_digits();
        if digits == 0 {
            return minor.to_string();
        }
        let scale = 10i64.pow(digits);
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / scale as u64,
            abs % scale as u64,
            width = digits as usize
        )
    }

    /// Parses a decimal amount (`12.5`) into minor units, refusing extra precision.
    pub fn parse_amount(&self, s: &str) -> Result<i64> {
        parse_fixed(s, self.minor_digits(), "amount")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Currency::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

/// A quantity with up to three decimals, stored as thousandths (`1.5 kg` = 1500).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Quantity(i64);

impl Quantity {
    pub const fn from_milli(milli: i64) -> Self {
        Quantity(milli)
    }

    pub const fn whole(units: i64) -> Self {
        Quantity(units * 1000)
    }

    pub const fn milli(self) -> i64 {
        self.0
    }

    /// Parses `3`, `1.5` or `0.125`; more than three decimals is an error, not a rounding.
    pub fn parse(s: &str) -> Result<Self> {
        parse_fixed(s, 3, "quantity").map(Quantity)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (int, frac) = (abs / 1000, abs % 1000);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let s = format!("{frac:03}");
            write!(f, "{sign}{int}.{}", s.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn parse_fixed(s: &str, digits: u32, field: &str) -> Result<i64> {
    let s = s.trim();
    let bad = || {
        Error::invalid(
            field,
            format!("must be a number with at most {digits} decimals"),
        )
    };
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if frac.len() > digits as usize {
        return Err(bad());
    }
    let scale = 10i128.pow(digits);
    let int_v: i128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac_v: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>().map_err(|_| bad())? * 10i128.pow(digits - frac.len() as u32)
    };
    let v = int_v
        .checked_mul(scale)
        .and_then(|v| v.checked_add(frac_v))
        .ok_or_else(bad)?;
    let v = if neg { -v } else { v };
    i64::try_from(v).map_err(|_| bad())
}

/// The priced content of one order line, as copied at order time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinePricing {
    pub unit_price_minor: i64,
    pub quantity: Quantity,
    /// Discount in basis points: 1000 = 10 %.
    pub discount_bp: i64,
    /// Tax rate in basis points: 1300 = 13 %.
    pub tax_bp: i64,
}

/// Computed totals of one line or of a whole order, in minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// After discount, before tax.
    pub net_minor: i64,
    pub tax_minor: i64,
    /// `net + tax`.
    pub gross_minor: i64,
}

impl Totals {
    fn add(self, o: Totals) -> Result<Totals> {
        let add = |a: i64, b: i64| a.checked_add(b).ok_or_else(overflow);
        Ok(Totals {
            net_minor: add(self.net_minor, o.net_minor)?,
            tax_minor: add(self.tax_minor, o.tax_minor)?,
            gross_minor: add(self.gross_minor, o.gross_minor)?,
        })
    }
}

fn overflow() -> Error {
    Error::invalid("order total", "is too large")
}

/// Divides rounding half away from zero (commercial rounding).
fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if 2 * r.abs() >= d.abs() {
        q + n.signum() * d.signum()
    } else {
        q
    }
}

/// Totals of one line: `net = round(price × qty × (1 − discount))`, `tax = round(net × rate)`.
/// Rounding once per line (not per unit) is what invoices and ERPs expect.
pub fn line_totals(line: &LinePricing) -> Result<Totals> {
    let gross_before_discount =
        i128::from(line.unit_price_minor) * i128::from(line.quantity.milli());
    let net = div_round(
        gross_before_discount * i128::from(10_000 - line.discount_bp),
        1000 * 10_000,
    );
    let tax = div_round(net * i128::from(line.tax_bp), 10_000);
    let net = i64::try_from(net).map_err(|_| overflow())?;
    let tax = i64::try_from(tax).map_err(|_| overflow())?;
    Ok(Totals {
        net_minor: net,
        tax_minor: tax,
        gross_minor: net.checked_add(tax).ok_or_else(overflow)?,
    })
}

/// Totals of an order: the sum of its line totals.
pub fn order_totals<'a>(lines: impl IntoIterator<Item = &'a LinePricing>) -> Result<Totals> {
    lines
        .into_iter()
        .try_fold(Totals::default(), |acc, l| acc.add(line_totals(l)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn currencies_parse_and_format() {
        let cny = Currency::parse("cny").unwrap();
        assert_eq!(cny.code(), "CNY");
        assert_eq!(cny.format_minor(123_450), "1234.50");
        assert_eq!(cny.format_minor(-5), "-0.05");
        assert_eq!(Currency::JPY.format_minor(1200), "1200");
        assert_eq!(cny.parse_amount("12.5").unwrap(), 1250);
        assert!(cny.parse_amount("12.555").is_err());
        assert!(Currency::parse("XYZ").is_err());
        assert_eq!(serde_json::to_string(&cny).unwrap(), "\"CNY\"");
    }

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(Quantity::parse("1.5").unwrap().milli(), 1500);
        assert_eq!(Quantity::parse("3").unwrap().milli(), 3000);
        assert_eq!(Quantity::parse(".25").unwrap().milli(), 250);
        assert_eq!(Quantity::parse("-2").unwrap().milli(), -2000);
        assert!(Quantity::parse("1.2345").is_err());
        assert!(Quantity::parse("abc").is_err());
        assert!(Quantity::parse("").is_err());
        assert_eq!(Quantity::from_milli(1500).to_string(), "1.5");
        assert_eq!(Quantity::from_milli(2000).to_string(), "2");
    }

    #[test]
    fn line_totals_round_once_per_line() {
        // 3 × 3.33 with 10 % discount and 13 % VAT.
        let t = line_totals(&LinePricing {
            unit_price_minor: 333,
            quantity: Quantity::whole(3),
            discount_bp: 1000,
            tax_bp: 1300,
        })
        .unwrap();
        assert_eq!(t.net_minor, 899); // 999 × 0.9 = 899.1
        assert_eq!(t.tax_minor, 117); // 899 × 0.13 = 116.87
        assert_eq!(t.gross_minor, 1016);
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let l = LinePricing {
            unit_price_minor: i64::MAX,
            quantity: Quantity::whole(1_000_000),
            discount_bp: 0,
            tax_bp: 0,
        };
        assert!(line_totals(&l).is_err());
    }

    proptest! {
        #[test]
        fn order_total_is_sum_of_lines(lines in proptest::collection::vec(
            (0i64..1_000_000, 1i64..100_000, 0i64..=10_000, 0i64..=3_000), 0..20)) {
            let lines: Vec<LinePricing> = lines.into_iter().map(|(p, q, d, t)| LinePricing {
                unit_price_minor: p, quantity: Quantity::from_milli(q), discount_bp: d, tax_bp: t }).collect();
            let total = order_totals(&lines).unwrap();
            let net: i64 = lines.iter().map(|l| line_totals(l).unwrap().net_minor).sum();
            prop_assert_eq!(total.net_minor, net);
            prop_assert_eq!(total.gross_minor, total.net_minor + total.tax_minor);
            prop_assert!(total.net_minor >= 0);
        }
    }
}
