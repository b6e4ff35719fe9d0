//! Stratified train/validation/test splits and stratified k-fold cross-validation.
//!
//! Why stratified: only 30% of the German Credit applicants are `bad`, and with 1000 rows a
//! plain random split can easily give a validation set with noticeably fewer `bad` cases than
//! the training set, which shifts the cost-minimising threshold and the metrics. Cutting each
//! class separately keeps the class ratio in every part.
//!
//! Why indices: the splits say *which* rows go where and leave the rows themselves to the
//! caller, so the same split can index raw applicants, encoded features and labels alike, and
//! can be written next to a model to reproduce its evaluation.
//!
//! Everything is deterministic for a seed (`ChaCha8Rng`, whose stream is the same on every
//! platform), so an experiment can be rerun on exactly the same rows.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Indices into the data set, each sorted ascending; together they hold every index once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    /// Used for early stopping and to choose the decision threshold.
    pub validation: Vec<usize>,
    /// Touched once, for the final report.
    pub test: Vec<usize>,
}

/// Why cross-validation folds could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// Cross-validation needs at least one fold to train on and one to test on.
    #[error("k-fold cross-validation needs k >= 2, got {k}")]
    TooFewFolds { k: usize },
    /// Every fold must contain both classes, so there can be no more folds than rows of the
    /// smaller class.
    #[error("{k} folds requested but the smaller class has only {smaller_class} rows")]
    TooManyFolds { k: usize, smaller_class: usize },
}

/// Splits row indices into train, validation and test sets that each keep the class ratio.
///
/// Per class (`good` first, then `bad`), the indices are shuffled with one `ChaCha8Rng`
/// seeded from `seed`; the first `round(n_class · test_fraction)` go to test, the next
/// `round(n_class · validation_fraction)` to validation and the rest to train. Rounding per
/// class is what keeps the ratio.
///
/// The split never fails, so that every caller gets a usable partition: a negative or
/// non-finite fraction counts as 0, and when the two parts would not fit in a class (both
/// roundings going up, or fractions summing to more than 1) test is served first and
/// validation gets what is left. Validate fractions where they are configured if such
/// requests should be refused instead.
pub fn stratified_split(
    labels: &[bool],
    validation_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = Split {
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    for mut class in class_indices(labels) {
        class.shuffle(&mut rng);
        let n = class.len();
        let n_test = share(n, test_fraction);
        let n_validation = share(n, validation_fraction).min(n - n_test);
        split.test.extend_from_slice(&class[..n_test]);
        split
            .validation
            .extend_from_slice(&class[n_test..n_test + n_validation]);
        split
            .train
            .extend_from_slice(&class[n_test + n_validation..]);
    }
    split.train.sort_unstable();
    split.validation.sort_unstable();
    split.test.sort_unstable();
    split
}

/// Deals row indices into `k` disjoint test folds that together cover every row and each
/// keep the class ratio; fold `i`'s training set is every other fold.
///
/// Per class (`good` first, then `bad`), the shuffled indices are dealt round-robin, so the
/// folds' counts of each class differ by at most one. The dealing of `bad` continues where
/// `good` stopped, so that the fold sizes overall also differ by at most one. Each fold is
/// sorted.
pub(crate) fn stratified_k_fold(
    labels: &[bool],
    k: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, SplitError> {
    if k < 2 {
        return Err(SplitError::TooFewFolds { k });
    }
    let classes = class_indices(labels);
    let smaller_class = classes.iter().map(Vec::len).min().unwrap_or(0);
    if k > smaller_class {
        return Err(SplitError::TooManyFolds { k, smaller_class });
    }

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k];
    let mut next_fold = 0;
    for mut class in classes {
        class.shuffle(&mut rng);
        for index in class {
            folds[next_fold].push(index);
            next_fold = (next_fold + 1) % k;
        }
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    Ok(folds)
}

/// Row indices of the `good` rows, then of the `bad` rows, each ascending.
fn class_indices(labels: &[bool]) -> [Vec<usize>; 2] {
    let (bad, good): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&i| labels[i]);
    [good, bad]
}

/// `round(n · fraction)` within `0..=n`; negative and non-finite fractions count as 0.
fn share(n: usize, fraction: f64) -> usize {
    if !fraction.is_finite() || fraction <= 0.0 {
        return 0;
    }
    // The float-to-integer `as` saturates, so a huge fraction cannot wrap.
    ((n as f64 * fraction).round() as usize).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 700 good and 300 bad, interleaved, like the German Credit data set.
    fn german_like_labels() -> Vec<bool> {
        (0..1000).map(|i| i % 10 < 3).collect()
    }

    fn count_bad(labels: &[bool], indices: &[usize]) -> usize {
        indices.iter().filter(|&&i| labels[i]).count()
    }

    fn is_sorted(v: &[usize]) -> bool {
        v.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn split_covers_every_index_exactly_once_and_sorts_each_part() {
        let labels = german_like_labels();
        let split = stratified_split(&labels, 0.15, 0.15, 7);
        let mut all: Vec<usize> = split
            .train
            .iter()
            .chain(&split.validation)
            .chain(&split.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(is_sorted(&split.train));
        assert!(is_sorted(&split.validation));
        assert!(is_sorted(&split.test));
    }

    #[test]
    fn split_keeps_the_class_ratio_in_every_part() {
        let labels = german_like_labels();
        let split = stratified_split(&labels, 0.15, 0.15, 7);
        // Good: 700 → 105 test, 105 validation, 490 train; bad: 300 → 45, 45, 210.
        assert_eq!(
            (split.test.len(), count_bad(&labels, &split.test)),
            (150, 45)
        );
        assert_eq!(
            (
                split.validation.len(),
                count_bad(&labels, &split.validation)
            ),
            (150, 45)
        );
        assert_eq!(
            (split.train.len(), count_bad(&labels, &split.train)),
            (700, 210)
        );
    }

    #[test]
    fn split_rounds_per_class_and_never_overfills() {
        // 3 good, 3 bad with 0.5 / 0.5: round(1.5) = 2 test per class, validation gets the
        // remaining 1, train nothing.
        let labels = [false, false, false, true, true, true];
        let split = stratified_split(&labels, 0.5, 0.5, 1);
        assert_eq!(split.test.len(), 4);
        assert_eq!(count_bad(&labels, &split.test), 2);
        assert_eq!(split.validation.len(), 2);
        assert_eq!(count_bad(&labels, &split.validation), 1);
        assert!(split.train.is_empty());
    }

    #[test]
    fn split_is_deterministic_for_a_seed_and_differs_between_seeds() {
        let labels = german_like_labels();
        let a = stratified_split(&labels, 0.2, 0.1, 42);
        let b = stratified_split(&labels, 0.2, 0.1, 42);
        let c = stratified_split(&labels, 0.2, 0.1, 43);
        assert_eq!(a, b);
        assert_ne!(a.test, c.test);
    }

    #[test]
    fn split_treats_invalid_fractions_as_zero_and_serves_test_first() {
        // 10 good, 10 bad.
        let labels: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
        for (validation, test) in [(-0.1, f64::NAN), (f64::INFINITY, -2.0), (0.0, 0.0)] {
            let split = stratified_split(&labels, validation, test, 0);
            assert_eq!(split.train.len(), 20, "fractions {validation}, {test}");
            assert!(split.validation.is_empty() && split.test.is_empty());
        }
        // Over-full: test takes round(10 · 0.7) = 7 per class, validation the remaining 3.
        let split = stratified_split(&labels, 0.6, 0.7, 0);
        assert_eq!(split.test.len(), 14);
        assert_eq!(split.validation.len(), 6);
        assert!(split.train.is_empty());
        // A fraction above 1 puts the whole class in test.
        let split = stratified_split(&labels, 0.2, 1.5, 0);
        assert_eq!(split.test.len(), 20);
    }

    #[test]
    fn split_of_no_labels_is_empty() {
        let split = stratified_split(&[], 0.2, 0.2, 0);
        assert!(split.train.is_empty() && split.validation.is_empty() && split.test.is_empty());
    }

    #[test]
    fn k_fold_folds_are_disjoint_and_cover_every_index() {
        let labels = german_like_labels();
        let folds = stratified_k_fold(&labels, 7, 3).unwrap();
        assert_eq!(folds.len(), 7);
        let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert!(folds.iter().all(|f| is_sorted(f)));
    }

    #[test]
    fn k_fold_keeps_class_counts_within_one_per_fold() {
        let labels = german_like_labels();
        // 700 good / 7 = 100 each; 300 bad / 7 = 42 or 43; totals 142 or 143.
        let folds = stratified_k_fold(&labels, 7, 3).unwrap();
        for fold in &folds {
            let bad = count_bad(&labels, fold);
            assert!(bad == 42 || bad == 43, "fold has {bad} bad");
            assert_eq!(fold.len() - bad, 100);
        }
        // 10 good, 5 bad in 4 folds: good 3,3,2,2 then bad continues at fold 2: 1,1,2,1
        // → sizes 4,4,4,3: overall sizes also within one.
        let labels: Vec<bool> = (0..15).map(|i| i >= 10).collect();
        let sizes: Vec<usize> = stratified_k_fold(&labels, 4, 9)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![4, 4, 4, 3]);
    }

    #[test]
    fn k_fold_is_deterministic_for_a_seed_and_differs_between_seeds() {
        let labels = german_like_labels();
        let a = stratified_k_fold(&labels, 5, 11).unwrap();
        let b = stratified_k_fold(&labels, 5, 11).unwrap();
        let c = stratified_k_fold(&labels, 5, 12).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn k_fold_rejects_too_few_or_too_many_folds() {
        let labels = [false, false, false, true, true];
        assert_eq!(
            stratified_k_fold(&labels, 1, 0),
            Err(SplitError::TooFewFolds { k: 1 })
        );
        assert_eq!(
            stratified_k_fold(&labels, 3, 0),
            Err(SplitError::TooManyFolds {
                k: 3,
                smaller_class: 2
            })
        );
        assert_eq!(
            stratified_k_fold(&[true, true, true], 2, 0),
            Err(SplitError::TooManyFolds {
                k: 2,
                smaller_class: 0
            })
        );
        assert!(stratified_k_fold(&labels, 2, 0).is_ok());
    }
}
