//! The closed vocabulary every stage shares: categories, protocols, outcomes.
//!
//! Every enum here is a closed set, so its names are safe as metric label values.

use serde::Serialize;

/// Log category of a sign-in record (the diagnostic-settings category names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Category {
    SignInLogs,
    NonInteractiveUserSignInLogs,
    ServicePrincipalSignInLogs,
    ManagedIdentitySignInLogs,
    MicrosoftServicePrincipalSignInLogs,
    ADFSSignInLogs,
    /// A category this build does not know, or none at all.
    Other,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::SignInLogs,
        Category::NonInteractiveUserSignInLogs,
        Category::ServicePrincipalSignInLogs,
        Category::ManagedIdentitySignInLogs,
        Category::MicrosoftServicePrincipalSignInLogs,
        Category::ADFSSignInLogs,
        Category::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::SignInLogs => "SignInLogs",
            Category::NonInteractiveUserSignInLogs => "NonInteractiveUserSignInLogs",
            Category::ServicePrincipalSignInLogs => "ServicePrincipalSignInLogs",
            Category::ManagedIdentitySignInLogs => "ManagedIdentitySignInLogs",
            Category::MicrosoftServicePrincipalSignInLogs => "MicrosoftServicePrincipalSignInLogs",
            Category::ADFSSignInLogs => "ADFSSignInLogs",
            Category::Other => "Other",
        }
    }

    /// Service principals and managed identities have no user: never legacy authentication.
    pub fn is_workload(self) -> bool {
        matches!(
            self,
            Category::ServicePrincipalSignInLogs
                | Category::ManagedIdentitySignInLogs
                | Category::MicrosoftServicePrincipalSignInLogs
        )
    }
}

/// Legacy (basic) authentication protocols, by the canonical `clientAppUsed` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Protocol {
    AuthenticatedSmtp,
    Autodiscover,
    ExchangeActiveSync,
    ExchangeOnlinePowerShell,
    ExchangeWebServices,
    Imap4,
    MapiOverHttp,
    OfflineAddressBook,
    OutlookAnywhere,
    Pop3,
    ReportingWebServices,
    UniversalOutlook,
    OtherClients,
}

impl Protocol {
    pub const COUNT: usize = 13;
    pub const ALL: [Protocol; Protocol::COUNT] = [
        Protocol::AuthenticatedSmtp,
        Protocol::Autodiscover,
        Protocol::ExchangeActiveSync,
        Protocol::ExchangeOnlinePowerShell,
        Protocol::ExchangeWebServices,
        Protocol::Imap4,
        Protocol::MapiOverHttp,
        Protocol::OfflineAddressBook,
        Protocol::OutlookAnywhere,
        Protocol::Pop3,
        Protocol::ReportingWebServices,
        Protocol::UniversalOutlook,
        Protocol::OtherClients,
    ];

    /// The canonical `clientAppUsed` value Microsoft documents for this protocol.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::AuthenticatedSmtp => "Authenticated SMTP",
            Protocol::Autodiscover => "Autodiscover",
            Protocol::ExchangeActiveSync => "Exchange ActiveSync",
            Protocol::ExchangeOnlinePowerShell => "Exchange Online PowerShell",
            Protocol::ExchangeWebServices => "Exchange Web Services",
            Protocol::Imap4 => "IMAP4",
            Protocol::MapiOverHttp => "MAPI Over HTTP",
            Protocol::OfflineAddressBook => "Offline Address Book",
            Protocol::OutlookAnywhere => "Outlook Anywhere (RPC over HTTP)",
            Protocol::Pop3 => "POP3",
            Protocol::ReportingWebServices => "Reporting Web Services",
            Protocol::UniversalOutlook => "Universal Outlook",
            Protocol::OtherClients => "Other clients",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How `clientAppUsed` classifies a sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientClass {
    Legacy(Protocol),
    /// `Browser`, `Mobile Apps and Desktop clients`.
    Modern,
    /// `Unknown`, empty, missing, or a value this build does not know. Never legacy.
    Unclassified,
}

/// The result of a sign-in, from its error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Outcome {
    /// Error code 0.
    Success,
    /// 53003: Conditional Access refused after the password was accepted.
    Blocked,
    /// Any other code (or none).
    Failure,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Blocked, Outcome::Failure];

    pub fn from_code(code: Option<i64>) -> Outcome {
        match code {
            Some(0) => Outcome::Success,
            Some(53003) => Outcome::Blocked,
            _ => Outcome::Failure,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Blocked => "blocked",
            Outcome::Failure => "failure",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
