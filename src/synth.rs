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
//! password-spray bursts (BAV2ROPC over IMAP4 / SMTP / EAS), `duplicate_share` re-emitted
//! records, and the field quirks seen in real exports at low rates.

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
    #[error("--{name} {value} is out of range: give a share between 0 and 1")]
    Share { name: &'static str, value: f64 },
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
const IPV4_FIRST: [u8; 24] = [
    2, 5, 24, 31, 37, 46, 62, 66, 71, 73, 77, 81, 84, 86, 92, 98, 109, 151, 176, 185, 194, 203,
    212, 217,
];

/// The 13 legacy clients (canonical `clientAppUsed`), a weight, and a variant spelling.
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

const UA_EAS: &[&str] = &[
    "Apple-iPhone13C2/1905.258", "Apple-iPhone14C5/2008.124", "Apple-iPad8C1/1905.258",
    "Android-Mail/2023.06.25.546093337.Release", "SAMSUNG-SM-G991B/101.100", "Outlook-iOS-Android/1.0",
];
const UA_SMTP: &[&str] = &[
    "", "curl/8.4.0", "python-requests/2.31.0", "Java/11.0.20", "PHPMailer/6.8.1", "",
];
const UA_MAIL: &[&str] = &[
    "python-requests/2.31.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.4.1",
    "curl/8.4.0", "Java/1.8.0_381", "", "Apple-Mail/3774.100.2",
];
const UA_OUTLOOK: &[&str] = &[
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
    "Microsoft Office/15.0 (Windows NT 6.1; Microsoft Outlook 15.0.5023; Pro)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.5197; Pro)",
];
const UA_EWS: &[&str] = &[
    "ExchangeServicesClient/15.00.0913.015",
    "MacOutlook/16.78.23100802 (Intelx64 Mac OS X 14.0.0)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.4266; Pro)",
];
const UA_PS: &[&str] = &[
    "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.3570",
    "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.0",
];
const UA_OTHER: &[&str] = &["Go-http-client/1.1", "okhttp/4.9.3", "python-requests/2.31.0", ""];
const UA_UNIV: &[&str] = &["Microsoft.Windows.Mail/16005.14326.21904.0", "Outlook-WindowsMail/1.0"];

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
const BROWSERS: [(&str, &str, &str); 5] = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0", "Windows10", "Edge 130.0.0"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "MacOs", "Chrome 131.0.0"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Ios", "Mobile Safari"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0", "Windows10", "Firefox 132.0"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Windows10", "Chrome 131.0.0"),
];
/// Rich-client profiles (Mobile Apps and Desktop clients).
const RICH: [(&str, &str, &str); 5] = [
    ("Windows-AzureAD-Authentication-Provider/1.0", "Windows10", "Rich Client 10.0.22631"),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18025; Pro)", "Windows10", "Rich Client 4.61.0.0"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Teams/24295.605.3225.8804", "Windows10", "Rich Client 4.66.0.0"),
    ("OneDrive/24.210.1027 (iPhone; iOS 18.1; Scale/3.00)", "Ios", "Rich Client 1.2.22"),
    ("Dalvik/2.1.0 (Linux; U; Android 14; SM-S918B Build/UP1A.231005.007)", "Android", "Rich Client 5.4.0"),
];

/// appId, appDisplayName, resourceId, resourceDisplayName, Oauth Scope Info (already escaped).
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
const SP_NAMES: [&str; 10] = [
    "Contoso HR Sync", "Backup-Agent-Prod", "ServiceNow Connector", "Terraform CI",
    "GitHub Actions deploy", "Veeam Backup for Microsoft 365", "Power BI Gateway",
    "Datadog Azure Integration", "contoso-payments-api", "Jamf Pro Connector",
];
const MI_NAMES: [&str; 5] = [
    "vm-build-agent-01", "func-invoice-processor", "aks-contoso-prod-agentpool",
    "logic-orders-sync", "adf-contoso-etl",
];

/// Error code, failureReason, additionalDetails.
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
    ERRORS.iter().find(|e| e.0 == code).map_or(("Other.", ""), |e| (e.1, e.2))
}

/// The tenant's Conditional Access policies: name, state (E enabled, R report-only, D
/// disabled), grant controls (already JSON), session controls (already JSON).
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
const CATS: [&str; 4] = [
    "SignInLogs",
    "NonInteractiveUserSignInLogs",
    "ServicePrincipalSignInLogs",
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
    p_legacy: f64,
    p_dup: f64,
    users_only: bool,
    tenant: u128,
    office: [Ip; 4],
    lpool: u32,
    lstride: u32,
    loff: u32,
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
        let start = time::parse(&args.start).ok_or_else(|| SynthError::Start(args.start.clone()))?;
        let span = parse_duration(&args.span).map_err(SynthError::Span)?;
        for (name, value) in [("legacy-share", args.legacy_share), ("duplicate-share", args.duplicate_share)] {
            if !(0.0..=1.0).contains(&value) || (name == "duplicate-share" && value >= 0.5) {
                return Err(SynthError::Share { name, value });
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
        let cap = total / (3 * u64::from(args.sprays.max(1)));
        let mut spray_total = 0;
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
            let p1 = if rng.gen_bool(0.3) { [P_IMAP, P_SMTP, P_EAS][rng.gen_range(0..3)] } else { p0 };
            let n = n as u32;
            let hit_ok = rng.gen_range(0..n);
            let hit_blocked = if rng.gen_bool(0.5) { rng.gen_range(0..n) } else { u32::MAX };
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
            spray_total += u64::from(n);
        }
        // Sprays are legacy sign-ins too: the rest of the legacy share is spread evenly.
        let fresh = total.saturating_sub(spray_total).max(1) as f64;
        let p_legacy = ((args.legacy_share * total as f64 - spray_total as f64) / fresh).clamp(0.0, 1.0);
        Ok(Generator {
            rng,
            seed,
            users,
            total,
            next: 0,
            start,
            span,
            p_legacy,
            p_dup: args.duplicate_share / (1.0 - args.duplicate_share),
            users_only,
            tenant,
            office,
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

    fn fresh_event(&mut self, i: i64_or_u64!()) -> Event {
        unimplemented!()
    }
}
