//! Roles and permissions: every operation declares one permission, every role is a fixed set
//! of them. Nothing else grants anything.

use serde::{Deserialize, Serialize};

macro_rules! named {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Its name.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value a name stands for.
            #[must_use]
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

named! {
    /// An operator's role.
    Role {
        /// Everything, including managing operators.
        Superadmin => "superadmin",
        /// Everything but managing operators.
        Admin => "admin",
        /// Users: personal data, locks, verification levels, second-factor resets.
        Compliance => "compliance",
        /// Money: revenue, liabilities against the wallets; users read-only and masked.
        Accountant => "accountant",
        /// Users read-only, personal data masked.
        Support => "support",
        /// Markets' halts and the system's state.
        Technical => "technical",
    }
}

named! {
    /// What an operation needs.
    Permission {
        /// Find and view users (personal data masked).
        UsersRead => "users.read",
        /// See a user's personal data unmasked (each time logged).
        UsersUnmask => "users.unmask",
        /// Lock and unlock accounts.
        UsersLock => "users.lock",
        /// Set verification levels.
        UsersLevel => "users.level",
        /// Reset a user's second factor (four eyes; the owner is emailed).
        UsersResetTwoFactor => "users.reset_2fa",
        /// See markets, assets and fees.
        MarketsRead => "markets.read",
        /// Halt and resume markets.
        MarketsHalt => "markets.halt",
        /// List assets' markets (four eyes).
        Listings => "listings",
        /// Change fees (four eyes).
        Fees => "fees",
        /// See withdrawals waiting for operators; approve (the second of two) or reject them.
        WithdrawalsReview => "withdrawals.review",
        /// Pull or release the withdrawal kill switch.
        WithdrawalsHalt => "withdrawals.halt",
        /// Fee revenue, DAO weeks, liabilities against the wallets.
        MoneyRead => "money.read",
        /// Read and export the audit log.
        AuditRead => "audit.read",
        /// Invite operators, change their roles and networks.
        OperatorsManage => "operators.manage",
    }
}

impl Role {
    /// Whether the role holds `permission`.
    #[must_use]
    pub fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Superadmin => true,
            Role::Admin => permission != P::OperatorsManage,
            Role::Compliance => matches!(
                permission,
                P::UsersRead
                    | P::UsersUnmask
                    | P::UsersLock
                    | P::UsersLevel
                    | P::UsersResetTwoFactor
                    | P::WithdrawalsReview
                    | P::WithdrawalsHalt
                    | P::AuditRead
            ),
            Role::Accountant => matches!(
                permission,
                P::UsersRead | P::MarketsRead | P::WithdrawalsReview | P::MoneyRead | P::AuditRead
            ),
            Role::Support => permission == P::UsersRead,
            Role::Technical => matches!(
                permission,
                P::MarketsRead | P::MarketsHalt | P::WithdrawalsHalt
            ),
        }
    }

    /// Every permission the role holds.
    #[must_use]
    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| self.grants(*p))
            .collect()
    }
}
