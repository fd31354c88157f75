//! The types of migration-svc: runs and items, bindings, artifacts and evidence, as the
//! domain, the queries and the wire adapter share them. Leaf modules: they import nothing
//! from `db`, the rest of `domain` or `grpc`.

pub mod artifacts;
pub mod bindings;
pub mod cleanup;
pub mod evidence;
pub mod runs;

/// A closed set of values stored as lowercase text: `as_str` for SQL, `parse` back.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
pub(crate) use text_enum;
