//! `clientAppUsed` to client class, by Microsoft's legacy-authentication client list.

use crate::model::{ClientClass, Protocol};

/// Lower-cased, trimmed `clientAppUsed` values and their classes, variants included.
const TABLE: &[(&str, ClientClass)] = &[
    ("browser", ClientClass::Modern),
    ("mobile apps and desktop clients", ClientClass::Modern),
    (
        "authenticated smtp",
        ClientClass::Legacy(Protocol::AuthenticatedSmtp),
    ),
    ("autodiscover", ClientClass::Legacy(Protocol::Autodiscover)),
    (
        "exchange activesync",
        ClientClass::Legacy(Protocol::ExchangeActiveSync),
    ),
    (
        "exchange online powershell",
        ClientClass::Legacy(Protocol::ExchangeOnlinePowerShell),
    ),
    (
        "exchange web services",
        ClientClass::Legacy(Protocol::ExchangeWebServices),
    ),
    ("imap4", ClientClass::Legacy(Protocol::Imap4)),
    (
        "mapi over http",
        ClientClass::Legacy(Protocol::MapiOverHttp),
    ),
    (
        "offline address book",
        ClientClass::Legacy(Protocol::OfflineAddressBook),
    ),
    (
        "outlook anywhere (rpc over http)",
        ClientClass::Legacy(Protocol::OutlookAnywhere),
    ),
    ("pop3", ClientClass::Legacy(Protocol::Pop3)),
    (
        "reporting web services",
        ClientClass::Legacy(Protocol::ReportingWebServices),
    ),
    (
        "universal outlook",
        ClientClass::Legacy(Protocol::UniversalOutlook),
    ),
    (
        "outlook service",
        ClientClass::Legacy(Protocol::UniversalOutlook),
    ),
    ("other clients", ClientClass::Legacy(Protocol::OtherClients)),
];

/// Longest entry in [`TABLE`].
const MAX_LEN: usize = 32;

/// Classifies a `clientAppUsed` value: trimmed, ASCII case-insensitive. `Unknown`, empty and
/// unlisted values are unclassified, never legacy.
pub fn classify(client_app: &str) -> ClientClass {
    let t = client_app.trim().as_bytes();
    if t.is_empty() || t.len() > MAX_LEN {
        return ClientClass::Unclassified;
    }
    let mut buf = [0u8; MAX_LEN];
    let lower = &mut buf[..t.len()];
    lower.copy_from_slice(t);
    lower.make_ascii_lowercase();
    for (name, class) in TABLE {
        if name.as_bytes() == lower {
            return *class;
        }
    }
    ClientClass::Unclassified
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol::*;

    #[test]
    fn table() {
        let cases: &[(&str, ClientClass)] = &[
            ("Browser", ClientClass::Modern),
            ("Mobile Apps and Desktop clients", ClientClass::Modern),
            ("Authenticated SMTP", ClientClass::Legacy(AuthenticatedSmtp)),
            ("Autodiscover", ClientClass::Legacy(Autodiscover)),
            ("AutoDiscover", ClientClass::Legacy(Autodiscover)),
            (
                "Exchange ActiveSync",
                ClientClass::Legacy(ExchangeActiveSync),
            ),
            (
                "Exchange Online PowerShell",
                ClientClass::Legacy(ExchangeOnlinePowerShell),
            ),
            (
                "Exchange Web Services",
                ClientClass::Legacy(ExchangeWebServices),
            ),
            ("IMAP4", ClientClass::Legacy(Imap4)),
            ("  imap4 ", ClientClass::Legacy(Imap4)),
            ("MAPI Over HTTP", ClientClass::Legacy(MapiOverHttp)),
            ("MAPI over HTTP", ClientClass::Legacy(MapiOverHttp)),
            (
                "Offline Address Book",
                ClientClass::Legacy(OfflineAddressBook),
            ),
            (
                "Outlook Anywhere (RPC over HTTP)",
                ClientClass::Legacy(OutlookAnywhere),
            ),
            ("POP3", ClientClass::Legacy(Pop3)),
            (
                "Reporting Web Services",
                ClientClass::Legacy(ReportingWebServices),
            ),
            ("Universal Outlook", ClientClass::Legacy(UniversalOutlook)),
            ("Outlook Service", ClientClass::Legacy(UniversalOutlook)),
            ("Other clients", ClientClass::Legacy(OtherClients)),
            ("OTHER CLIENTS\t", ClientClass::Legacy(OtherClients)),
            ("Unknown", ClientClass::Unclassified),
            ("", ClientClass::Unclassified),
            ("   ", ClientClass::Unclassified),
            ("IMAP", ClientClass::Unclassified),
            ("Other", ClientClass::Unclassified),
            (
                "Exchange ActiveSync and more text that is long",
                ClientClass::Unclassified,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(classify(value), *want, "{value:?}");
        }
    }

    #[test]
    fn every_protocol_has_its_canonical_name_in_the_table() {
        for p in Protocol::ALL {
            assert_eq!(classify(p.name()), ClientClass::Legacy(p));
        }
    }
}
