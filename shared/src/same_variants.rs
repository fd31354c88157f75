//! `same_variants!`: the `From` between two enums whose variants have the same names (a
//! domain enum and its wire enum), written as the list of names. The match it expands to
//! is exhaustive on the source, so a variant added to one side and not the other fails to
//! compile.

/// `same_variants!(Source => Target { A, B, C })`: `impl From<Source> for Target`, mapping
/// each listed variant to the target's variant of the same name.
#[macro_export]
macro_rules! same_variants {
    ($from:ty => $to:ty { $($variant:ident),+ $(,)? }) => {
        impl ::std::convert::From<$from> for $to {
            fn from(value: $from) -> Self {
                type Source = $from;
                match value {
                    $(Source::$variant => Self::$variant,)+
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, Clone, Copy)]
    enum Domain {
        Queued,
        Done,
    }

    #[derive(Debug, PartialEq)]
    enum Wire {
        Unspecified,
        Queued,
        Done,
    }

    crate::same_variants!(Domain => Wire { Queued, Done });

    #[test]
    fn each_variant_maps_to_its_namesake() {
        assert_eq!(Wire::from(Domain::Queued), Wire::Queued);
        assert_eq!(Wire::from(Domain::Done), Wire::Done);
        assert_ne!(Wire::from(Domain::Done), Wire::Unspecified);
    }
}
