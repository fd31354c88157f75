//! Enums stored and exchanged as text (`status = 'COMPLETED'`, `state = 'active'`): one
//! declaration gives the variants, `as_str`, `parse`, `ALL`, `Display`, `FromStr` and serde
//! as that same text, so a column, a config key and a JSON field all spell a value alike.

/// Declares a text enum:
///
/// ```
/// stowage_shared::text_enum! {
///     /// A light.
///     pub enum Light {
///         Red = "RED",
///         Green = "GREEN",
///     }
/// }
/// assert_eq!(Light::parse("RED"), Some(Light::Red));
/// assert_eq!(Light::Green.to_string(), "GREEN");
/// ```
///
/// Deserializing also accepts the variant's own name, which is how such values were
/// written before they had a text of their own.
#[macro_export]
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                Self::parse(text).ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} {text:?} (one of {})", stringify!($name), known.join(", "))
                })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                match text.as_ref() {
                    $(stringify!($variant) => return Ok($name::$variant),)+
                    _ => {}
                }
                text.parse().map_err(<D::Error as ::serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        enum Mode {
            DryRun = "dry_run",
            Live = "live",
        }
    }

    #[test]
    fn one_text_for_columns_keys_and_json() {
        assert_eq!(Mode::parse("live"), Some(Mode::Live));
        assert_eq!(Mode::DryRun.to_string(), "dry_run");
        assert_eq!(serde_json::to_string(&Mode::DryRun).unwrap(), "\"dry_run\"");
        let read: Mode = serde_json::from_str("\"dry_run\"").unwrap();
        assert_eq!(read, Mode::DryRun);
        let old: Mode = serde_json::from_str("\"DryRun\"").unwrap();
        assert_eq!(old, Mode::DryRun, "the variant's own name still reads");
        let error = "sideways".parse::<Mode>().unwrap_err();
        assert!(error.contains("dry_run, live"), "{error}");
    }
}
