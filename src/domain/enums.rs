//! The contract's enumerations. Each is a poem-openapi `Enum` (validated on input, listed in
//! the API description) and a serde enum (stored as the same lower-case strings).

use poem_openapi::Enum;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[oai(rename = $text)] #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and JSON spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the stored spelling.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// A person's gender.
    Gender { Male => "male", Female => "female", Unknown => "unknown" }
}

string_enum! {
    /// The 16 family link types.
    LinkType {
        Parent => "parent", Child => "child", Spouse => "spouse", Sibling => "sibling",
        Grandparent => "grandparent", Grandchild => "grandchild", UncleAunt => "uncle_aunt",
        NephewNiece => "nephew_niece", Cousin => "cousin", StepParent => "step_parent",
        StepChild => "step_child", ParentInLaw => "parent_in_law", ChildInLaw => "child_in_law",
        SiblingInLaw => "sibling_in_law", Godparent => "godparent", Godchild => "godchild",
    }
}

string_enum! {
    /// A user's role; a missing role in an old document means member.
    Role { Admin => "admin", Member => "member" }
}

string_enum! {
    /// A collaborator's role on a tree.
    CollaboratorRole { Viewer => "viewer", Editor => "editor" }
}

string_enum! {
    /// An invitation's status.
    CollaboratorStatus { Pending => "pending", Accepted => "accepted", Rejected => "rejected" }
}

string_enum! {
    /// What a contribution proposes.
    ContributionAction { Add => "add", Edit => "edit", Delete => "delete" }
}

string_enum! {
    /// What a contribution is about.
    EntityType { Person => "person", Link => "link" }
}

string_enum! {
    /// A contribution's status.
    ContributionStatus { Pending => "pending", Approved => "approved", Rejected => "rejected" }
}

string_enum! {
    /// A reviewer's decision.
    ReviewDecision { Approved => "approved", Rejected => "rejected" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_link_types_round_trip() {
        assert_eq!(LinkType::ALL.len(), 16);
        for t in LinkType::ALL {
            assert_eq!(LinkType::parse(t.as_str()), Some(*t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().into())
            );
        }
        assert_eq!(LinkType::parse("friend"), None);
    }

    #[test]
    fn serde_refuses_unknown_values() {
        assert!(serde_json::from_str::<Gender>("\"other\"").is_err());
        assert_eq!(
            serde_json::from_str::<Gender>("\"female\"").unwrap(),
            Gender::Female
        );
    }
}
