//! Placement tests: golden scripts for behaviour, property tests for the promises.

use super::super::script::check_golden;

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            check_golden(stringify!($name));
        })*
    };
}

golden!(placement_order);
