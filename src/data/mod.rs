//! The data set, stratified splits and SMOTE-NC balancing.

pub mod german_credit;
pub mod smote;
pub mod split;
