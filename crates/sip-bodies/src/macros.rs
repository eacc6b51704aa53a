//! Helper macro for the closed sets of tokens the formats define.

/// Declares a fieldless enum whose variants stand for fixed wire tokens,
/// with `as_str` / `from_token` conversions, so each format writes its token
/// tables once and parse and generate cannot disagree.
macro_rules! token_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $token:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order the specification lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The token as written on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $token ),+
                }
            }

            /// The value for a wire token (exact, case-sensitive match).
            pub fn from_token(token: &str) -> Option<Self> {
                match token {
                    $( $token => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
