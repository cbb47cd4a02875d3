//! Seeded generator of realistic Entra ID sign-in traffic for one tenant.
//!
//! The generator draws one sign-in at a time from a tenant model (users derived from a hash of
//! the seed and their index, so 500,000 users need no tables) and renders it straight into bytes
//! in one of the five input shapes the engine reads: storage-archive NDJSON, Event Hubs
//! envelopes, Graph API pages, a pretty-printed portal download, or Log Analytics rows.
//!
//! Mix: about 68 % non-interactive user sign-ins, 19 % interactive (Browser, Mobile Apps and
//! Desktop clients), 10 % service-principal and managed-identity sign-ins, `legacy_share` legacy
//! sign-ins from a stable set of legacy users (same devices, IPs and user agents), `sprays`
//! password-spray bursts (BAV2ROPC over IMAP4 / SMTP / EAS; 20-500 attempts each, at most about
//! 5 % of the records in all, on top of `legacy_share`, which applies to the other records),
//! `duplicate_share` re-emitted records, and the field quirks seen in real exports at low rates.

use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::classify::time;
use crate::config::parse_duration;

#[derive(clap::Args, Debug, Clone)]
pub struct SynthArgs {
    /// Users in the tenant
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Sign-in records to produce (duplicates included)
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Seed of the generator: the same seed gives the same bytes
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output shape
    #[arg(long, value_enum, default_value_t = SynthFormat::Ndjson)]
    pub format: SynthFormat,
    /// First event time, RFC 3339
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    pub start: String,
    /// Event-time span the records cover, e.g. 30m, 24h, 7d
    #[arg(long, default_value = "24h")]
    pub span: String,
    /// Share of records that are legacy-auth sign-ins (0..1)
    #[arg(long, default_value_t = 0.03)]
    pub legacy_share: f64,
    /// Share of records emitted twice (same id)
    #[arg(long, default_value_t = 0.005)]
    pub duplicate_share: f64,
    /// Password-spray bursts (BAV2ROPC over IMAP/SMTP/...) to include
    #[arg(long, default_value_t = 3)]
    pub sprays: u32,
    /// Records per Event Hubs message / Graph page
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
}

impl Default for SynthArgs {
    fn default() -> Self {
        SynthArgs {
            users: 10_000,
            records: 100_000,
            seed: 1,
            format: SynthFormat::Ndjson,
            start: "2026-11-01T00:00:00Z".into(),
            span: "24h".into(),
            legacy_share: 0.03,
            duplicate_share: 0.005,
            sprays: 3,
            batch: 100,
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthFormat {
    /// Event Hubs messages: one `{"records":[...]}` per line
    Envelope,
    /// Storage-account archive: one diagnostic record per line
    Ndjson,
    /// Graph API pages: one `{"value":[...]}` per line
    Graph,
    /// Entra admin center download: one pretty-printed JSON array
    Portal,
    /// Log Analytics export: one row per line, PascalCase columns
    LogAnalytics,
}

#[derive(Debug, Clone, Default)]
pub struct SynthSummary {
    /// Records written, duplicates included.
    pub records: u64,
    /// Records written a second time (same id).
    pub duplicates: u64,
    /// Bytes written.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("--start `{0}` is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)")]
    Start(String),
    #[error("--span: {0}")]
    Span(String),
    #[error("--{name} {value} is out of range: give a share from 0 up to {max}")]
    Share {
        name: &'static str,
        value: f64,
        max: &'static str,
    },
    #[error("--users must be at least 1")]
    NoUsers,
    #[error("--batch must be at least 1")]
    NoBatch,
}

// ---------------------------------------------------------------------------------------------
// Tenant model tables
// ---------------------------------------------------------------------------------------------

const FIRST: &str = concat!(
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara ",
    "richard susan joseph jessica thomas sarah charles karen daniel nancy matthew lisa ",
    "anthony betty mark sandra steven ashley paul emily andrew donna joshua michelle kevin ",
    "carol brian amanda george melissa timothy deborah ronald laura jason rebecca ryan ",
    "sharon jacob cynthia gary kathleen nicholas amy eric angela jonathan helen aisha ",
    "mohammed wei yuki priya lars sofia mateo chloe lukas fatima omar ingrid pierre elena ",
    "hiroshi ana diego olga noah",
);
const LAST: &str = concat!(
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez ",
    "lopez gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson ",
    "white harris sanchez clark ramirez lewis robinson walker young allen king wright scott ",
    "torres nguyen hill flores green adams nelson baker hall rivera campbell mitchell carter ",
    "roberts schmidt mueller dubois rossi kowalski jensen nakamura patel singh kim chen wang ",
    "silva santos oconnor murphy fischer weber novak larsen berg ivanova haddad okafor ",
    "mensah costa ferreira yamamoto tanaka sato",
);

/// city, state, country, latitude, longitude. The first 18 are home offices of users; the rest
/// host spray infrastructure.
#[rustfmt::skip]
const LOCS: [(&str, &str, &str, &str, &str); 26] = [
    ("Seattle", "Washington", "US", "47.6062", "-122.3321"),
    ("Redmond", "Washington", "US", "47.674", "-122.1215"),
    ("New York", "New York", "US", "40.7128", "-74.006"),
    ("Chicago", "Illinois", "US", "41.8781", "-87.6298"),
    ("Dallas", "Texas", "US", "32.7767", "-96.797"),
    ("Atlanta", "Georgia", "US", "33.749", "-84.388"),
    ("London", "England", "GB", "51.5072", "-0.1276"),
    ("Manchester", "England", "GB", "53.4808", "-2.2426"),
    ("Dublin", "Dublin", "IE", "53.3498", "-6.2603"),
    ("Paris", "Ile-De-France", "FR", "48.8566", "2.3522"),
    ("Munich", "Bayern", "DE", "48.1351", "11.582"),
    ("Madrid", "Madrid", "ES", "40.4168", "-3.7038"),
    ("Toronto", "Ontario", "CA", "43.6532", "-79.3832"),
    ("Mexico City", "Ciudad de Mexico", "MX", "19.4326", "-99.1332"),
    ("Bengaluru", "Karnataka", "IN", "12.9716", "77.5946"),
    ("Tokyo", "Tokyo", "JP", "35.6762", "139.6503"),
    ("Sydney", "New South Wales", "AU", "-33.8688", "151.2093"),
    ("Sao Paulo", "Sao Paulo", "BR", "-23.5505", "-46.6333"),
    ("Amsterdam", "Noord-Holland", "NL", "52.3676", "4.9041"),
    ("Frankfurt am Main", "Hessen", "DE", "50.1109", "8.6821"),
    ("Ashburn", "Virginia", "US", "39.0438", "-77.4874"),
    ("Moscow", "Moscow", "RU", "55.7558", "37.6173"),
    ("Ho Chi Minh City", "Ho Chi Minh", "VN", "10.8231", "106.6297"),
    ("Lagos", "Lagos", "NG", "6.5244", "3.3792"),
    ("Singapore", "Singapore", "SG", "1.3521", "103.8198"),
    ("Bucharest", "Bucuresti", "RO", "44.4268", "26.1025"),
];
const HOME_LOCS: u64 = 18;
const ASN_ISP: [u32; 8] = [7922, 7018, 701, 2856, 3320, 3215, 55836, 6830];
const ASN_HOSTING: [u32; 6] = [14061, 24940, 9009, 20473, 16276, 51167];
#[rustfmt::skip]
const IPV4_FIRST: [u8; 24] = [
    2, 5, 24, 31, 37, 46, 62, 66, 71, 73, 77, 81, 84, 86, 92, 98, 109, 151, 176, 185, 194, 203, 212,
    217,
];

/// The 13 legacy clients (canonical `clientAppUsed`), a weight, and a variant spelling.
#[rustfmt::skip]
const LEGACY: [(&str, u32, &str); 13] = [
    ("Exchange ActiveSync", 24, ""),
    ("Authenticated SMTP", 16, ""),
    ("IMAP4", 12, ""),
    ("Exchange Web Services", 8, ""),
    ("POP3", 6, ""),
    ("MAPI Over HTTP", 6, "MAPI over HTTP"),
    ("Autodiscover", 6, "AutoDiscover"),
    ("Other clients", 6, ""),
    ("Outlook Anywhere (RPC over HTTP)", 5, ""),
    ("Universal Outlook", 3, "Outlook Service"),
    ("Offline Address Book", 3, ""),
    ("Exchange Online PowerShell", 3, ""),
    ("Reporting Web Services", 2, ""),
];
const P_EAS: u8 = 0;
const P_SMTP: u8 = 1;
const P_IMAP: u8 = 2;

#[rustfmt::skip]
const UA_EAS: &[&str] = &[
    "Apple-iPhone13C2/1905.258", "Apple-iPhone14C5/2008.124", "Apple-iPad8C1/1905.258",
    "Android-Mail/2023.06.25.546093337.Release", "SAMSUNG-SM-G991B/101.100",
    "Outlook-iOS-Android/1.0",
];
#[rustfmt::skip]
const UA_SMTP: &[&str] = &[
    "", "curl/8.4.0", "python-requests/2.31.0", "Java/11.0.20", "PHPMailer/6.8.1", "",
];
#[rustfmt::skip]
const UA_MAIL: &[&str] = &[
    "python-requests/2.31.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.4.1",
    "curl/8.4.0", "Java/1.8.0_381", "", "Apple-Mail/3774.100.2",
];
#[rustfmt::skip]
const UA_OUTLOOK: &[&str] = &[
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
    "Microsoft Office/15.0 (Windows NT 6.1; Microsoft Outlook 15.0.5023; Pro)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.5197; Pro)",
];
#[rustfmt::skip]
const UA_EWS: &[&str] = &[
    "ExchangeServicesClient/15.00.0913.015", "MacOutlook/16.78.23100802 (Intelx64 Mac OS X 14.0.0)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
];
#[rustfmt::skip]
const UA_PS: &[&str] = &[
    "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.3570",
    "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.0",
];
#[rustfmt::skip]
const UA_OTHER: &[&str] = &[
    "Go-http-client/1.1", "okhttp/4.9.3", "python-requests/2.31.0", "",
];
#[rustfmt::skip]
const UA_UNIV: &[&str] = &[
    "Microsoft.Windows.Mail/16005.14326.21904.0", "Outlook-WindowsMail/1.0",
];

fn legacy_uas(p: u8) -> &'static [&'static str] {
    match p {
        0 => UA_EAS,
        1 => UA_SMTP,
        2 | 4 => UA_MAIL,
        3 => UA_EWS,
        5 | 6 | 8 | 10 => UA_OUTLOOK,
        7 => UA_OTHER,
        9 => UA_UNIV,
        _ => UA_PS,
    }
}

/// Browser profiles: user agent, deviceDetail.operatingSystem, deviceDetail.browser.
#[rustfmt::skip]
const BROWSERS: [(&str, &str, &str); 5] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0", "Windows10", "Edge 130.0.0"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "MacOs", "Chrome 131.0.0"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Ios", "Mobile Safari"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0", "Windows10", "Firefox 132.0"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Windows10", "Chrome 131.0.0"),
];
/// Rich-client profiles (Mobile Apps and Desktop clients).
#[rustfmt::skip]
const RICH: [(&str, &str, &str); 5] = [
    ("Windows-AzureAD-Authentication-Provider/1.0", "Windows10", "Rich Client 10.0.22631"),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18025; Pro)", "Windows10", "Rich Client 4.61.0.0"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Teams/24295.605.3225.8804", "Windows10", "Rich Client 4.66.0.0"),
    ("OneDrive/24.210.1027 (iPhone; iOS 18.1; Scale/3.00)", "Ios", "Rich Client 1.2.22"),
    ("Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)", "Android", "Rich Client 5.4.0"),
];

/// appId, appDisplayName, resourceId, resourceDisplayName, Oauth Scope Info (already escaped).
#[rustfmt::skip]
const APPS: [(&str, &str, &str, &str, &str); 12] = [
    ("d3590ed6-52b3-4102-aeff-aad2292ab01c", "Microsoft Office", "00000003-0000-0000-c000-000000000000", "Microsoft Graph", r#"[\"AuditLog.Create\",\"Calendars.ReadWrite\",\"Files.ReadWrite.All\",\"Mail.ReadWrite\",\"User.Read\"]"#),
    ("1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams", "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Microsoft Teams Services", r#"[\"user_impersonation\"]"#),
    ("27922004-5251-4030-b22d-91ecd9a37ea4", "Outlook Mobile", "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", r#"[\"EAS.AccessAsUser.All\",\"EWS.AccessAsUser.All\",\"Mail.ReadWrite\"]"#),
    ("ab9b8c07-8f02-4f72-87fa-80105867a763", "OneDrive SyncEngine", "00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online", r#"[\"AllSites.Write\",\"MyFiles.Write\"]"#),
    ("4765445b-32c6-49b0-83e6-1d93765276ca", "OfficeHome", "00000003-0000-0000-c000-000000000000", "Microsoft Graph", r#"[\"openid\",\"profile\",\"User.Read\"]"#),
    ("c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Azure Portal", "797f4846-ba00-4fd7-ba43-dac1f8f63013", "Windows Azure Service Management API", r#"[\"user_impersonation\"]"#),
    ("29d9ed98-a469-4536-ade2-f981bc1d605e", "Microsoft Authentication Broker", "00000003-0000-0000-c000-000000000000", "Microsoft Graph", ""),
    ("38aa3b87-a06d-4817-b275-7a316988d93b", "Windows Sign In", "00000002-0000-0000-c000-000000000000", "Windows Azure Active Directory", ""),
    ("89bee1f7-5e6e-4d8a-9f3d-ecd601259da7", "Office365 Shell WCSS-Client", "00000003-0000-0000-c000-000000000000", "Microsoft Graph", r#"[\"User.Read\"]"#),
    ("ecd6b820-32c2-49b6-98a6-444530e5a77a", "Microsoft Edge", "00000003-0000-0000-c000-000000000000", "Microsoft Graph", r#"[\"openid\",\"profile\",\"offline_access\"]"#),
    ("00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", ""),
    ("a0c73c16-a7e3-4564-9a95-2bdf47383716", "Microsoft Exchange Online Remote PowerShell", "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online", ""),
];
const APP_EXO: u8 = 10;
const APP_EXO_PS: u8 = 11;
#[rustfmt::skip]
const SP_NAMES: [&str; 10] = [
    "Contoso HR Sync", "Backup-Agent-Prod", "ServiceNow Connector", "Terraform CI",
    "GitHub Actions deploy", "Veeam Backup for Microsoft 365", "Power BI Gateway",
    "Datadog Azure Integration", "contoso-payments-api", "Jamf Pro Connector",
];
#[rustfmt::skip]
const MI_NAMES: [&str; 5] = [
    "vm-build-agent-01", "func-invoice-processor", "aks-contoso-prod-agentpool",
    "logic-orders-sync", "adf-contoso-etl",
];

/// Error code, failureReason, additionalDetails.
#[rustfmt::skip]
const ERRORS: [(u32, &str, &str); 15] = [
    (0, "", "MFA requirement satisfied by claim in the token"),
    (50126, "Error validating credentials due to invalid username or password.", "The user didn't enter the right credentials. It's expected to see some number of these errors in your logs due to users making mistakes."),
    (50053, "Account is locked because user tried to sign in too many times with an incorrect user ID or password.", "The account is locked or the sign-in came from an IP address with malicious activity."),
    (53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.", "The sign-in was blocked by a Conditional Access policy."),
    (50034, "The user account does not exist in the directory. To sign into this application, the account must be added to the directory.", "The user account does not exist."),
    (50074, "Strong Authentication is required.", "The user was required to complete multi-factor authentication."),
    (50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.", "MFA required in Azure AD"),
    (50140, "This error occurred due to 'Keep me signed in' interrupt when the user was signing-in.", "The Keep me signed in prompt interrupted the sign-in."),
    (50055, "The password is expired.", "The user's password is expired and must be changed."),
    (50057, "The user account is disabled.", "The account has been disabled by an administrator."),
    (70044, "The session has expired or is invalid due to sign-in frequency checks by conditional access.", ""),
    (700082, "The refresh token has expired due to inactivity.", "The token was issued on a date and was inactive for 90 days."),
    (50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed.", ""),
    (7000215, "Invalid client secret is provided.", "The client secret provided is not valid or has expired."),
    (7000222, "The provided client secret keys are expired.", "Create new keys for the app, or consider using certificate credentials."),
];

fn error_info(code: u32) -> (&'static str, &'static str) {
    ERRORS
        .iter()
        .find(|e| e.0 == code)
        .map_or(("Other.", ""), |e| (e.1, e.2))
}

/// The tenant's Conditional Access policies: name, state (E enabled, R report-only, D
/// disabled), grant controls (already JSON), session controls (already JSON).
#[rustfmt::skip]
const POLICIES: [(&str, u8, &str, &str); 25] = [
    ("CA001: Require MFA for all users", b'E', r#"["Mfa"]"#, "[]"),
    ("CA002: Block legacy authentication", b'E', r#"["Block"]"#, "[]"),
    ("CA003: Require MFA for administrators", b'E', r#"["Mfa"]"#, "[]"),
    ("CA004: Require compliant or hybrid Azure AD joined device", b'E', r#"["RequireCompliantDevice","RequireDomainJoinedDevice"]"#, "[]"),
    ("CA005: Block access from unsupported countries", b'E', r#"["Block"]"#, "[]"),
    ("CA006: Require MFA for Azure management", b'E', r#"["Mfa"]"#, "[]"),
    ("CA007: Sign-in frequency 12 hours on unmanaged devices", b'E', "[]", r#"["SignInFrequency","PersistentBrowserSessionMode"]"#),
    ("CA008: Require app protection policy on iOS and Android", b'R', r#"["RequireApprovedApp","RequireCompliantApp"]"#, "[]"),
    ("CA009: Block high user risk", b'E', r#"["Block"]"#, "[]"),
    ("CA010: Require MFA for medium and high sign-in risk", b'E', r#"["Mfa"]"#, r#"["SignInFrequency"]"#),
    ("CA011: Require terms of use for guests", b'D', r#"["Terms of Use"]"#, "[]"),
    ("CA012: Block device code flow", b'R', r#"["Block"]"#, "[]"),
    ("CA013: Require phishing-resistant MFA for admins", b'E', r#"["RequireAuthenticationStrength"]"#, "[]"),
    ("CA014: SharePoint app enforced restrictions for unmanaged devices", b'E', "[]", r#"["AppEnforcedRestrictions"]"#),
    ("CA015: Require password change for high user risk", b'E', r#"["Mfa","PasswordChange"]"#, "[]"),
    ("CA016: Block access for unknown or unsupported device platforms", b'R', r#"["Block"]"#, "[]"),
    ("CA017: Require MFA to register security information", b'E', r#"["Mfa"]"#, "[]"),
    ("CA018: Token protection for Exchange Online sessions (preview)", b'R', "[]", r#"["SecureSignInSession"]"#),
    ("CA019: Block Exchange ActiveSync clients", b'R', r#"["Block"]"#, "[]"),
    ("CA020: Continuous access evaluation strict location enforcement", b'D', "[]", r#"["ContinuousAccessEvaluation"]"#),
    ("Microsoft-managed: Multifactor authentication for admins accessing Microsoft Admin Portals", b'R', r#"["Mfa"]"#, "[]"),
    ("Microsoft-managed: Block legacy authentication", b'R', r#"["Block"]"#, "[]"),
    ("Microsoft-managed: Multifactor authentication and reauthentication for risky sign-ins", b'R', r#"["Mfa"]"#, r#"["SignInFrequency"]"#),
    ("Baseline: Require MFA for guest and external users", b'E', r#"["Mfa"]"#, "[]"),
    ("Pilot: Require compliant network for Global Secure Access", b'D', r#"["CompliantNetwork"]"#, "[]"),
];
const POL_BLOCK_LEGACY: usize = 1;

// ---------------------------------------------------------------------------------------------
// Byte writers
// ---------------------------------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

#[inline]
fn put(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
}

fn put_u64(b: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    b.extend_from_slice(&tmp[i..]);
}

fn put_2(b: &mut Vec<u8>, n: u32) {
    b.push(b'0' + (n / 10 % 10) as u8);
    b.push(b'0' + (n % 10) as u8);
}

/// A JSON string with quotes, escaped.
fn put_q(b: &mut Vec<u8>, s: &str) {
    b.push(b'"');
    put_esc(b, s.as_bytes());
    b.push(b'"');
}

/// String content, escaped for JSON (quote, backslash, control characters).
fn put_esc(b: &mut Vec<u8>, s: &[u8]) {
    let mut from = 0;
    if s.iter().all(|&c| c >= 0x20) {
        for i in memchr::memchr2_iter(b'"', b'\\', s) {
            b.extend_from_slice(&s[from..i]);
            b.extend_from_slice(&[b'\\', s[i]]);
            from = i + 1;
        }
        return b.extend_from_slice(&s[from..]);
    }
    for (i, &c) in s.iter().enumerate() {
        if c == b'"' || c == b'\\' || c < 0x20 {
            b.extend_from_slice(&s[from..i]);
            match c {
                b'"' => put(b, "\\\""),
                b'\\' => put(b, "\\\\"),
                b'\n' => put(b, "\\n"),
                b'\r' => put(b, "\\r"),
                b'\t' => put(b, "\\t"),
                _ => {
                    put(b, "\\u00");
                    b.push(HEX[(c >> 4) as usize]);
                    b.push(HEX[(c & 15) as usize]);
                }
            }
            from = i + 1;
        }
    }
    b.extend_from_slice(&s[from..]);
}

/// A GUID (8-4-4-4-12, lower-case hex), without quotes.
fn put_guid(b: &mut Vec<u8>, v: u128) {
    let bytes = v.to_be_bytes();
    for (i, x) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            b.push(b'-');
        }
        b.push(HEX[(x >> 4) as usize]);
        b.push(HEX[(x & 15) as usize]);
    }
}

/// A random-looking version-4 GUID from a 128-bit value.
fn v4(v: u128) -> u128 {
    (v & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// ISO 8601 time of `ns` shown at `off_min` minutes from UTC, with `digits` (7 or 9) fraction
/// digits, ending in `Z` when `zulu`, else in `+hh:mm`.
fn put_time(b: &mut Vec<u8>, ns: i64, digits: u32, off_min: i32, zulu: bool) {
    let local = ns + i64::from(off_min) * 60_000_000_000;
    let secs = local.div_euclid(1_000_000_000);
    let frac = local.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    put_2(b, (y / 100) as u32);
    put_2(b, (y % 100) as u32);
    b.push(b'-');
    put_2(b, mo);
    b.push(b'-');
    put_2(b, d);
    b.push(b'T');
    put_2(b, sod / 3600);
    b.push(b':');
    put_2(b, sod / 60 % 60);
    b.push(b':');
    put_2(b, sod % 60);
    b.push(b'.');
    let f = if digits == 9 { frac } else { frac / 100 };
    let mut tmp = [b'0'; 9];
    let mut v = f;
    for i in (0..digits as usize).rev() {
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    b.extend_from_slice(&tmp[..digits as usize]);
    if zulu {
        b.push(b'Z');
    } else {
        b.push(if off_min < 0 { b'-' } else { b'+' });
        let a = off_min.unsigned_abs();
        put_2(b, a / 60);
        b.push(b':');
        put_2(b, a % 60);
    }
}

/// SplitMix64 finaliser: derives per-user, per-tenant and per-record attributes.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn mix2(a: u64, b: u64) -> u64 {
    mix(a ^ mix(b))
}

/// Small deterministic stream for the details of one record (drawn again for a duplicate).
struct Sm(u64);
impl Sm {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }
    #[inline]
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

// ---------------------------------------------------------------------------------------------
// The tenant and its sign-ins
// ---------------------------------------------------------------------------------------------

const K_INTER: u8 = 0;
const K_NONINT: u8 = 1;
const K_SP: u8 = 2;
const K_MI: u8 = 3;
#[rustfmt::skip]
const CATS: [&str; 4] = [
    "SignInLogs", "NonInteractiveUserSignInLogs", "ServicePrincipalSignInLogs",
    "ManagedIdentitySignInLogs",
];

const Q_LEVEL_STR: u16 = 1;
const Q_LEVEL_LOW: u16 = 2;
const Q_DUR_STR: u16 = 4;
const Q_CODE_STR: u16 = 8;
const Q_OFFSET: u16 = 16;
const Q_NS9: u16 = 32;
const Q_UPN_CASE: u16 = 64;
const Q_UPN_ESC: u16 = 128;
const Q_UPN_GUID: u16 = 256;
const Q_UPN_UPPER: u16 = 512;
/// (flag, rate out of 1024)
#[rustfmt::skip]
const QUIRKS: [(u16, u64); 9] = [
    (Q_LEVEL_STR, 31),
    (Q_LEVEL_LOW, 20),
    (Q_DUR_STR, 20),
    (Q_CODE_STR, 10),
    (Q_OFFSET, 31),
    (Q_NS9, 20),
    (Q_UPN_CASE, 31),
    (Q_UPN_ESC, 10),
    (Q_UPN_GUID, 3),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Browser,
    Rich,
    Unknown,
    Empty,
    Absent,
    /// Legacy protocol (index in `LEGACY`) and spelling (0 canonical, 1 variant, 2 odd case
    /// and spaces, 3 upper case).
    Legacy(u8, u8),
}

#[derive(Clone, Copy, Debug)]
enum Ip {
    V4([u8; 4]),
    /// Four leading groups, `::`, one trailing group (canonical form).
    V6([u16; 4], u16),
}

fn ip4(x: u64) -> Ip {
    Ip::V4([
        IPV4_FIRST[(x % 24) as usize],
        (x >> 8) as u8,
        (x >> 16) as u8,
        1 + ((x >> 24) % 254) as u8,
    ])
}

fn ip6(x: u64) -> Ip {
    const PREFIX: [u16; 4] = [0x2a01, 0x2603, 0x2001, 0x2a02];
    let g = |s: u32| 1 + ((x >> s) & 0xfffe) as u16;
    Ip::V6([PREFIX[(x % 4) as usize], g(8), g(24), g(40)], g(48))
}

fn put_ip(b: &mut Vec<u8>, ip: Ip) {
    match ip {
        Ip::V4(a) => {
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    b.push(b'.');
                }
                put_u64(b, u64::from(*x));
            }
        }
        Ip::V6(g, last) => {
            for x in g {
                let _ = write!(b, "{x:x}:");
            }
            let _ = write!(b, ":{last:x}");
        }
    }
}

/// One sign-in, drawn; rendering it again gives the same bytes (duplicates).
#[derive(Clone, Copy, Debug)]
struct Event {
    kind: u8,
    t: i64,
    id: u128,
    corr: u128,
    /// User index (>= users: an account that does not exist), or principal index.
    user: u32,
    client: Client,
    /// Empty: no `userAgent` field.
    ua: &'static str,
    os: &'static str,
    browser: &'static str,
    ip: Ip,
    asn: u32,
    code: u32,
    app: u8,
    loc: u8,
    quirks: u16,
    seed: u64,
}

struct Spray {
    i0: u64,
    i1: u64,
    n: u32,
    done: u32,
    t0: i64,
    dur: i64,
    ips: [Ip; 3],
    nips: u32,
    ua: &'static str,
    protos: [u8; 2],
    base: u32,
    stride: u32,
    hit_ok: u32,
    hit_blocked: u32,
    loc: u8,
    asn: u32,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A stride coprime with `n`: `(base + k * stride) % n` visits distinct values.
fn coprime(n: u32, h: u64) -> u32 {
    if n <= 2 {
        return 1;
    }
    let mut s = (h % u64::from(n)).max(1);
    while gcd(s, u64::from(n)) != 1 {
        s = s % (u64::from(n) - 1) + 1;
    }
    s as u32
}

/// The project's seeded sign-in generator. Yields diagnostic-shape records one at a time.
pub struct Generator {
    rng: ChaCha8Rng,
    seed: u64,
    users: u32,
    total: u64,
    next: u64,
    start: i64,
    span: i64,
    /// Share of legacy sign-ins among the records that are not spray attempts.
    p_legacy: f64,
    p_dup: f64,
    users_only: bool,
    tenant: u128,
    office: [Ip; 4],
    lpool: u32,
    lstride: u32,
    loff: u32,
    pol_ids: [u128; 25],
    sprays: Vec<Spray>,
    pending: Vec<(u64, Event)>,
    first: Vec<&'static str>,
    last: Vec<&'static str>,
    scratch: Vec<u8>,
}

impl Generator {
    pub fn new(args: &SynthArgs) -> Result<Self, SynthError> {
        Self::build(args, false)
    }

    /// `users_only`: no service-principal or managed-identity sign-ins (Log Analytics rows).
    fn build(args: &SynthArgs, users_only: bool) -> Result<Self, SynthError> {
        let start =
            time::parse(&args.start).ok_or_else(|| SynthError::Start(args.start.clone()))?;
        let span = parse_duration(&args.span).map_err(SynthError::Span)?;
        // A duplicate share of p is drawn as p / (1 - p) per fresh record: below one half.
        for (name, value, ok, max) in [
            (
                "legacy-share",
                args.legacy_share,
                args.legacy_share <= 1.0,
                "1",
            ),
            (
                "duplicate-share",
                args.duplicate_share,
                args.duplicate_share < 0.5,
                "(not including) 0.5",
            ),
        ] {
            if !(value >= 0.0 && ok) {
                return Err(SynthError::Share { name, value, max });
            }
        }
        if args.users == 0 {
            return Err(SynthError::NoUsers);
        }
        if args.batch == 0 {
            return Err(SynthError::NoBatch);
        }
        let seed = args.seed;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let users = args.users;
        let total = args.records;
        let tenant = v4(rng.gen());
        let office = [0u64, 1, 2, 3].map(|k| ip4(mix2(seed ^ 0x0ff1ce, k)));
        let lpool = (users / 50 + 3).min(users);
        let lstride = coprime(users, mix(seed ^ 0x1e6));
        let loff = rng.gen_range(0..users);
        // Spray bursts: each takes a window of record slots matching its event-time window.
        let mut sprays = Vec::new();
        // At most about 5 % of the records are spray attempts, whatever the size.
        let cap = total / (20 * u64::from(args.sprays.max(1)));
        for k in 0..args.sprays {
            let n = rng.gen_range(20..=500u64).min(cap).min(u64::from(users));
            if n == 0 {
                continue;
            }
            let dur = (rng.gen_range(10..=30i64) * 60_000_000_000).min(span);
            let t0 = start + rng.gen_range(0..=(span - dur));
            let slot = |t: i64| ((t - start) as i128 * total as i128 / span as i128) as u64;
            let i1 = slot(t0 + dur).max(slot(t0) + n).min(total);
            let i0 = slot(t0).min(i1 - n);
            let nips = rng.gen_range(1..=3u32);
            let ips = [0u64, 1, 2].map(|x| ip4(mix2(seed ^ u64::from(k) << 8, x ^ 0x5b)));
            let ua = match rng.gen_range(0..20) {
                0..=14 => "BAV2ROPC",
                15..=18 => "CBAinPROD",
                _ => "CBAinTAR",
            };
            let p0 = [P_IMAP, P_SMTP, P_EAS][rng.gen_range(0..3)];
            let p1 = if rng.gen_bool(0.3) {
                [P_IMAP, P_SMTP, P_EAS][rng.gen_range(0..3)]
            } else {
                p0
            };
            let n = n as u32;
            let hit_ok = rng.gen_range(0..n);
            let hit_blocked = if rng.gen_bool(0.5) {
                rng.gen_range(0..n)
            } else {
                u32::MAX
            };
            sprays.push(Spray {
                i0,
                i1,
                n,
                done: 0,
                t0,
                dur,
                ips,
                nips,
                ua,
                protos: [p0, p1],
                base: rng.gen_range(0..users),
                stride: coprime(users, rng.gen()),
                hit_ok,
                hit_blocked,
                loc: 18 + rng.gen_range(0..8u8),
                asn: ASN_HOSTING[rng.gen_range(0..ASN_HOSTING.len())],
            });
        }
        Ok(Generator {
            rng,
            seed,
            users,
            total,
            next: 0,
            start,
            span,
            p_legacy: args.legacy_share,
            p_dup: args.duplicate_share / (1.0 - args.duplicate_share),
            users_only,
            tenant,
            office,
            pol_ids: std::array::from_fn(|k| {
                v4(
                    u128::from(mix2(seed ^ 0xca, k as u64)) << 64
                        | u128::from(mix(k as u64 ^ seed)),
                )
            }),
            lpool,
            lstride,
            loff,
            sprays,
            pending: Vec::new(),
            first: FIRST.split(' ').collect(),
            last: LAST.split(' ').collect(),
            scratch: Vec::with_capacity(16 << 10),
        })
    }

    /// Appends one diagnostic-shape record (JSON object, no newline); false when done.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.next_event() {
            Some((ev, _)) => {
                self.render_record(&ev, buf);
                true
            }
            None => false,
        }
    }

    /// Moves past one record without rendering it (the stream is the same either way);
    /// false when done.
    pub fn skip_record(&mut self) -> bool {
        self.next_event().is_some()
    }

    /// The next sign-in and whether it repeats an earlier one.
    fn next_event(&mut self) -> Option<(Event, bool)> {
        if self.next >= self.total {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let mut pick = None;
        for (k, s) in self.sprays.iter().enumerate() {
            if i >= s.i0 && i < s.i1 && s.done < s.n {
                let (need, left) = (u64::from(s.n - s.done), s.i1 - i);
                if need >= left {
                    pick = Some(k);
                    break;
                }
                if pick.is_none() && self.rng.gen_range(0..left) < need {
                    pick = Some(k);
                }
            }
        }
        if pick.is_none() {
            if let Some(p) = self.pending.iter().position(|p| p.0 <= i) {
                return Some((self.pending.swap_remove(p).1, true));
            }
        }
        let ev = match pick {
            Some(k) => self.spray_event(k),
            None => self.fresh_event(i),
        };
        if self.p_dup > 0.0 && self.rng.gen_bool(self.p_dup.min(1.0)) {
            let due = i + 1 + self.rng.gen_range(0..200);
            self.pending.push((due, ev));
        }
        Some((ev, false))
    }

    fn quirks(&mut self) -> u16 {
        let mut r: u64 = self.rng.gen();
        let mut q = 0;
        for (flag, rate) in QUIRKS {
            if r & 1023 < rate {
                q |= flag;
            }
            r = r.rotate_right(7);
        }
        if r & 1 == 1 {
            q |= Q_UPN_UPPER;
        }
        q
    }

    fn blank(&mut self, kind: u8, t: i64) -> Event {
        Event {
            kind,
            t,
            id: v4(self.rng.gen()),
            corr: v4(self.rng.gen()),
            user: 0,
            client: Client::Absent,
            ua: "",
            os: "",
            browser: "",
            ip: self.office[0],
            asn: 0,
            code: 0,
            app: 0,
            loc: 0,
            quirks: self.quirks(),
            seed: self.rng.gen(),
        }
    }

    fn user_hash(&self, u: u32) -> u64 {
        mix2(self.seed ^ 0x5553_4552, u64::from(u))
    }

    /// Event time of slot `i`: even spread over the span, with delivery-order jitter.
    fn slot_time(&mut self, i: u64) -> i64 {
        let base = self.start + (self.span as i128 * i as i128 / self.total as i128) as i64;
        let j = (self.span / 200).clamp(1, 30_000_000_000);
        let t = (base + self.rng.gen_range(-j..=j)).clamp(self.start, self.start + self.span - 1);
        t - t.rem_euclid(100)
    }

    fn fresh_event(&mut self, i: u64) -> Event {
        let t = self.slot_time(i);
        if self.rng.gen_bool(self.p_legacy) {
            return self.legacy_event(t);
        }
        let r: f64 = self.rng.gen();
        let r = if self.users_only { 0.1 + 0.9 * r } else { r };
        if r < 0.1 {
            return self.principal_event(t);
        }
        let kind = if r < 0.298 { K_INTER } else { K_NONINT };
        // Half of the sign-ins come from a busy quarter of the users.
        let u = if self.rng.gen_bool(0.5) {
            self.rng.gen_range(0..self.users)
        } else {
            self.rng.gen_range(0..self.users.div_ceil(4))
        };
        let h = self.user_hash(u);
        let mut ev = self.blank(kind, t);
        ev.user = u;
        ev.loc = (h % HOME_LOCS) as u8;
        let roll = self.rng.gen_range(0..100);
        ev.client = match (kind, roll) {
            (K_INTER, 0) => Client::Unknown,
            (K_INTER, 1..=60) => Client::Browser,
            (K_INTER, _) => Client::Rich,
            (_, 0..=84) => Client::Rich,
            (_, 85..=96) => Client::Browser,
            (_, 97..=98) => Client::Unknown,
            _ => Client::Empty,
        };
        let prof = if ev.client == Client::Browser {
            BROWSERS[(h >> 8) as usize % BROWSERS.len()]
        } else {
            RICH[(h >> 12) as usize % RICH.len()]
        };
        let keep_ua = if kind == K_INTER { 98 } else { 60 };
        ev.ua = if self.rng.gen_range(0..100) < keep_ua {
            prof.0
        } else {
            ""
        };
        (ev.os, ev.browser) = (prof.1, prof.2);
        let where_ = self.rng.gen_range(0..100);
        (ev.ip, ev.asn) = match where_ {
            0..=54 if (h >> 20) % 7 == 0 => (ip6(mix(h ^ 3)), ASN_ISP[(h >> 40) as usize % 8]),
            0..=54 => (ip4(mix(h ^ 3)), ASN_ISP[(h >> 40) as usize % 8]),
            55..=89 => (
                self.office[(h >> 30) as usize % 4],
                ASN_ISP[self.seed as usize % 8],
            ),
            _ => (ip4(self.rng.gen()), ASN_ISP[self.rng.gen_range(0..8)]),
        };
        let c = self.rng.gen_range(0..1000);
        ev.code = if kind == K_INTER {
            match c {
                0..=849 => 0,
                850..=889 => 50140,
                890..=919 => 50074,
                920..=939 => 50076,
                940..=964 => 50126,
                965..=974 => 53003,
                975..=981 => 50055,
                982..=987 => 50057,
                _ => 50053,
            }
        } else {
            match c {
                0..=929 => 0,
                930..=949 => 70044,
                950..=969 => 700082,
                970..=979 => 50173,
                980..=987 => 50076,
                988..=993 => 50074,
                994..=996 => 53003,
                _ => 50126,
            }
        };
        ev.app = if kind == K_INTER {
            self.rng.gen_range(0..10)
        } else {
            [0, 1, 2, 3, 6, 7, 8, 9][self.rng.gen_range(0..8)]
        };
        ev
    }

    fn principal_event(&mut self, t: i64) -> Event {
        let mi = self.rng.gen_bool(0.3);
        let mut ev = self.blank(if mi { K_MI } else { K_SP }, t);
        ev.user = if mi {
            self.rng.gen_range(0..MI_NAMES.len() as u32)
        } else {
            self.rng.gen_range(0..SP_NAMES.len() as u32)
        };
        let h = mix2(
            self.seed ^ 0x5e41,
            u64::from(ev.user) + if mi { 100 } else { 0 },
        );
        const AZURE: [u8; 4] = [20, 40, 52, 13];
        let h2 = mix(h ^ u64::from(self.rng.gen_range(0..3u8)));
        ev.ip = Ip::V4([
            AZURE[(h2 % 4) as usize],
            (h2 >> 8) as u8,
            (h2 >> 16) as u8,
            1 + (h2 >> 24) as u8 % 250,
        ]);
        ev.asn = 8075;
        ev.loc = (h % HOME_LOCS) as u8;
        ev.client = if !mi && self.rng.gen_bool(0.5) {
            Client::Unknown
        } else {
            Client::Absent
        };
        ev.code = match (mi, self.rng.gen_range(0..100)) {
            (false, 97) | (false, 98) => 7000215,
            (false, 99) => 7000222,
            _ => 0,
        };
        ev.app = [0, 3, 5, 8][(h >> 8) as usize % 4];
        ev
    }

    /// A legacy sign-in by one of the tenant's stable legacy users.
    fn legacy_event(&mut self, t: i64) -> Event {
        let second_half = t >= self.start + self.span / 2;
        let mut j = 0;
        for _ in 0..4 {
            let r: f64 = self.rng.gen();
            j = (f64::from(self.lpool) * r * r) as u32;
            if second_half || !self.legacy_late(j) {
                break;
            }
        }
        let h = mix2(self.seed ^ 0x4c45_4741, u64::from(j));
        let mut p = 0u8;
        let mut w = (h & 0xffff) % 100;
        for (k, l) in LEGACY.iter().enumerate() {
            if w < u64::from(l.1) {
                p = k as u8;
                break;
            }
            w -= u64::from(l.1);
        }
        if self.rng.gen_bool(0.1) {
            p = ((u64::from(p) + 1 + (h >> 48) % 12) % 13) as u8;
        }
        let kind = if self.rng.gen_bool(0.85) {
            K_INTER
        } else {
            K_NONINT
        };
        let mut ev = self.blank(kind, t);
        ev.user = ((u64::from(self.loff) + u64::from(j) * u64::from(self.lstride))
            % u64::from(self.users)) as u32;
        ev.loc = (self.user_hash(ev.user) % HOME_LOCS) as u8;
        let uas = legacy_uas(p);
        ev.ua = uas[(h >> 16) as usize % uas.len()];
        ev.os = legacy_os(ev.ua);
        let form = match self.rng.gen_range(0..100) {
            0 => 2,
            1 => 3,
            r if r < 40 && !LEGACY[p as usize].2.is_empty() => 1,
            _ => 0,
        };
        ev.client = Client::Legacy(p, form);
        (ev.ip, ev.asn) = if self.rng.gen_bool(0.8) {
            if (h >> 24) % 4 == 0 {
                (
                    self.office[(h >> 28) as usize % 4],
                    ASN_ISP[self.seed as usize % 8],
                )
            } else {
                (ip4(mix(h ^ 7)), ASN_ISP[(h >> 36) as usize % 8])
            }
        } else {
            (ip4(mix(h ^ 8)), ASN_ISP[(h >> 44) as usize % 8])
        };
        ev.code = match self.rng.gen_range(0..100) {
            0..=81 => 0,
            82..=88 => 50126,
            89..=94 => 53003,
            95..=97 => 50053,
            98 => 50055,
            _ => 50057,
        };
        ev.app = if p >= 11 { APP_EXO_PS } else { APP_EXO };
        ev
    }

    fn legacy_late(&self, j: u32) -> bool {
        mix2(self.seed ^ 0x4c45_4741, u64::from(j)) >> 40 & 7 == 0
    }

    fn spray_event(&mut self, k: usize) -> Event {
        let s = &self.sprays[k];
        let j = s.done;
        let t = s.t0 + (s.dur as i128 * i128::from(j) / i128::from(s.n)) as i64;
        let (ip, ua, loc, asn) = (s.ips[(j % s.nips) as usize], s.ua, s.loc, s.asn);
        let p = s.protos[(j % 3 == 2) as usize];
        let mut code = match self.rng.gen_range(0..100) {
            0..=87 => 50126,
            88..=94 => 50053,
            _ => 50034,
        };
        if j == s.hit_ok {
            code = 0;
        } else if j == s.hit_blocked {
            code = 53003;
        }
        let user = if code == 50034 {
            self.users.saturating_add(self.rng.gen_range(0..100_000))
        } else {
            ((u64::from(s.base) + u64::from(j) * u64::from(s.stride)) % u64::from(self.users))
                as u32
        };
        self.sprays[k].done += 1;
        let t = (t + self.rng.gen_range(0..2_000_000_000i64) / 100 * 100)
            .min(self.start + self.span - 100);
        let mut ev = self.blank(K_INTER, t);
        (ev.user, ev.ip, ev.ua, ev.loc, ev.asn, ev.code) = (user, ip, ua, loc, asn, code);
        ev.client = Client::Legacy(p, if self.rng.gen_bool(0.02) { 2 } else { 0 });
        ev.app = APP_EXO;
        ev
    }
}

fn legacy_os(ua: &str) -> &'static str {
    if ua.contains("iPhone") || ua.contains("iPad") {
        "Ios"
    } else if ua.contains("Android") || ua.contains("SAMSUNG") {
        "Android"
    } else if ua.contains("Windows") {
        "Windows10"
    } else if ua.contains("Mac") {
        "MacOs"
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

const MS_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn put_kv(b: &mut Vec<u8>, key: &str, val: &str) {
    b.push(b'"');
    put(b, key);
    put(b, "\":");
    put_q(b, val);
    b.push(b',');
}

fn put_kg(b: &mut Vec<u8>, key: &str, g: u128) {
    b.push(b'"');
    put(b, key);
    put(b, "\":\"");
    put_guid(b, g);
    put(b, "\",");
}

/// Replaces a trailing comma by `close` (or appends it).
fn close(b: &mut Vec<u8>, close: u8) {
    if b.last() == Some(&b',') {
        b.pop();
    }
    b.push(close);
}

/// Per-record choices shared by the slots of one record.
struct Ctx {
    d: Sm,
    uh: u64,
    user: bool,
    ghost: bool,
    legacy: bool,
    mfa: bool,
    managed: bool,
    graph: bool,
}

// Templates: `~x` is slot `x` of `Generator::slot`.
const RECORD: &str = concat!(
    r#"{"time":"~Z","resourceId":"/tenants/~T/providers/Microsoft.aadiam","#,
    r#""operationName":"Sign-in activity","operationVersion":"1.0","category":"~g","#,
    r#""tenantId":"~T","resultType":"~E",~F"durationMs":~f,"callerIpAddress":"~p","#,
    r#""correlationId":"~r","identity":"~n",~V"location":"~O","properties":~B}"#,
);
const SIGNIN: &str = concat!(
    r#"{"id":"~i","createdDateTime":"~c","userDisplayName":"~n","userPrincipalName":"~u","#,
    r#""userId":"~U",~a"ipAddress":"~p","status":{"errorCode":~e},~C~A"deviceDetail":{~D},"#,
    r#""location":{~L},"mfaDetail":~m,"correlationId":"~r",~P"originalRequestId":"~i","#,
    r#""isInteractive":~I,"tokenIssuerName":"","tokenIssuerType":"AzureAD","#,
    r#""authenticationProcessingDetails":[~Y],"networkLocationDetails":[~N],"#,
    r#""processingTimeInMilliseconds":~t,~R"resourceDisplayName":"~x","resourceId":"~X","#,
    r#""resourceTenantId":"~T","homeTenantId":"~T","authenticationDetails":[~d],"#,
    r#""authenticationRequirementPolicies":[~q],"authenticationRequirement":"~Q",~S"#,
    r#""flaggedForReview":false,"isTenantRestricted":false,"autonomousSystemNumber":~s,"#,
    r#""crossTenantAccessType":"none","privateLinkDetails":{},"ssoExtensionVersion":"","#,
    r#""uniqueTokenIdentifier":"~k","incomingTokenType":"~j","authenticationProtocol":"~J","#,
    r#""sessionLifetimePolicies":[~l],"authenticationContextClassReferences":[],"#,
    r#""appServicePrincipalId":null,"globalSecureAccessIpAddress":"","#,
    r#""isThroughGlobalSecureAccess":false,"tokenProtectionStatusDetails":"#,
    r#"{"signInSessionStatus":"unbound","signInSessionStatusCode":1002},"#,
    r#""clientCredentialType":"~K",~M"appOwnerTenantId":"~o","#,
    r#""resourceOwnerTenantId":"f8cdef31-a31e-4b4a-93e4-5f571e91255a","sessionId":"~z"~G}"#,
);
const STEP_PASSWORD: &str = concat!(
    r#"{"authenticationStepDateTime":"~w","authenticationMethod":"Password","#,
    r#""authenticationMethodDetail":"Password in the cloud","succeeded":"#,
);
const STEP_OK: &str = concat!(
    r#"true,"authenticationStepResultDetail":"Correct password","#,
    r#""authenticationStepRequirement":"Primary authentication","StatusSequence":0,"#,
    r#""RequestSequence":1}"#,
);
const STEP_BAD: &str = concat!(
    r#"false,"authenticationStepResultDetail":"Invalid username or password or Invalid "#,
    r#"on-premise username or password.","authenticationStepRequirement":"#,
    r#""Primary authentication","StatusSequence":0,"RequestSequence":1}"#,
);
const STEP_MFA: &str = concat!(
    r#",{"authenticationStepDateTime":"~w","authenticationMethod":"Mobile app notification","#,
    r#""authenticationMethodDetail":"Microsoft Authenticator","succeeded":true,"#,
    r#""authenticationStepResultDetail":"MFA successfully completed","#,
    r#""authenticationStepRequirement":"Multifactor authentication","StatusSequence":0,"#,
    r#""RequestSequence":1}"#,
);
const STEP_PREVIOUS: &str = concat!(
    r#"{"authenticationStepDateTime":"~w","authenticationMethod":"Previously satisfied","#,
    r#""succeeded":true,"authenticationStepResultDetail":"First factor requirement "#,
    r#"satisfied by claim in the token","authenticationStepRequirement":"#,
    r#""Primary authentication","StatusSequence":0,"RequestSequence":0}"#,
);
const NAMED_NETWORKS: &str = concat!(
    r#"{"networkType":"namedNetwork","networkNames":["Contoso HQ egress"]},"#,
    r#"{"networkType":"trustedNamedLocation","networkNames":["Corporate networks"]}"#,
);
const RISKY: &str = concat!(
    r#""riskDetail":"none","riskLevelAggregated":"low","riskLevelDuringSignIn":"low","#,
    r#""riskState":"atRisk","riskEventTypes":["unfamiliarFeatures"],"#,
    r#""riskEventTypes_v2":["unfamiliarFeatures"],"#,
);
const NOT_RISKY: &str = concat!(
    r#""riskDetail":"none","riskLevelAggregated":"none","riskLevelDuringSignIn":"none","#,
    r#""riskState":"none","riskEventTypes":[],"riskEventTypes_v2":[],"#,
);
#[rustfmt::skip]
const MSAL: [&str; 4] = [
    "MSAL.NET 4.61.3.0 Platform: .NET FW", "MSAL.iOS 1.2.22 Platform: iOS",
    "MSAL.Android 5.4.0 Platform: Android", "MSAL.Python 1.28.0 Platform: Python",
];

impl Generator {
    fn names(&self, u: u32) -> (&'static str, &'static str, u32) {
        let f = u % 80;
        let q = u / 80;
        (
            self.first[f as usize],
            self.last[((q + f * 17) % 80) as usize],
            q / 80,
        )
    }

    fn user_id(&self, u: u32) -> u128 {
        let h = self.user_hash(u);
        v4(u128::from(mix(h ^ 1)) << 64 | u128::from(mix(h ^ 2)))
    }

    fn put_display(&self, b: &mut Vec<u8>, ev: &Event) {
        match ev.kind {
            K_SP => put(b, SP_NAMES[ev.user as usize]),
            K_MI => put(b, MI_NAMES[ev.user as usize]),
            _ if ev.user >= self.users => {}
            _ => {
                let (f, l, _) = self.names(ev.user);
                b.push(f.as_bytes()[0].to_ascii_uppercase());
                put(b, &f[1..]);
                b.push(b' ');
                b.push(l.as_bytes()[0].to_ascii_uppercase());
                put(b, &l[1..]);
            }
        }
    }

    /// The UPN string content (JSON-escaped form), with the case and escape quirks.
    fn put_upn(&self, b: &mut Vec<u8>, ev: &Event) {
        if ev.kind >= K_SP {
            return;
        }
        if ev.quirks & Q_UPN_GUID != 0 && ev.user < self.users {
            return put_guid(b, self.user_id(ev.user));
        }
        let (f, l, n) = self.names(ev.user);
        let from = b.len();
        put(b, f);
        b.push(b'.');
        put(b, l);
        if n > 0 {
            put_u64(b, u64::from(n));
        }
        let at = b.len();
        put(b, "@contoso.com");
        if ev.quirks & Q_UPN_CASE != 0 {
            if ev.quirks & Q_UPN_UPPER != 0 {
                b[from..].make_ascii_uppercase();
            } else {
                for i in [from, from + f.len() + 1, at + 1] {
                    b[i] = b[i].to_ascii_uppercase();
                }
            }
        }
        if ev.quirks & Q_UPN_ESC != 0 {
            b.splice(at..at + 1, *b"\\u0040");
        }
    }

    /// The `clientAppUsed` string content (no quotes), with the spelling quirks.
    fn put_client(&self, b: &mut Vec<u8>, ev: &Event) {
        let from = b.len();
        match ev.client {
            Client::Absent | Client::Empty => {}
            Client::Browser => put(b, "Browser"),
            Client::Rich => put(b, "Mobile Apps and Desktop clients"),
            Client::Unknown => put(b, "Unknown"),
            Client::Legacy(p, 1) => put(b, LEGACY[p as usize].2),
            Client::Legacy(p, 2) => {
                put(b, " ");
                put(b, LEGACY[p as usize].0);
                b[from..].make_ascii_lowercase();
                put(b, " ");
            }
            Client::Legacy(p, form) => {
                put(b, LEGACY[p as usize].0);
                if form == 3 {
                    b[from..].make_ascii_uppercase();
                }
            }
        }
    }

    /// One diagnostic-shape record (Event Hubs / storage archive).
    fn render_record(&self, ev: &Event, b: &mut Vec<u8>) {
        self.fill(RECORD, ev, &mut self.ctx(ev, false), b);
    }

    /// The signIn resource: `properties` of a record, a Graph page item, a portal item.
    fn render_signin(&self, ev: &Event, b: &mut Vec<u8>, graph: bool) {
        self.fill(SIGNIN, ev, &mut self.ctx(ev, graph), b);
    }

    fn ctx(&self, ev: &Event, graph: bool) -> Ctx {
        let mut d = Sm(ev.seed);
        let user = ev.kind < K_SP;
        let legacy = matches!(ev.client, Client::Legacy(..));
        let uh = if user {
            self.user_hash(ev.user)
        } else {
            mix2(
                self.seed ^ 0x5e41,
                u64::from(ev.user) + if ev.kind == K_MI { 100 } else { 0 },
            )
        };
        Ctx {
            uh,
            user,
            ghost: user && ev.user >= self.users,
            legacy,
            mfa: ev.kind == K_INTER && !legacy && ev.code == 0 && d.pct(55),
            managed: user && !legacy && (uh >> 50) % 10 < 7,
            graph,
            d,
        }
    }

    /// Writes `tpl`, replacing each `~x` by slot `x`.
    fn fill(&self, tpl: &str, ev: &Event, x: &mut Ctx, b: &mut Vec<u8>) {
        let t = tpl.as_bytes();
        let mut from = 0;
        for i in memchr::memchr_iter(b'~', t) {
            b.extend_from_slice(&t[from..i]);
            self.slot(t[i + 1], ev, x, b);
            from = i + 2;
        }
        b.extend_from_slice(&t[from..]);
    }

    fn slot(&self, c: u8, ev: &Event, x: &mut Ctx, b: &mut Vec<u8>) {
        let app = APPS[ev.app as usize];
        let uh = x.uh;
        match c {
            b'Z' => put_time(b, ev.t, 7, 0, true),
            b'w' => put_time(b, ev.t, 7, 0, false),
            b'c' => {
                let off = if ev.quirks & Q_OFFSET != 0 { -300 } else { 0 };
                put_time(b, ev.t, if ev.quirks & Q_NS9 != 0 { 9 } else { 7 }, off, false);
            }
            b'T' => put_guid(b, self.tenant),
            b'g' => put(b, CATS[ev.kind as usize]),
            b'E' => put_u64(b, u64::from(ev.code)),
            b'F' => {
                put(b, if ev.kind >= K_SP { "\"resultSignature\":\"SUCCESS\"," } else { "\"resultSignature\":\"None\"," });
                if ev.code != 0 {
                    put_kv(b, "resultDescription", error_info(ev.code).0);
                }
            }
            b'f' => put(b, if ev.quirks & Q_DUR_STR != 0 { "\"0\"" } else { "0" }),
            b'p' => put_ip(b, ev.ip),
            b'r' => put_guid(b, ev.corr),
            b'n' if x.user => self.put_display(b, ev),
            b'V' => put(b, ["\"Level\":4,", "\"Level\":\"4\",", "\"level\":\"Informational\",", "\"level\":\"Informational\","][(ev.quirks & 3) as usize]),
            b'O' => put(b, LOCS[ev.loc as usize].2),
            b'B' => self.render_signin(ev, b, false),
            b'i' => put_guid(b, ev.id),
            b'u' => self.put_upn(b, ev),
            b'U' if x.user && !x.ghost => put_guid(b, self.user_id(ev.user)),
            b'a' if x.user => {
                put_kv(b, "appId", app.0);
                put_kv(b, "appDisplayName", app.1);
            }
            b'a' => {
                put_kg(b, "appId", v4(u128::from(uh) << 64 | u128::from(mix(uh))));
                put(b, "\"appDisplayName\":\"");
                self.put_display(b, ev);
                put(b, "\",");
            }
            b'e' => {
                let code = u64::from(ev.code);
                if ev.quirks & Q_CODE_STR != 0 {
                    b.push(b'"');
                    put_u64(b, code);
                    b.push(b'"');
                } else {
                    put_u64(b, code);
                }
                let (reason, details) = error_info(ev.code);
                if ev.code != 0 {
                    put(b, ",\"failureReason\":");
                    put_q(b, reason);
                }
                if !details.is_empty() && (ev.code != 0 || x.d.pct(30)) {
                    put(b, ",\"additionalDetails\":");
                    put_q(b, details);
                }
            }
            b'C' if ev.client != Client::Absent => {
                put(b, "\"clientAppUsed\":\"");
                self.put_client(b, ev);
                put(b, "\",");
            }
            b'h' => self.put_client(b, ev),
            b'H' => put_esc(b, ev.ua.as_bytes()),
            b'W' => put_esc(b, error_info(ev.code).0.as_bytes()),
            b'y' if ev.kind == K_INTER => put(b, "SigninLogs"),
            b'y' => put(b, "AADNonInteractiveUserSignInLogs"),
            b'A' if !ev.ua.is_empty() => put_kv(b, "userAgent", ev.ua),
            b'D' => {
                put(b, "\"deviceId\":\"");
                if x.managed {
                    put_guid(b, v4(u128::from(mix(uh ^ 5)) << 64 | u128::from(mix(uh ^ 6))));
                    put(b, "\",\"displayName\":\"");
                    put(b, match ev.os { "Windows10" => "LAPTOP-", "MacOs" => "MBP-", _ => "PHONE-" });
                    for s in 0..7 {
                        b.push(HEX[((uh >> (s * 5)) & 15) as usize].to_ascii_uppercase());
                    }
                }
                put(b, "\",");
                put_kv(b, "operatingSystem", ev.os);
                put_kv(b, "browser", ev.browser);
                if x.managed {
                    put(b, "\"isCompliant\":true,\"isManaged\":true,\"trustType\":");
                    put(b, if (uh >> 54) % 3 == 0 { "\"Hybrid Azure AD joined\"" } else { "\"Azure AD joined\"" });
                }
                if b.last() == Some(&b',') {
                    b.pop();
                }
            }
            b'L' => {
                let loc = LOCS[ev.loc as usize];
                put_kv(b, "city", loc.0);
                put_kv(b, "state", loc.1);
                put_kv(b, "countryOrRegion", loc.2);
                put(b, "\"geoCoordinates\":{\"latitude\":");
                put(b, loc.3);
                put_u64(b, 100_000 + (uh >> 8) % 900_000);
                put(b, ",\"longitude\":");
                put(b, loc.4);
                put_u64(b, 100_000 + (uh >> 28) % 900_000);
                b.push(b'}');
            }
            b'm' if x.mfa => put(b, "{\"authMethod\":\"Mobile app notification\",\"authDetail\":null}"),
            b'm' => put(b, "{}"),
            b'P' => self.render_policies(ev, &mut x.d, b),
            b'I' => put(b, if ev.kind == K_INTER { "true" } else { "false" }),
            b'Y' => {
                if ev.kind == K_INTER && !x.legacy {
                    put(b, "{\"key\":\"Login Hint Present\",\"value\":\"True\"},");
                }
                if ev.client == Client::Rich || !x.user {
                    put(b, "{\"key\":\"Azure AD App Authentication Library\",\"value\":\"Family: MSAL Library: ");
                    put(b, MSAL[(uh >> 3) as usize % MSAL.len()]);
                    put(b, "\"},");
                }
                let tls = if x.legacy && x.d.pct(20) { "True" } else { "False" };
                put(b, "{\"key\":\"Legacy TLS (TLS 1.0, 1.1, 3DES)\",\"value\":\"");
                put(b, tls);
                put(b, "\"},{\"key\":\"Oauth Scope Info\",\"value\":\"");
                if x.user && !x.legacy {
                    put(b, app.4);
                }
                put(b, "\"},{\"key\":\"Is CAE Token\",\"value\":\"");
                put(b, if x.d.pct(40) { "True" } else { "False" });
                put(b, "\"},{\"key\":\"Root Key Type\",\"value\":\"Unknown\"}");
            }
            b'N' if self.office.iter().any(|o| matches!((o, ev.ip), (Ip::V4(a), Ip::V4(c)) if *a == c)) => put(b, NAMED_NETWORKS),
            b't' => put_u64(b, 20 + x.d.below(900)),
            b'R' if x.user && !x.legacy && x.d.pct(2) => put(b, RISKY),
            b'R' => put(b, NOT_RISKY),
            b'x' => put(b, app.3),
            b'X' => put(b, app.2),
            b'd' if x.legacy || (ev.kind == K_INTER && ev.code != 0) => {
                self.fill(STEP_PASSWORD, ev, x, b);
                put(b, if matches!(ev.code, 0 | 53003 | 50074 | 50076 | 50140) { STEP_OK } else { STEP_BAD });
            }
            b'd' if x.mfa => {
                self.fill(STEP_PASSWORD, ev, x, b);
                put(b, STEP_OK);
                self.fill(STEP_MFA, ev, x, b);
            }
            b'd' if x.user && (ev.kind == K_INTER || x.d.pct(40)) => self.fill(STEP_PREVIOUS, ev, x, b),
            b'q' if x.mfa => put(b, "{\"requirementProvider\":\"multiConditionalAccess\",\"detail\":\"Conditional Access\"}"),
            b'Q' => put(b, if x.mfa { "multiFactorAuthentication" } else { "singleFactorAuthentication" }),
            b'S' if x.user => put(b, if (uh >> 58) % 20 == 0 { "\"servicePrincipalId\":\"\",\"userType\":\"Guest\"," } else { "\"servicePrincipalId\":\"\",\"userType\":\"Member\"," }),
            b'S' => {
                put_kg(b, "servicePrincipalId", v4(u128::from(mix(uh ^ 9)) << 64 | u128::from(uh)));
                put(b, "\"servicePrincipalName\":\"");
                self.put_display(b, ev);
                put(b, "\",");
            }
            b's' => put_u64(b, u64::from(ev.asn)),
            b'k' => {
                let (p, q) = (x.d.next(), x.d.next());
                for s in 0..22 {
                    let v = if s < 11 { p >> (s * 6) } else { q >> ((s - 11) * 6) };
                    b.push(B64[(v & 63) as usize]);
                }
            }
            b'j' => put(b, match ev.kind {
                K_NONINT if !x.legacy && (uh >> 5) % 2 == 0 => "refreshToken",
                K_NONINT if !x.legacy => "primaryRefreshToken",
                _ => "none",
            }),
            b'J' => put(b, if x.legacy { "ropc" } else { "none" }),
            b'l' if x.mfa && x.d.pct(50) => put(b, "{\"expirationRequirement\":\"signInFrequencyPeriodicReauthentication\",\"detail\":\"Sign-in frequency periodic reauthentication\"}"),
            b'K' => put(b, match ev.kind {
                K_SP if (uh >> 7) % 2 == 0 => "clientSecret",
                K_SP => "certificate",
                K_MI => "managedIdentity",
                _ => "none",
            }),
            b'M' if ev.kind == K_MI => {
                put(b, "\"managedServiceIdentity\":{\"msiType\":\"systemAssigned\",\"associatedResourceId\":\"/subscriptions/");
                put_guid(b, v4(u128::from(self.seed) << 64 | 0x5ab5));
                put(b, "/resourceGroups/rg-contoso-prod/providers/Microsoft.Compute/virtualMachines/");
                self.put_display(b, ev);
                put(b, "\"},");
            }
            b'o' if x.user => put(b, MS_TENANT),
            b'z' => put_guid(b, v4(u128::from(mix(ev.seed)) << 64 | u128::from(uh))),
            b'G' if x.graph => {
                put(b, ",\"signInEventTypes\":[\"");
                put(b, ["interactiveUser", "nonInteractiveUser", "servicePrincipal", "managedIdentity"][ev.kind as usize]);
                put(b, "\"]");
            }
            _ => {}
        }
    }

    /// `conditionalAccessStatus` and `appliedConditionalAccessPolicies`.
    fn render_policies(&self, ev: &Event, d: &mut Sm, b: &mut Vec<u8>) {
        const RESULTS: [&str; 8] = [
            "notEnabled",
            "notApplied",
            "success",
            "failure",
            "reportOnlyNotApplied",
            "reportOnlySuccess",
            "reportOnlyFailure",
            "reportOnlyInterrupted",
        ];
        let user = ev.kind < K_SP;
        let legacy = matches!(ev.client, Client::Legacy(..));
        let n = if user {
            5 + d.below(3) + d.below(3) + if d.pct(12) { d.below(16) } else { 0 }
        } else {
            5 + d.below(4)
        };
        let n = n.min(POLICIES.len() as u64) as usize;
        let mut res = [0u8; 25];
        for (k, r) in res.iter_mut().enumerate().take(n) {
            *r = match POLICIES[k].1 {
                b'D' => 0,
                b'R' => [4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 7][d.below(14) as usize],
                _ if !user => 1,
                _ if k == POL_BLOCK_LEGACY => {
                    if legacy && ev.code == 53003 {
                        3
                    } else {
                        1
                    }
                }
                _ if !legacy && ev.code == 53003 && k == 4 => 3,
                _ if legacy => 1,
                _ => {
                    if d.pct(45) {
                        2
                    } else {
                        1
                    }
                }
            };
        }
        let status = if res.contains(&3) {
            "failure"
        } else if res.contains(&2) {
            "success"
        } else {
            "notApplied"
        };
        put_kv(b, "conditionalAccessStatus", status);
        put(b, "\"appliedConditionalAccessPolicies\":[");
        for (k, &r) in res.iter().enumerate().take(n) {
            let (name, _, grant, session) = POLICIES[k];
            put(b, "{");
            put_kg(b, "id", self.pol_ids[k]);
            put_kv(b, "displayName", name);
            put(b, "\"enforcedGrantControls\":");
            put(b, grant);
            put(b, ",\"enforcedSessionControls\":");
            put(b, session);
            put(b, ",\"result\":\"");
            put(b, RESULTS[r as usize]);
            let applied = matches!(r, 2 | 3 | 5 | 6 | 7);
            let (sat, not) = match r {
                0 => (0, 0),
                _ if applied => (if k == POL_BLOCK_LEGACY { 19 } else { 3 }, 0),
                _ => (1 + 2 * d.below(2), [2, 4, 8, 16, 32][d.below(5) as usize]),
            };
            put(b, "\",\"conditionsSatisfied\":");
            put_u64(b, sat);
            put(b, ",\"conditionsNotSatisfied\":");
            put_u64(b, not);
            put(b, ",\"includeRulesSatisfied\":[");
            if r != 0 {
                put(b, "{\"conditionalAccessCondition\":\"application\",\"ruleSatisfied\":\"allApps\"}");
            }
            if applied || sat == 3 {
                put(
                    b,
                    ",{\"conditionalAccessCondition\":\"users\",\"ruleSatisfied\":\"allUsers\"}",
                );
            }
            if applied && k == POL_BLOCK_LEGACY {
                put(
                    b,
                    ",{\"conditionalAccessCondition\":\"clientType\",\"ruleSatisfied\":\"other\"}",
                );
            }
            put(b, "],\"excludeRulesSatisfied\":[");
            if r != 0 && !applied && not == 2 {
                put(
                    b,
                    "{\"conditionalAccessCondition\":\"users\",\"ruleSatisfied\":\"groupId\"}",
                );
            } else if r != 0 && !applied && not == 8 {
                put(b, "{\"conditionalAccessCondition\":\"location\",\"ruleSatisfied\":\"allTrustedLocations\"}");
            }
            put(b, "],\"sessionControlsNotSatisfied\":[]");
            if grant.contains("AuthenticationStrength") {
                put(b, ",\"authenticationStrength\":{\"authenticationStrengthId\":\"00000000-0000-0000-0000-000000000004\",\"displayName\":\"Phishing-resistant MFA\",\"authenticationStrengthResult\":\"");
                put(b, if applied { "satisfied\"}" } else { "notSet\"}" });
            }
            put(b, "},");
        }
        close(b, b']');
        b.push(b',');
    }
}

/// Index just past the string that starts at `s[i]` (a quote).
fn skip_str(s: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while let Some(k) = memchr::memchr2(b'"', b'\\', &s[j..]) {
        if s[j + k] == b'\\' {
            j += k + 2;
        } else {
            return j + k + 1;
        }
    }
    s.len()
}

/// Length of the JSON value at the start of `s` (our own compact output).
fn extent(s: &[u8]) -> usize {
    let (mut depth, mut i) = (0usize, 0);
    while i < s.len() {
        match s[i] {
            b'"' => {
                i = skip_str(s, i);
                if depth == 0 {
                    return i;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    s.len()
}

/// The value of `"key":` in our own compact signIn JSON, searched from `*pos` (columns are
/// read in the order the keys are written), then from the start.
fn value_of<'a>(json: &'a [u8], key: &str, pos: &mut usize) -> &'a [u8] {
    let mut pat = [0u8; 48];
    let n = key.len() + 3;
    pat[0] = b'"';
    pat[1..n - 2].copy_from_slice(key.as_bytes());
    pat[n - 2..n].copy_from_slice(b"\":");
    let found = memchr::memmem::find(&json[*pos..], &pat[..n]).map(|p| p + *pos);
    match found.or_else(|| memchr::memmem::find(json, &pat[..n])) {
        Some(p) => {
            let v = &json[p + n..];
            let len = extent(v);
            *pos = p + n + len;
            &v[..len]
        }
        None => b"null",
    }
}

const LA_HEAD: &str = concat!(
    r#"{"TenantId":"~T","SourceSystem":"Azure AD","TimeGenerated":"~Z","#,
    r#""OperationName":"Sign-in activity","OperationVersion":"1.0","Category":"~g","#,
    r#""ResultType":"~E","ResultSignature":"None","ResultDescription":"~W","DurationMs":0,"#,
    r#""Level":"4","Location":"~O","Identity":"~n","CreatedDateTime":"~Z","#,
    r#""UserDisplayName":"~n","UserPrincipalName":"~u","ClientAppUsed":"~h","UserAgent":"~H","#,
);
const LA_TAIL: &str = r#""ResourceId":"/tenants/~T/providers/Microsoft.aadiam","Type":"~y"}"#;

/// Log Analytics columns read from the signIn JSON, in its key order: column, signIn key, and
/// 0 = value as is, 1 = JSON text, 2 = JSON text in the non-interactive table only.
#[rustfmt::skip]
const LA_COLUMNS: [(&str, &str, u8); 31] = [
    ("Id", "id", 0), ("UserId", "userId", 0), ("AppId", "appId", 0),
    ("AppDisplayName", "appDisplayName", 0), ("IPAddress", "ipAddress", 0), ("Status", "status", 2),
    ("DeviceDetail", "deviceDetail", 2), ("LocationDetails", "location", 2),
    ("MfaDetail", "mfaDetail", 2), ("CorrelationId", "correlationId", 0),
    ("ConditionalAccessStatus", "conditionalAccessStatus", 0),
    ("ConditionalAccessPolicies", "appliedConditionalAccessPolicies", 2),
    ("IsInteractive", "isInteractive", 0),
    ("AuthenticationProcessingDetails", "authenticationProcessingDetails", 2),
    ("NetworkLocationDetails", "networkLocationDetails", 1), ("RiskDetail", "riskDetail", 0),
    ("RiskLevelAggregated", "riskLevelAggregated", 0),
    ("RiskLevelDuringSignIn", "riskLevelDuringSignIn", 0), ("RiskState", "riskState", 0),
    ("RiskEventTypes", "riskEventTypes", 1), ("ResourceDisplayName", "resourceDisplayName", 0),
    ("ResourceIdentity", "resourceId", 0), ("HomeTenantId", "homeTenantId", 0),
    ("AuthenticationDetails", "authenticationDetails", 1),
    ("AuthenticationRequirement", "authenticationRequirement", 0), ("UserType", "userType", 0),
    ("AutonomousSystemNumber", "autonomousSystemNumber", 0),
    ("UniqueTokenIdentifier", "uniqueTokenIdentifier", 0),
    ("IncomingTokenType", "incomingTokenType", 0),
    ("AuthenticationProtocol", "authenticationProtocol", 0), ("SessionId", "sessionId", 0),
];

impl Generator {
    /// One Log Analytics row (`SigninLogs` or `AADNonInteractiveUserSignInLogs`).
    fn render_la(&mut self, ev: &Event, b: &mut Vec<u8>) {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        self.render_signin(ev, &mut s, false);
        let inter = ev.kind == K_INTER;
        let mut x = self.ctx(ev, false);
        self.fill(LA_HEAD, ev, &mut x, b);
        let mut pos = 0;
        for (name, key, mode) in LA_COLUMNS {
            let v = value_of(&s, key, &mut pos);
            b.push(b'"');
            put(b, name);
            put(b, "\":");
            if mode == 1 || (mode == 2 && !inter) {
                b.push(b'"');
                put_esc(b, v);
                b.push(b'"');
            } else {
                b.extend_from_slice(v);
            }
            b.push(b',');
        }
        self.fill(LA_TAIL, ev, &mut x, b);
        self.scratch = s;
    }
}

fn newline(out: &mut Vec<u8>, depth: usize) {
    out.push(b'\n');
    out.resize(out.len() + 2 * depth, b' ');
}

/// Re-indents compact JSON with 2 spaces per level, starting at `depth`.
fn pretty(src: &[u8], mut depth: usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        match c {
            b'"' => {
                let j = skip_str(src, i);
                out.extend_from_slice(&src[i..j]);
                i = j;
                continue;
            }
            b'{' | b'[' if matches!(src.get(i + 1), Some(b'}' | b']')) => {
                out.extend_from_slice(&src[i..i + 2]);
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                out.push(c);
                newline(out, depth);
            }
            b'}' | b']' => {
                depth -= 1;
                newline(out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(c),
        }
        i += 1;
    }
}

/// Largest Event Hubs message body written (Event Hubs allows 1 MB).
const MAX_MESSAGE: usize = 1_000_000;
const GRAPH_CONTEXT: &str = "{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns\",\"value\":[";

/// Writes `args.records` sign-in records in `args.format` to `out`.
pub fn write(args: &SynthArgs, out: &mut dyn Write) -> io::Result<SynthSummary> {
    let fmt = args.format;
    let mut g = Generator::build(args, fmt == SynthFormat::LogAnalytics)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut sum = SynthSummary::default();
    let mut buf: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut rec: Vec<u8> = Vec::with_capacity(32 << 10);
    let (mut in_batch, mut msg_bytes, mut page) = (0usize, 0usize, 0u64);
    let graph_close = |buf: &mut Vec<u8>, page: u64, more: bool| {
        if more {
            put(
                buf,
                "],\"@odata.nextLink\":\"https://graph.microsoft.com/v1.0/auditLogs/signIns?$top=",
            );
            put_u64(buf, args.batch as u64);
            put(buf, "&$skiptoken=");
            for x in [mix2(args.seed, page), mix(page ^ 0x7e)] {
                let _ = write!(buf, "{x:016x}");
            }
            put(buf, "\"}\n");
        } else {
            put(buf, "]}\n");
        }
    };
    if fmt == SynthFormat::Portal {
        buf.push(b'[');
    }
    while let Some((ev, dup)) = g.next_event() {
        sum.records += 1;
        sum.duplicates += u64::from(dup);
        match fmt {
            SynthFormat::Ndjson => {
                g.render_record(&ev, &mut buf);
                buf.push(b'\n');
            }
            SynthFormat::LogAnalytics => {
                g.render_la(&ev, &mut buf);
                buf.push(b'\n');
            }
            SynthFormat::Envelope => {
                rec.clear();
                g.render_record(&ev, &mut rec);
                if in_batch > 0
                    && (in_batch >= args.batch || msg_bytes + rec.len() + 3 > MAX_MESSAGE)
                {
                    put(&mut buf, "]}\n");
                    in_batch = 0;
                }
                if in_batch == 0 {
                    put(&mut buf, "{\"records\":[");
                    msg_bytes = 12;
                } else {
                    buf.push(b',');
                }
                buf.extend_from_slice(&rec);
                msg_bytes += rec.len() + 1;
                in_batch += 1;
            }
            SynthFormat::Graph => {
                if in_batch >= args.batch {
                    graph_close(&mut buf, page, true);
                    in_batch = 0;
                    page += 1;
                }
                if in_batch == 0 {
                    put(&mut buf, GRAPH_CONTEXT);
                } else {
                    buf.push(b',');
                }
                g.render_signin(&ev, &mut buf, true);
                in_batch += 1;
            }
            SynthFormat::Portal => {
                rec.clear();
                g.render_signin(&ev, &mut rec, true);
                put(&mut buf, if sum.records == 1 { "\n  " } else { ",\n  " });
                pretty(&rec, 1, &mut buf);
            }
        }
        if buf.len() >= 1 << 20 {
            out.write_all(&buf)?;
            sum.bytes += buf.len() as u64;
            buf.clear();
        }
    }
    match fmt {
        SynthFormat::Envelope if in_batch > 0 => put(&mut buf, "]}\n"),
        SynthFormat::Graph if in_batch > 0 => graph_close(&mut buf, page, false),
        SynthFormat::Graph => put(&mut buf, concat!("{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#auditLogs/signIns\",\"value\":[", "]}\n")),
        SynthFormat::Portal if sum.records == 0 => put(&mut buf, "]\n"),
        SynthFormat::Portal => put(&mut buf, "\n]\n"),
        _ => {}
    }
    out.write_all(&buf)?;
    out.flush()?;
    sum.bytes += buf.len() as u64;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    const ALL: [SynthFormat; 5] = [
        SynthFormat::Envelope,
        SynthFormat::Ndjson,
        SynthFormat::Graph,
        SynthFormat::Portal,
        SynthFormat::LogAnalytics,
    ];
    const LEGACY_NAMES: [&str; 16] = [
        "authenticated smtp",
        "autodiscover",
        "exchange activesync",
        "exchange online powershell",
        "exchange web services",
        "imap4",
        "mapi over http",
        "offline address book",
        "outlook anywhere (rpc over http)",
        "pop3",
        "reporting web services",
        "universal outlook",
        "other clients",
        "outlook service",
        "mapi over http",
        "autodiscover",
    ];

    fn args(records: u64, users: u32, seed: u64, format: SynthFormat) -> SynthArgs {
        SynthArgs {
            users,
            records,
            seed,
            format,
            ..SynthArgs::default()
        }
    }

    fn run(a: &SynthArgs) -> (Vec<u8>, SynthSummary) {
        let mut out = Vec::new();
        let s = write(a, &mut out).expect("synth writes to memory");
        assert_eq!(s.bytes, out.len() as u64);
        (out, s)
    }

    fn lines(b: &[u8]) -> Vec<&[u8]> {
        b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect()
    }

    /// The record items of any format, as parsed JSON.
    fn items(fmt: SynthFormat, out: &[u8]) -> Vec<Value> {
        if fmt == SynthFormat::Portal {
            let v: Value = serde_json::from_slice(out).expect("portal is one JSON document");
            return v.as_array().expect("portal is an array").clone();
        }
        let mut all = Vec::new();
        for l in lines(out) {
            let v: Value = serde_json::from_slice(l).expect("every line is JSON");
            match fmt {
                SynthFormat::Envelope => {
                    all.extend(v["records"].as_array().unwrap().iter().cloned())
                }
                SynthFormat::Graph => all.extend(v["value"].as_array().unwrap().iter().cloned()),
                _ => all.push(v),
            }
        }
        all
    }

    fn is_legacy(rec: &Value) -> bool {
        let p = &rec["properties"];
        let cat = rec["category"].as_str().unwrap_or("");
        let app = p["clientAppUsed"]
            .as_str()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        (cat == "NonInteractiveUserSignInLogs" || cat == "SignInLogs")
            && LEGACY_NAMES.contains(&app.as_str())
    }

    #[test]
    fn every_format_parses_with_the_right_shape() {
        for fmt in ALL {
            let mut a = args(600, 300, 9, fmt);
            a.batch = 50;
            let (out, sum) = run(&a);
            assert_eq!(sum.records, 600, "{fmt:?}");
            let recs = items(fmt, &out);
            assert_eq!(recs.len(), 600, "{fmt:?}");
            for r in &recs {
                let (id, created) = match fmt {
                    SynthFormat::Envelope | SynthFormat::Ndjson => {
                        (&r["properties"]["id"], &r["properties"]["createdDateTime"])
                    }
                    SynthFormat::LogAnalytics => (&r["Id"], &r["CreatedDateTime"]),
                    _ => (&r["id"], &r["createdDateTime"]),
                };
                assert!(id.as_str().is_some_and(|s| s.len() == 36), "{fmt:?}: {id}");
                assert!(
                    time::parse(created.as_str().unwrap()).is_some(),
                    "{fmt:?}: {created}"
                );
            }
            match fmt {
                SynthFormat::Envelope | SynthFormat::Graph => {
                    let ls = lines(&out);
                    assert_eq!(ls.len(), 12, "{fmt:?}: 600 records in pages of 50");
                    assert!(ls.iter().all(|l| l.len() < MAX_MESSAGE));
                    if fmt == SynthFormat::Graph {
                        let next = |l: &[u8]| {
                            serde_json::from_slice::<Value>(l).unwrap()["@odata.nextLink"]
                                .is_string()
                        };
                        assert!(ls[..11].iter().all(|l| next(l)) && !next(ls[11]));
                    }
                }
                SynthFormat::Portal => {
                    assert!(out.starts_with(b"[\n  {\n    \"id\": \""));
                    assert!(
                        lines(&out).len() > 600 * 50,
                        "pretty-printed over many lines"
                    );
                }
                SynthFormat::LogAnalytics => {
                    let types: HashSet<&str> =
                        recs.iter().map(|r| r["Type"].as_str().unwrap()).collect();
                    assert_eq!(
                        types,
                        HashSet::from(["SigninLogs", "AADNonInteractiveUserSignInLogs"])
                    );
                    for r in &recs {
                        let text = r["Type"] == "AADNonInteractiveUserSignInLogs";
                        assert_eq!(r["Status"].is_string(), text, "{r}");
                        assert_eq!(r["LocationDetails"].is_string(), text);
                        assert!(r["ResultType"].is_string());
                        let status: Value = match &r["Status"] {
                            Value::String(s) => serde_json::from_str(s).unwrap(),
                            v => v.clone(),
                        };
                        assert!(status["errorCode"].is_number() || status["errorCode"].is_string());
                    }
                }
                SynthFormat::Ndjson => {
                    let cats: HashSet<&str> = recs
                        .iter()
                        .map(|r| r["category"].as_str().unwrap())
                        .collect();
                    assert_eq!(cats.len(), 4, "{cats:?}");
                }
            }
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = args(300, 1000, 42, SynthFormat::Envelope);
        let (x, _) = run(&a);
        assert_eq!(x, run(&a).0);
        assert_ne!(x, run(&args(300, 1000, 43, SynthFormat::Envelope)).0);
        // The streaming generator yields the same records as the ndjson writer.
        let a = args(200, 1000, 42, SynthFormat::Ndjson);
        let mut g = Generator::new(&a).unwrap();
        let (mut buf, mut n) = (Vec::new(), 0);
        while g.next_record(&mut buf) {
            buf.push(b'\n');
            n += 1;
        }
        assert_eq!(n, 200);
        assert_eq!(buf, run(&a).0);
    }

    #[test]
    fn record_sizes_are_realistic() {
        let (out, _) = run(&args(800, 5000, 3, SynthFormat::Ndjson));
        let sizes: Vec<usize> = lines(&out).iter().map(|l| l.len()).collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((5_000..=12_000).contains(&mean), "mean {mean}");
        let inside = sizes
            .iter()
            .filter(|s| (5_000..=12_000).contains(*s))
            .count();
        assert!(
            inside * 4 >= sizes.len() * 3,
            "{inside} of {} in 5-12 KB",
            sizes.len()
        );
        let pols: Vec<usize> = items(SynthFormat::Ndjson, &out)
            .iter()
            .map(|r| {
                r["properties"]["appliedConditionalAccessPolicies"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert!(pols.iter().all(|n| (5..=25).contains(n)) && pols.iter().any(|n| *n >= 15));
    }

    #[test]
    fn legacy_share_is_respected_by_recurring_users() {
        let mut a = args(4000, 2000, 5, SynthFormat::Ndjson);
        (a.legacy_share, a.sprays, a.duplicate_share) = (0.1, 0, 0.0);
        let recs = items(SynthFormat::Ndjson, &run(&a).0);
        let legacy: Vec<&Value> = recs.iter().filter(|r| is_legacy(r)).collect();
        let share = legacy.len() as f64 / recs.len() as f64;
        assert!((0.08..=0.12).contains(&share), "legacy share {share}");
        let protos: HashSet<String> = legacy
            .iter()
            .map(|r| {
                r["properties"]["clientAppUsed"]
                    .as_str()
                    .unwrap()
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        assert!(protos.len() >= 8, "{protos:?}");
        let users: HashSet<String> = legacy
            .iter()
            .map(|r| r["properties"]["userId"].as_str().unwrap().to_string())
            .collect();
        assert!(
            users.len() * 3 < legacy.len(),
            "{} users for {} legacy sign-ins",
            users.len(),
            legacy.len()
        );
        let unknown = recs
            .iter()
            .filter(|r| r["properties"]["clientAppUsed"] == "Unknown")
            .count();
        assert!(unknown > 0);
    }

    #[test]
    fn duplicates_repeat_the_same_bytes() {
        let mut a = args(3000, 500, 8, SynthFormat::Ndjson);
        a.duplicate_share = 0.05;
        let (out, sum) = run(&a);
        let mut seen: HashMap<String, &[u8]> = HashMap::new();
        let mut dups = 0;
        for l in lines(&out) {
            let v: Value = serde_json::from_slice(l).unwrap();
            let id = v["properties"]["id"].as_str().unwrap().to_string();
            if let Some(first) = seen.insert(id, l) {
                assert_eq!(first, l, "a duplicate repeats the record verbatim");
                dups += 1;
            }
        }
        assert_eq!(dups, sum.duplicates);
        assert!((90..=210).contains(&dups), "{dups} duplicates");
    }

    #[test]
    fn a_spray_hits_many_users_from_few_ips() {
        let mut a = args(3000, 1000, 11, SynthFormat::Ndjson);
        (a.sprays, a.legacy_share) = (1, 0.0);
        let recs = items(SynthFormat::Ndjson, &run(&a).0);
        let spray: Vec<&Value> = recs
            .iter()
            .filter(|r| {
                r["properties"]["userAgent"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("BAV2ROPC") || u.starts_with("CBAin"))
            })
            .collect();
        let users: HashSet<String> = spray
            .iter()
            .map(|r| {
                r["properties"]["userPrincipalName"]
                    .as_str()
                    .unwrap()
                    .to_ascii_lowercase()
            })
            .collect();
        let ips: HashSet<&str> = spray
            .iter()
            .map(|r| r["properties"]["ipAddress"].as_str().unwrap())
            .collect();
        assert!(
            users.len() >= 20 && ips.len() <= 3,
            "{} users from {} IPs",
            users.len(),
            ips.len()
        );
        assert!(spray.iter().all(|r| is_legacy(r)));
        let failed = spray.iter().filter(|r| r["resultType"] == "50126").count();
        assert!(
            failed * 10 >= spray.len() * 7,
            "{failed} of {} are 50126",
            spray.len()
        );
        let times: Vec<i64> = spray
            .iter()
            .map(|r| time::parse(r["time"].as_str().unwrap()).unwrap())
            .collect();
        let width = times.iter().max().unwrap() - times.iter().min().unwrap();
        assert!(width <= 31 * 60 * time::NS, "spray lasts {width} ns");
    }

    #[test]
    fn times_stay_in_the_span_and_bad_settings_are_refused() {
        let mut a = args(500, 100, 2, SynthFormat::Ndjson);
        a.span = "30m".into();
        let start = time::parse(&a.start).unwrap();
        for r in items(SynthFormat::Ndjson, &run(&a).0) {
            let t = time::parse(r["properties"]["createdDateTime"].as_str().unwrap()).unwrap();
            assert!(
                t >= start && t < start + 30 * 60 * time::NS,
                "{}",
                r["properties"]["createdDateTime"]
            );
            assert_eq!(time::parse(r["time"].as_str().unwrap()), Some(t));
        }
        for (start, span) in [
            ("yesterday", "24h"),
            ("2026-11-01T00:00:00Z", "24x"),
            ("2026-11-01T00:00:00Z", "0h"),
        ] {
            let mut a = args(10, 10, 1, SynthFormat::Ndjson);
            (a.start, a.span) = (start.into(), span.into());
            let e = write(&a, &mut Vec::new()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{start} {span}");
            assert!(e.to_string().contains("--s"), "{e}");
        }
    }
}
