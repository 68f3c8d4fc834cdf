//! [`Waves`]: how an AI operator under a `LIMIT` asks, in growing waves instead of all
//! at once, so that the query stops asking as soon as the limit is filled.
//!
//! The first wave is one unit (a pack of rows, or one block of a semantic join); every
//! later wave is as large as all waves before it together, so each wave doubles what
//! has been asked. A wave is asked only when the operator above asks for more rows:
//! once the limit is filled, DataFusion drops the stream and nothing more is sent. What
//! is asked is then less than twice what was needed, plus one unit.
//!
//! ```sql
//! -- Over 2,000 rows, a few dozen are asked when a tenth of them match.
//! SELECT id FROM 'reviews.csv' WHERE ai_filter(text, 'asks for a refund') LIMIT 5;
//! ```

/// The sizes of the waves of one operator partition.
#[derive(Debug, Clone)]
pub(crate) struct Waves {
    /// The first wave's size.
    first: usize,
    /// What the waves so far asked.
    asked: usize,
}

impl Waves {
    /// Waves starting at `first` units (at least one).
    pub(crate) fn new(first: usize) -> Self {
        Self {
            first: first.max(1),
            asked: 0,
        }
    }

    /// The size of the next wave, when `available` units are there to be asked; `0`
    /// when none are.
    pub(crate) fn next(&mut self, available: usize) -> usize {
        let size = self.first.max(self.asked).min(available);
        self.asked += size;
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wave_doubles_what_was_asked() {
        let mut waves = Waves::new(16);
        let sizes: Vec<usize> = (0..6).map(|_| waves.next(usize::MAX)).collect();
        assert_eq!(sizes, [16, 16, 32, 64, 128, 256]);
    }

    #[test]
    fn asks_less_than_twice_what_was_needed_plus_one_unit() {
        for needed in 1..2_000 {
            let mut waves = Waves::new(16);
            let mut asked = 0;
            while asked < needed {
                asked += waves.next(2_000 - asked);
            }
            assert!(asked <= 2 * needed + 16, "needed {needed}, asked {asked}");
        }
    }

    #[test]
    fn a_wave_never_exceeds_what_is_available() {
        let mut waves = Waves::new(4);
        assert_eq!(waves.next(3), 3);
        assert_eq!(waves.next(0), 0);
        assert_eq!(waves.next(10), 4);
        assert_eq!(Waves::new(0).next(5), 1);
    }
}
