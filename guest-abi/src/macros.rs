//! The one macro that turns a list of Xen's numeric constants into a Rust enum.

/// Declares a `#[repr(uN)]` enum whose variants are Xen constants that share a C prefix.
///
/// Each variant names its C spelling (the part after the prefix), so the enum can say which
/// C constant it stands for ([`c_name`](crate::Hypercall::c_name)), list all its values
/// (`ALL`, used by the layout test to compare every value with Xen's headers) and decode a
/// guest-supplied number with `TryFrom`, where an unknown value gives [`XenError::NoSys`]
/// (what Xen answers for an unknown hypercall or sub-op).
///
/// [`XenError::NoSys`]: crate::XenError::NoSys
macro_rules! xen_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty, prefix $prefix:literal {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $cname:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant = $value,
            )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The name of the C constant in Xen's public headers.
            pub const fn c_name(self) -> &'static str {
                match self {
                    $(Self::$variant => concat!($prefix, $cname),)*
                }
            }

            /// The numeric value.
            pub const fn raw(self) -> $repr {
                self as $repr
            }

            /// Decodes a number; `None` for a value Xen does not define.
            pub const fn from_raw(value: $repr) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::XenError;

            fn try_from(value: $repr) -> Result<Self, Self::Error> {
                Self::from_raw(value).ok_or($crate::XenError::NoSys)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> $repr {
                value as $repr
            }
        }
    };
}

pub(crate) use xen_enum;
