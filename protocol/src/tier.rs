//! Customer value tiers by revenue — the 80/20 rule from the CRM seed documents.
//!
//! Accounts are ranked by revenue: the top 1 % are *key*, the next 4 % *major*, the next
//! 15 % *regular* and the remaining 80 % *small*. Accounts without revenue are always small.
//! The server computes tiers (a later issue schedules it); phones only display them.

use crate::ids::AccountId;
use crate::model::Tier;

/// Assigns a tier to every account from its revenue (in one currency's minor units).
///
/// Ties are broken by account ID so the result is deterministic. Band sizes round up, so
/// even a small book of accounts has a key account.
pub fn assign_tiers(revenue: &[(AccountId, i64)]) -> Vec<(AccountId, Tier)> {
    let mut ranked: Vec<(AccountId, i64)> = revenue.to_vec();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let n = ranked.len();
    let band = |pct: usize| (n * pct).div_ceil(100);
    let (key, major, regular) = (band(1), band(5), band(20));
    ranked
        .into_iter()
        .enumerate()
        .map(|(rank, (id, rev))| {
            let tier = if rev <= 0 {
                Tier::Small
            } else if rank < key {
                Tier::Key
            } else if rank < major {
                Tier::Major
            } else if rank < regular {
                Tier::Regular
            } else {
                Tier::Small
            };
            (id, tier)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_1_4_15_80_percent() {
        let accounts: Vec<(AccountId, i64)> =
            (0..200).map(|i| (AccountId::new(), 1000 + i)).collect();
        let tiers = assign_tiers(&accounts);
        let count = |t: Tier| tiers.iter().filter(|(_, x)| *x == t).count();
        assert_eq!(
            (
                count(Tier::Key),
                count(Tier::Major),
                count(Tier::Regular),
                count(Tier::Small)
            ),
            (2, 8, 30, 160)
        );
        // The biggest account is key.
        let top = accounts.iter().max_by_key(|a| a.1).unwrap().0;
        assert_eq!(
            tiers.iter().find(|(id, _)| *id == top).unwrap().1,
            Tier::Key
        );
    }

    #[test]
    fn no_revenue_means_small() {
        let tiers = assign_tiers(&[(AccountId::new(), 0)]);
        assert_eq!(tiers[0].1, Tier::Small);
    }
}
